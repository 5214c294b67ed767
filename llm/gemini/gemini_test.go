package gemini

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

const testKey = "AIza-SECRET-77"

func TestTranslate(t *testing.T) {
	in := `{"messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]},
		{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"18C"},
		{"role":"user","content":"Thanks"}],
		"max_tokens":50,"temperature":0.5,"top_p":0.8,"stop":["X"],"seed":3,
		"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}}],
		"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`
	got, _, err := translate([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"contents":[{"role":"user","parts":[{"text":"Weather?"},{"inlineData":{"mimeType":"image/jpeg","data":"/9j/"}}]},` +
		`{"role":"model","parts":[{"text":"Checking."},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},` +
		`{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"content":"18C"}}},{"text":"Thanks"}]}],` +
		`"systemInstruction":{"parts":[{"text":"Be brief."}]},` +
		`"generationConfig":{"temperature":0.5,"topP":0.8,"maxOutputTokens":50,"stopSequences":["X"],"candidateCount":1,"seed":3},` +
		`"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Weather","parameters":{"type":"object"}}]}],` +
		`"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}}`
	b, _ := json.Marshal(got)
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	for choice, mode := range map[string]string{`"auto"`: "AUTO", `"none"`: "NONE", `"required"`: "ANY"} {
		got, _, err := translate([]byte(`{"messages":[{"role":"user","content":"x"}],"tool_choice":` + choice + `}`))
		if err != nil || got.ToolConfig.FunctionCallingConfig.Mode != mode {
			t.Fatalf("%s: %v %+v", choice, err, got)
		}
	}
	if _, _, err := translate([]byte(`{"messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}`)); err == nil || !strings.Contains(err.Error(), "messages[0].tool_call_id") {
		t.Fatalf("unmatched tool call id: %v", err)
	}
}

type golden struct {
	status      int
	body        string
	got         []byte
	header      http.Header
	path, query string
}

func (g *golden) client(t *testing.T) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.got, _ = io.ReadAll(r.Body)
		g.header, g.path, g.query = r.Header.Clone(), r.URL.Path, r.URL.RawQuery
		if g.status != 0 {
			w.WriteHeader(g.status)
		}
		io.WriteString(w, g.body)
	}))
	t.Cleanup(srv.Close)
	c := New(Config{Name: "ge", BaseURL: srv.URL, APIKey: testKey})
	c.now = func() time.Time { return time.Unix(1700000000, 0) }
	return c
}

var callID = regexp.MustCompile(`call_[0-9a-f]{24}`)

