package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
)

// anthropic is the Anthropic Messages shape.
type anthropic struct{}

func (anthropic) shape() Shape { return ShapeAnthropic }

func (anthropic) key(r *http.Request) string { return r.Header.Get("x-api-key") }

// anthropicRequest is the part of a Messages body the mock reads.
type anthropicRequest struct {
	Model    *string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System        json.RawMessage `json:"system"`
	MaxTokens     *int            `json:"max_tokens"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
	Tools         []struct {
		Name string `json:"name"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

func (anthropic) parse(r *http.Request, body []byte) (*call, error) {
	var req anthropicRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	c := &call{stream: req.Stream, stop: req.StopSequences}
	if req.Model != nil {
		c.model = *req.Model
	}
	c.system = textOf(req.System)
	if c.system != "" {
		c.texts = append(c.texts, c.system)
	}
	for _, m := range req.Messages {
		t := textOf(m.Content)
		c.texts = append(c.texts, t)
		c.prefill = ""
		switch m.Role {
		case "user":
			c.prompt = t
		case "assistant":
			c.prefill = t
		}
	}
	if req.MaxTokens != nil {
		c.maxTokens = *req.MaxTokens
	}
	for _, t := range req.Tools {
		c.tools = append(c.tools, t.Name)
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "":
		case "any":
			c.toolMode = toolRequired
		case "none":
			c.toolMode = toolNone
		case "tool":
			c.toolMode, c.toolName = toolNamed, tc.Name
		default:
			return c, fmt.Errorf("tool_choice.type: unknown value %q", tc.Type)
		}
	}
	switch {
	case r.Header.Get("anthropic-version") == "":
		return c, errors.New("anthropic-version: header is required")
	case req.Model == nil || c.model == "":
		return c, errors.New("model: Field required")
	case req.MaxTokens == nil:
		return c, errors.New("max_tokens: Field required")
	case c.maxTokens < 1:
		return c, errors.New("max_tokens: Input should be greater than or equal to 1")
	case len(req.Messages) == 0:
		return c, errors.New("messages: at least one message is required")
	case c.prefill != "" && strings.TrimRightFunc(c.prefill, unicode.IsSpace) != c.prefill:
		return c, errors.New("messages: final assistant content cannot end with trailing whitespace")
	case c.toolMode == toolNamed && !contains(c.tools, c.toolName):
		return c, fmt.Errorf("tool_choice.name: tool %q not found in tools", c.toolName)
	case c.toolMode == toolRequired && len(c.tools) == 0:
		return c, errors.New("tool_choice: 'any' requires tools")
	}
	return c, nil
}

// anthropicErrorType is Anthropic's error type for status.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

func anthropicErrorBody(status int, msg string) map[string]any {
	return map[string]any{
		"type":       "error",
		"error":      map[string]any{"type": anthropicErrorType(status), "message": msg},
		"request_id": "req_mock",
	}
}

func (anthropic) writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, anthropicErrorBody(status, msg))
}

func (a anthropic) writeContextLength(w http.ResponseWriter, c *call) {
	a.writeError(w, http.StatusBadRequest, fmt.Sprintf("prompt is too long: %d tokens > %d maximum", contextWindow+inputWords(c), contextWindow))
}

func (anthropic) prefillRejection() string {
	return "This model does not support assistant message prefill. The conversation must end with a user message."
}

func anthropicStop(out *output) (reason string, seq any) {
	switch out.finish {
	case finishLength:
		return "max_tokens", nil
	case finishTool:
		return "tool_use", nil
	case finishStopSeq:
		return "stop_sequence", out.stopSeq
	}
	return "end_turn", nil
}

func (anthropic) id(out *output) string     { return fmt.Sprintf("msg_mock%d", out.seq) }
func (anthropic) toolID(out *output) string { return fmt.Sprintf("toolu_mock%d", out.seq) }

func (a anthropic) block(out *output, partial bool) map[string]any {
	if out.tool == nil {
		text := out.text
		if partial {
			text = ""
		}
		return map[string]any{"type": "text", "text": text}
	}
	input := json.RawMessage(out.tool.args)
	if partial {
		input = json.RawMessage(`{}`)
	}
	return map[string]any{"type": "tool_use", "id": a.toolID(out), "name": out.tool.name, "input": input}
}

func (a anthropic) writeReply(w http.ResponseWriter, out *output) {
	reason, seq := anthropicStop(out)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": a.id(out), "type": "message", "role": "assistant", "model": out.model,
		"content":     []any{a.block(out, false)},
		"stop_reason": reason, "stop_sequence": seq,
		"usage": map[string]any{"input_tokens": out.inTokens, "output_tokens": out.outTokens},
	})
}

func (anthropic) modelList(models []string) any {
	data := make([]any, 0, len(models))
	for _, m := range models {
		data = append(data, map[string]any{"type": "model", "id": m, "display_name": m, "created_at": "2024-01-01T00:00:00Z"})
	}
	first, last := "", ""
	if len(models) > 0 {
		first, last = models[0], models[len(models)-1]
	}
	return map[string]any{"data": data, "has_more": false, "first_id": first, "last_id": last}
}

func (a anthropic) newStream(_ *http.Request, _ *call, out *output) streamEncoder {
	return &anthropicStream{a: a, out: out}
}

// anthropicStream encodes the Messages event stream.
type anthropicStream struct {
	a   anthropic
	out *output
}

func (s *anthropicStream) contentType() string { return "text/event-stream; charset=utf-8" }

func (s *anthropicStream) ev(name string, v map[string]any) []byte {
	v["type"] = name
	return sse(name, mustJSON(v))
}

func (s *anthropicStream) head() [][]byte {
	msg := map[string]any{
		"id": s.a.id(s.out), "type": "message", "role": "assistant", "model": s.out.model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": s.out.inTokens, "output_tokens": 1},
	}
	return [][]byte{
		s.ev("message_start", map[string]any{"message": msg}),
		s.ev("content_block_start", map[string]any{"index": 0, "content_block": s.a.block(s.out, true)}),
		s.ev("ping", map[string]any{}),
	}
}

func (s *anthropicStream) pieces() []string {
	if s.out.tool != nil {
		return splitN(s.out.tool.args, 16)
	}
	return splitWords(s.out.text)
}

func (s *anthropicStream) chunk(_ int, piece string) []byte {
	delta := map[string]any{"type": "text_delta", "text": piece}
	if s.out.tool != nil {
		delta = map[string]any{"type": "input_json_delta", "partial_json": piece}
	}
	return s.ev("content_block_delta", map[string]any{"index": 0, "delta": delta})
}

func (s *anthropicStream) tail() [][]byte {
	reason, seq := anthropicStop(s.out)
	return [][]byte{
		s.ev("content_block_stop", map[string]any{"index": 0}),
		s.ev("message_delta", map[string]any{
			"delta": map[string]any{"stop_reason": reason, "stop_sequence": seq},
			"usage": map[string]any{"output_tokens": s.out.outTokens},
		}),
		s.ev("message_stop", map[string]any{}),
	}
}

func (s *anthropicStream) finishLen() int   { return 2 }
func (s *anthropicStream) terminated() bool { return true }

func (s *anthropicStream) fail(status int, msg string) []byte {
	b := anthropicErrorBody(status, msg)
	delete(b, "request_id")
	return sse("error", mustJSON(b))
}

func (s *anthropicStream) malformed() []byte {
	return []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"" + s.a.id(s.out) + "\",\"content\":[\n\n")
}
