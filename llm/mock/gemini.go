package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// gemini is the Gemini generateContent shape.
type gemini struct{}

func (gemini) shape() Shape { return ShapeGemini }

func (gemini) key(r *http.Request) string {
	if k := r.Header.Get("x-goog-api-key"); k != "" {
		return k
	}
	return queryKey(r)
}

// geminiContent is a Content (role + parts).
type geminiContent struct {
	Role  string `json:"role"`
	Parts []struct {
		Text string `json:"text"`
	} `json:"parts"`
}

func (g geminiContent) text() string {
	var b []string
	for _, p := range g.Parts {
		if p.Text != "" {
			b = append(b, p.Text)
		}
	}
	return strings.Join(b, "\n")
}

// geminiGenConfig is the part of generationConfig the mock reads.
type geminiGenConfig struct {
	MaxOutputTokens *int     `json:"maxOutputTokens"`
	StopSequences   []string `json:"stopSequences"`
}

// geminiRequest is the part of a GenerateContentRequest the mock reads
// (camelCase, with the snake_case spellings the API also accepts for the
// top-level fields).
type geminiRequest struct {
	Contents          []geminiContent  `json:"contents"`
	SystemInstruction *geminiContent   `json:"systemInstruction"`
	SystemSnake       *geminiContent   `json:"system_instruction"`
	GenerationConfig  *geminiGenConfig `json:"generationConfig"`
	GenConfigSnake    *geminiGenConfig `json:"generation_config"`
	Tools             []struct {
		FunctionDeclarations []struct {
			Name string `json:"name"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	ToolConfig *struct {
		FunctionCallingConfig *struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig"`
}

// geminiPath splits /v1beta/models/{model}:{method}.
func geminiPath(p string) (model, method string) {
	i := strings.Index(p, "/models/")
	if i < 0 {
		return "", ""
	}
	rest := p[i+len("/models/"):]
	j := strings.LastIndex(rest, ":")
	if j < 0 {
		return rest, ""
	}
	return rest[:j], rest[j+1:]
}

func (gemini) parse(r *http.Request, body []byte) (*call, error) {
	model, method := geminiPath(r.URL.Path)
	c := &call{model: model, stream: method == "streamGenerateContent"}
	if method != "generateContent" && method != "streamGenerateContent" {
		return c, fmt.Errorf("method %q is not supported by the mock (use generateContent or streamGenerateContent)", method)
	}
	var req geminiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return c, fmt.Errorf("invalid JSON payload received: %v", err)
	}
	sys := req.SystemInstruction
	if sys == nil {
		sys = req.SystemSnake
	}
	if sys != nil {
		c.system = sys.text()
		c.texts = append(c.texts, c.system)
	}
	for _, m := range req.Contents {
		t := m.text()
		c.texts = append(c.texts, t)
		c.prefill = ""
		switch m.Role {
		case "user", "":
			c.prompt = t
		case "model":
			c.prefill = t
		}
	}
	gc := req.GenerationConfig
	if gc == nil {
		gc = req.GenConfigSnake
	}
	if gc != nil {
		if gc.MaxOutputTokens != nil {
			c.maxTokens = *gc.MaxOutputTokens
		}
		c.stop = gc.StopSequences
	}
	for _, t := range req.Tools {
		for _, fd := range t.FunctionDeclarations {
			c.tools = append(c.tools, fd.Name)
		}
	}
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch fc.Mode {
		case "", "AUTO", "MODE_UNSPECIFIED", "VALIDATED":
		case "NONE":
			c.toolMode = toolNone
		case "ANY":
			c.toolMode = toolRequired
			if len(fc.AllowedFunctionNames) > 0 {
				c.toolMode, c.toolName = toolNamed, fc.AllowedFunctionNames[0]
			}
		default:
			return c, fmt.Errorf("invalid value at 'tool_config.function_calling_config.mode' (%s)", fc.Mode)
		}
	}
	switch {
	case model == "":
		return c, errors.New("model name is required in the path")
	case len(req.Contents) == 0:
		return c, errors.New("* GenerateContentRequest.contents: contents is not specified")
	case c.maxTokens < 0:
		return c, errors.New("* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
	case c.toolMode == toolNamed && !contains(c.tools, c.toolName):
		return c, fmt.Errorf("allowed function name %q is not declared in tools", c.toolName)
	}
	return c, nil
}

// geminiStatus is Google's canonical status name for an HTTP status.
func geminiStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status < 500 {
		return "FAILED_PRECONDITION"
	}
	return "INTERNAL"
}