func TestCompleteGolden(t *testing.T) {
	g := &golden{body: `{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking...","thought":true},{"text":"Sure."},{"functionCall":{"name":"f","args":{"a": 1}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":4,"thoughtsTokenCount":2,"totalTokenCount":16},"modelVersion":"gemini-x-001","responseId":"resp1"}`}
	resp, err := g.client(t).Complete(context.Background(), &llm.Request{Model: "gemini-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if g.path != "/v1beta/models/gemini-x:generateContent" || g.query != "" || g.header.Get("x-goog-api-key") != testKey {
		t.Fatalf("path %q query %q header %v", g.path, g.query, g.header)
	}
	want := `{"id":"resp1","object":"chat.completion","created":1700000000,"model":"gemini-x-001","choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","tool_calls":[{"id":"call_X","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":6,"total_tokens":16}}`
	if got := callID.ReplaceAllString(string(resp.Body), "call_X"); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestErrorsGolden(t *testing.T) {
	tests := []struct {
		status         int
		body, wantType string
		retryable      bool
	}{
		{429, `{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}`, schemas.ErrRateLimited, true},
		{503, `{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}`, schemas.ErrServerError, true},
		{400, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`, schemas.ErrAuth, false},
		{400, `{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}`, schemas.ErrInvalidRequest, false},
		{200, `{"promptFeedback":{"blockReason":"SAFETY"}}`, schemas.ErrContentFilter, false},
		{200, `{"candidates":`, schemas.ErrBadResponse, true},
	}
	for _, tt := range tests {
		g := &golden{status: tt.status, body: tt.body}
		_, err := g.client(t).Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)})
		pe, ok := llm.AsProviderError(err)
		if !ok || pe.Type != tt.wantType || pe.Retryable != tt.retryable || strings.Contains(err.Error(), testKey) {
			t.Errorf("%d %s: %v", tt.status, tt.body, err)
		}
	}
}

func TestFinishReasons(t *testing.T) {
	for in, want := range map[string]string{"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "OTHER": "stop"} {
		if got := finishReason(in, false); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

const streamGolden = `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hi "}]},"index":0}],"modelVersion":"gemini-x","responseId":"r9"}

data: {"candidates":[{"content":{"role":"model","parts":[{"text":"there"}]},"index":0}],"modelVersion":"gemini-x","responseId":"r9"}

data: {"candidates":[{"content":{"role":"model","parts":[{"text":"!"}]},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3},"modelVersion":"gemini-x","responseId":"r9"}

`

func TestStreamGolden(t *testing.T) {
	g := &golden{body: streamGolden}
	var chunks []string
	resp, err := g.client(t).Stream(context.Background(), &llm.Request{Model: "gemini-x",
		Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`)},
		func(c json.RawMessage) error { chunks = append(chunks, string(c)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if g.path != "/v1beta/models/gemini-x:streamGenerateContent" || g.query != "alt=sse" {
		t.Fatalf("path %q query %q", g.path, g.query)
	}
	head := `{"id":"r9","object":"chat.completion.chunk","created":1700000000,"model":"gemini-x","choices":`
	want := []string{
		head + `[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"content":"Hi "},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"content":"there"},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"content":"!"},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{},"finish_reason":"length"}]}`,
		head + `[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`,
	}
	if strings.Join(chunks, "\n") != strings.Join(want, "\n") {
		t.Fatalf("chunks\n%s\nwant\n%s", strings.Join(chunks, "\n"), strings.Join(want, "\n"))
	}
	wantBody := `{"id":"r9","object":"chat.completion","created":1700000000,"model":"gemini-x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there!"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`
	if string(resp.Body) != wantBody || resp.Usage != (schemas.Usage{InputTokens: 5, OutputTokens: 3}) {
		t.Fatalf("body %s usage %+v", resp.Body, resp.Usage)
	}
}

func TestStreamBroken(t *testing.T) {
	cut := strings.SplitAfterN(streamGolden, "\n\n", 2)[0]
	tests := []struct{ body, wantType string }{
		{cut, schemas.ErrConnection},
		{cut + `data: {"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}` + "\n\n", schemas.ErrServerError},
	}
	for _, tt := range tests {
		g := &golden{body: tt.body}
		n := 0
		_, err := g.client(t).Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)},
			func(json.RawMessage) error { n++; return nil })
		pe, ok := llm.AsProviderError(err)
		if !ok || pe.Type != tt.wantType || !pe.Retryable || n != 2 {
			t.Fatalf("err %v after %d chunks", err, n)
		}
	}
}

// An Anthropic-shaped request's thinking budget reaches Gemini's
// thinkingConfig (the OpenAI translation has no field for it); the rest of
// the call uses the translation.
func TestNativeThinkingBudget(t *testing.T) {
	g := &golden{body: `{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2}}`}
	req := &llm.Request{Model: "gemini-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3000}`),
		Native: &schemas.NativeRequest{Format: schemas.FormatAnthropic, Body: json.RawMessage(`{"model":"r","max_tokens":3000,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}`)}}
	if _, err := g.client(t).Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(g.got), `"maxOutputTokens":3000`) || !strings.Contains(string(g.got), `"thinkingConfig":{"thinkingBudget":2048}`) {
		t.Fatalf("sent %s", g.got)
	}
	req.Native.Body = json.RawMessage(`{"model":"r","max_tokens":30,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"hi"}]}`)
	if _, err := g.client(t).Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(g.got), "thinkingConfig") {
		t.Fatalf("sent %s", g.got)
	}
}
