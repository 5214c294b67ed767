package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// openAI is the OpenAI chat-completions shape.
type openAI struct{}

func (openAI) shape() Shape { return ShapeOpenAI }

func (openAI) key(r *http.Request) string {
	k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(k)
}

// openAIRequest is the part of a chat-completions body the mock reads.
type openAIRequest struct {
	Model    *string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Tools               []struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

func (openAI) parse(_ *http.Request, body []byte) (*call, error) {
	var req openAIRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("we could not parse the JSON body of your request: %v", err)
	}
	c := &call{stream: req.Stream}
	if req.Model != nil {
		c.model = *req.Model
	}
	if req.StreamOptions != nil {
		c.includeUsage = req.StreamOptions.IncludeUsage
	}
	var system []string
	for _, m := range req.Messages {
		t := textOf(m.Content)
		c.texts = append(c.texts, t)
		c.prefill = ""
		switch m.Role {
		case "system", "developer":
			system = append(system, t)
		case "user":
			c.prompt = t
		case "assistant":
			c.prefill = t
		}
	}
	c.system = strings.Join(system, "\n")
	switch {
	case req.MaxCompletionTokens != nil:
		c.maxTokens = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		c.maxTokens = *req.MaxTokens
	}
	if len(req.Stop) > 0 && string(req.Stop) != "null" {
		var one string
		if json.Unmarshal(req.Stop, &one) == nil {
			c.stop = []string{one}
		} else if err := json.Unmarshal(req.Stop, &c.stop); err != nil {
			return c, errors.New("'stop' must be a string or an array of strings")
		}
	}
	for _, t := range req.Tools {
		c.tools = append(c.tools, t.Function.Name)
	}
	if len(req.ToolChoice) > 0 && string(req.ToolChoice) != "null" {
		var mode string
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(req.ToolChoice, &mode) == nil:
			switch mode {
			case "none":
				c.toolMode = toolNone
			case "required":
				c.toolMode = toolRequired
			case "auto":
			default:
				return c, fmt.Errorf("invalid value for 'tool_choice': %q", mode)
			}
		case json.Unmarshal(req.ToolChoice, &named) == nil && named.Function.Name != "":
			c.toolMode, c.toolName = toolNamed, named.Function.Name
		default:
			return c, errors.New("invalid 'tool_choice'")
		}
	}
	switch {
	case req.Model == nil || c.model == "":
		return c, errors.New("you must provide a model parameter")
	case len(req.Messages) == 0:
		return c, errors.New("[] is too short - 'messages'")
	case c.maxTokens < 0:
		return c, errors.New("invalid 'max_tokens': must be at least 1")
	case c.toolMode == toolNamed && !contains(c.tools, c.toolName):
		return c, fmt.Errorf("tool_choice names function %q that is not in 'tools'", c.toolName)
	case c.toolMode == toolRequired && len(c.tools) == 0:
		return c, errors.New("tool_choice 'required' needs 'tools'")
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// openAIErrorBody is OpenAI's error object for status.
func openAIErrorBody(status int, msg string) map[string]any {
	typ, code := "server_error", any(nil)
	switch {
	case status == http.StatusUnauthorized:
		typ, code = "invalid_request_error", "invalid_api_key"
	case status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case status == http.StatusNotFound:
		typ, code = "invalid_request_error", "not_found"
	case status < 500:
		typ = "invalid_request_error"
	}
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
}

func (openAI) writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, openAIErrorBody(status, msg))
}

func (openAI) writeContextLength(w http.ResponseWriter, c *call) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
		"message": fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", contextWindow, contextWindow+inputWords(c)),
		"type":    "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
	}})
}

func (openAI) prefillRejection() string {
	return "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant"
}

func openAIFinish(f finish) string {
	switch f {
	case finishLength:
		return "length"
	case finishTool:
		return "tool_calls"
	default:
		return "stop"
	}
}

func openAIUsage(out *output) map[string]any {
	return map[string]any{
		"prompt_tokens":     out.inTokens,
		"completion_tokens": out.outTokens,
		"total_tokens":      out.inTokens + out.outTokens,
	}
}

func (openAI) id(out *output) string     { return "chatcmpl-mock" + strconv.FormatInt(out.seq, 10) }
func (openAI) callID(out *output) string { return "call_mock" + strconv.FormatInt(out.seq, 10) }

// openAICompletion is a chat.completion body; typed (not a map) so that
// encoding it needs no key sorting and little reflection. Fields are in
// the alphabetical order the map encoding had, so the bytes are unchanged.
type openAICompletion struct {
	Choices           [1]openAIChoice `json:"choices"`
	Created           int64           `json:"created"`
	ID                string          `json:"id"`
	Model             string          `json:"model"`
	Object            string          `json:"object"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Usage             openAIUsageBody `json:"usage"`
}

type openAIChoice struct {
	FinishReason string          `json:"finish_reason"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	Message      openAIMessage   `json:"message"`
}