func geminiErrorBody(status int, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": status, "message": msg, "status": geminiStatus(status)}}
}

func (gemini) writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, geminiErrorBody(status, msg))
}

func (g gemini) writeContextLength(w http.ResponseWriter, c *call) {
	g.writeError(w, http.StatusBadRequest, fmt.Sprintf("The input token count (%d) exceeds the maximum number of tokens allowed (%d).", contextWindow+inputWords(c), contextWindow))
}

func (gemini) prefillRejection() string {
	return "Please ensure that multiturn requests end with a user role or a function response."
}

func geminiFinish(f finish) string {
	if f == finishLength {
		return "MAX_TOKENS"
	}
	return "STOP"
}

func geminiUsage(out *output) map[string]any {
	return map[string]any{
		"promptTokenCount":     out.inTokens,
		"candidatesTokenCount": out.outTokens,
		"totalTokenCount":      out.inTokens + out.outTokens,
	}
}

// response builds a GenerateContentResponse with one part; finish and usage
// are set only on the last one of a stream.
func (gemini) response(out *output, part map[string]any, last bool) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": []any{part}}, "index": 0}
	resp := map[string]any{"candidates": []any{cand}, "modelVersion": out.model, "responseId": fmt.Sprintf("mock%d", out.seq)}
	if last {
		cand["finishReason"] = geminiFinish(out.finish)
		resp["usageMetadata"] = geminiUsage(out)
	}
	return resp
}

func (gemini) toolPart(out *output) map[string]any {
	return map[string]any{"functionCall": map[string]any{"name": out.tool.name, "args": json.RawMessage(out.tool.args)}}
}

func (g gemini) writeReply(w http.ResponseWriter, out *output) {
	part := map[string]any{"text": out.text}
	if out.tool != nil {
		part = g.toolPart(out)
	}
	writeJSON(w, http.StatusOK, g.response(out, part, true))
}

func (gemini) modelList(models []string) any {
	list := make([]any, 0, len(models))
	for _, m := range models {
		list = append(list, map[string]any{
			"name": "models/" + m, "displayName": m,
			"supportedGenerationMethods": []string{"generateContent", "streamGenerateContent"},
		})
	}
	return map[string]any{"models": list}
}

func (g gemini) newStream(r *http.Request, _ *call, out *output) streamEncoder {
	return &geminiStream{g: g, out: out, sse: r.URL.Query().Get("alt") == "sse"}
}

// geminiStream encodes streamGenerateContent: SSE "data:" events with
// ?alt=sse, otherwise one JSON array written element by element.
type geminiStream struct {
	g    gemini
	out  *output
	sse  bool
	sent int
}

func (s *geminiStream) contentType() string {
	if s.sse {
		return "text/event-stream"
	}
	return "application/json; charset=UTF-8"
}

func (s *geminiStream) emit(v any) []byte {
	b := mustJSON(v)
	if s.sse {
		return []byte("data: " + string(b) + "\r\n\r\n")
	}
	sep := ",\r\n"
	if s.sent == 0 {
		sep = "["
	}
	s.sent++
	return []byte(sep + string(b))
}

func (s *geminiStream) head() [][]byte { return nil }

func (s *geminiStream) pieces() []string {
	if s.out.tool != nil {
		return []string{s.out.tool.args}
	}
	return splitWords(s.out.text)
}

func (s *geminiStream) chunk(_ int, piece string) []byte {
	if s.out.tool != nil {
		return s.emit(s.g.response(s.out, s.g.toolPart(s.out), false))
	}
	return s.emit(s.g.response(s.out, map[string]any{"text": piece}, false))
}

func (s *geminiStream) tail() [][]byte {
	evs := [][]byte{s.emit(s.g.response(s.out, map[string]any{"text": ""}, true))}
	if !s.sse {
		evs = append(evs, []byte("]"))
	}
	return evs
}

func (s *geminiStream) finishLen() int   { return 1 }
func (s *geminiStream) terminated() bool { return false }

func (s *geminiStream) fail(status int, msg string) []byte {
	return s.emit(geminiErrorBody(status, msg))
}

func (s *geminiStream) malformed() []byte {
	if s.sse {
		return []byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tru\r\n\r\n")
	}
	return []byte(`[{"candidates":[{"content":{"parts":[{"text":"tru`)
}