type openAIMessage struct {
	Content   *string          `json:"content"`
	Refusal   *string          `json:"refusal"`
	Role      string           `json:"role"`
	ToolCalls []openAIToolCall `json:"tool_calls,omitempty"`
}

type openAIToolCall struct {
	Function openAIToolFunction `json:"function"`
	ID       string             `json:"id"`
	Type     string             `json:"type"`
}

type openAIToolFunction struct {
	Arguments string `json:"arguments"`
	Name      string `json:"name"`
}

type openAIUsageBody struct {
	CompletionTokens int `json:"completion_tokens"`
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// jsonNull is a JSON null for json.RawMessage fields.
var jsonNull = json.RawMessage("null")

func (o openAI) writeReply(w http.ResponseWriter, out *output) {
	body := openAICompletion{
		ID: o.id(out), Object: "chat.completion", Created: time.Now().Unix(), Model: out.model,
		SystemFingerprint: "fp_mock",
		Usage: openAIUsageBody{
			CompletionTokens: out.outTokens, PromptTokens: out.inTokens, TotalTokens: out.inTokens + out.outTokens,
		},
	}
	ch := &body.Choices[0]
	ch.Message.Role, ch.Logprobs, ch.FinishReason = "assistant", jsonNull, openAIFinish(out.finish)
	if out.tool != nil {
		ch.Message.ToolCalls = []openAIToolCall{{
			ID: o.callID(out), Type: "function",
			Function: openAIToolFunction{Name: out.tool.name, Arguments: out.tool.args},
		}}
	} else {
		ch.Message.Content = &out.text
	}
	writeJSON(w, http.StatusOK, &body)
}

func (openAI) modelList(models []string) any {
	data := make([]any, 0, len(models))
	for _, m := range models {
		data = append(data, map[string]any{"id": m, "object": "model", "created": 1700000000, "owned_by": "switchboard-mock"})
	}
	return map[string]any{"object": "list", "data": data}
}

func (o openAI) newStream(_ *http.Request, c *call, out *output) streamEncoder {
	return &openAIStream{o: o, out: out, includeUsage: c.includeUsage, created: time.Now().Unix()}
}

// openAIStream encodes chat.completion.chunk SSE events ending in [DONE].
type openAIStream struct {
	o            openAI
	out          *output
	includeUsage bool
	created      int64
}

func (s *openAIStream) contentType() string { return "text/event-stream; charset=utf-8" }

func (s *openAIStream) event(choices []any, usage any) []byte {
	ev := map[string]any{
		"id": s.o.id(s.out), "object": "chat.completion.chunk", "created": s.created,
		"model": s.out.model, "system_fingerprint": "fp_mock", "choices": choices,
	}
	if s.includeUsage {
		ev["usage"] = usage
	}
	return sse("", mustJSON(ev))
}

func (s *openAIStream) delta(d map[string]any, finish any) []byte {
	return s.event([]any{map[string]any{"index": 0, "delta": d, "logprobs": nil, "finish_reason": finish}}, nil)
}

func (s *openAIStream) head() [][]byte {
	d := map[string]any{"role": "assistant", "content": "", "refusal": nil}
	if s.out.tool != nil {
		d["content"] = nil
		d["tool_calls"] = []any{map[string]any{
			"index": 0, "id": s.o.callID(s.out), "type": "function",
			"function": map[string]any{"name": s.out.tool.name, "arguments": ""},
		}}
	}
	return [][]byte{s.delta(d, nil)}
}

func (s *openAIStream) pieces() []string {
	if s.out.tool != nil {
		return splitN(s.out.tool.args, 16)
	}
	return splitWords(s.out.text)
}

func (s *openAIStream) chunk(_ int, piece string) []byte {
	if s.out.tool != nil {
		return s.delta(map[string]any{"tool_calls": []any{map[string]any{
			"index": 0, "function": map[string]any{"arguments": piece},
		}}}, nil)
	}
	return s.delta(map[string]any{"content": piece}, nil)
}

func (s *openAIStream) tail() [][]byte {
	evs := [][]byte{s.delta(map[string]any{}, openAIFinish(s.out.finish))}
	if s.includeUsage {
		evs = append(evs, s.event([]any{}, openAIUsage(s.out)))
	}
	return append(evs, []byte("data: [DONE]\n\n"))
}

func (s *openAIStream) finishLen() int   { return 1 }
func (s *openAIStream) terminated() bool { return true }

func (s *openAIStream) fail(status int, msg string) []byte {
	return sse("", mustJSON(openAIErrorBody(status, msg)))
}

func (s *openAIStream) malformed() []byte {
	return []byte(`data: {"id":"` + s.o.id(s.out) + `","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tru` + "\n\n")
}
