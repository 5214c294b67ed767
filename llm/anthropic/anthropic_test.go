package anthropic

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

const testKey = "sk-ant-SECRET-42"

func TestTranslate(t *testing.T) {
	in := `{"model":"route","messages":[
		{"role":"system","content":"Be brief."},
		{"role":"developer","content":[{"type":"text","text":"Use metric."}]},
		{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_time","arguments":""}}]},
		{"role":"tool","tool_call_id":"call_1","content":"18C"},
		{"role":"tool","tool_call_id":"call_2","content":"noon"},
		{"role":"user","content":"Thanks"},
		{"role":"user","content":"And tomorrow?"}],
		"max_completion_tokens":100,"temperature":0.2,"top_p":0.9,"stop":"END","user":"u-1",
		"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time"}}],
		"tool_choice":"required","parallel_tool_calls":false,"stream_options":{"include_usage":true}}`
	got, inc, err := translate([]byte(in), "claude-x", true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"claude-x","system":"Be brief.\n\nUse metric.","messages":[` +
		`{"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_2","name":"get_time","input":{}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"noon"}]},{"type":"text","text":"Thanks"},{"type":"text","text":"And tomorrow?"}]}],` +
		`"max_tokens":100,"temperature":0.2,"top_p":0.9,"stop_sequences":["END"],` +
		`"tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},{"name":"get_time","input_schema":{"type":"object","properties":{}}}],` +
		`"tool_choice":{"type":"any","disable_parallel_tool_use":true},"metadata":{"user_id":"u-1"},"stream":true}`
	b, _ := json.Marshal(got)
	if string(b) != want || !inc {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestTranslateDefaultsAndChoices(t *testing.T) {
	tests := []struct{ choice, want string }{
		{`"auto"`, `{"type":"auto"}`},
		{`"none"`, `{"type":"none"}`},
		{`{"type":"function","function":{"name":"f"}}`, `{"type":"tool","name":"f"}`},
	}
	for _, tt := range tests {
		got, _, err := translate([]byte(`{"messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":`+tt.choice+`}`), "m", false)
		if err != nil {
			t.Fatal(err)
		}
		tc, _ := json.Marshal(got.ToolChoice)
		if string(tc) != tt.want || got.MaxTokens != DefaultMaxTokens || len(got.StopSequences) != 2 {
			t.Fatalf("%s: tool_choice %s max %d stop %v", tt.choice, tc, got.MaxTokens, got.StopSequences)
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	tests := []struct{ body, field string }{
		{`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/cat.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{`{"messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role"},
		{`{"messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{`{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{bad"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{`{"messages":[]}`, "messages"},
		{`{"messages":[{"role":"user","content":"x"}],"stop":5}`, "stop"},
		{`{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}`, "tool_choice"},
		{`{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, "max_tokens"},
		{`{"messages":[{"role":"user","content":"x"}],"n":3}`, "n:"},
	}
	c := New(Config{Name: "an", BaseURL: "http://127.0.0.1:1"})
	for _, tt := range tests {
		_, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(tt.body)})
		pe, ok := llm.AsProviderError(err)
		if !ok || pe.Type != schemas.ErrInvalidRequest || pe.Retryable || !strings.Contains(pe.Message, tt.field) {
			t.Errorf("%s: err %v, want invalid_request naming %s", tt.body, err, tt.field)
		}
	}
}

type golden struct {
	status int
	body   string
	got    []byte
	header http.Header
}

func (g *golden) client(t *testing.T) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.got, _ = io.ReadAll(r.Body)
		g.header = r.Header.Clone()
		if r.URL.Path != "/v1/messages" {
			w.WriteHeader(404)
			return
		}
		if g.status != 0 {
			w.WriteHeader(g.status)
		}
		io.WriteString(w, g.body)
	}))
	t.Cleanup(srv.Close)
	c := New(Config{Name: "an", BaseURL: srv.URL, APIKey: testKey})
	c.now = func() time.Time { return time.Unix(1700000000, 0) }
	return c
}

func TestCompleteGolden(t *testing.T) {
	g := &golden{body: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{ "city": "Paris" }}],"stop_reason":"tool_use","usage":{"input_tokens":20,"output_tokens":9,"cache_read_input_tokens":5}}`}
	resp, err := g.client(t).Complete(context.Background(), &llm.Request{Model: "claude-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if g.header.Get("x-api-key") != testKey || g.header.Get("anthropic-version") != APIVersion {
		t.Fatalf("headers %v", g.header)
	}
	want := `{"id":"msg_1","object":"chat.completion","created":1700000000,"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":25,"completion_tokens":9,"total_tokens":34}}`
	if string(resp.Body) != want {
		t.Fatalf("got  %s\nwant %s", resp.Body, want)
	}
	if resp.Usage != (schemas.Usage{InputTokens: 25, OutputTokens: 9}) {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestErrorsGolden(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		wantType  string
		retryable bool
	}{
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, schemas.ErrServerError, true},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`, schemas.ErrRateLimited, true},
		{401, `{"type":"error","error":{"type":"authentication_error","message":"bad key ` + testKey + `"}}`, schemas.ErrAuth, false},
		{200, `{"type":"error","error":{"type":"api_error","message":"odd"}}`, schemas.ErrBadResponse, true},
		{200, `{"type":"mess`, schemas.ErrBadResponse, true},
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

const streamGolden = `event: message_start
data: {"type":"message_start","message":{"id":"msg_9","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}

event: ping
data: {"type":"ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"f","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":7}}

event: message_stop
data: {"type":"message_stop"}

`

func TestStreamGolden(t *testing.T) {
	g := &golden{body: streamGolden}
	var chunks []string
	resp, err := g.client(t).Stream(context.Background(), &llm.Request{Model: "claude-x",
		Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`)},
		func(c json.RawMessage) error { chunks = append(chunks, string(c)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	head := `{"id":"msg_9","object":"chat.completion.chunk","created":1700000000,"model":"claude-x","choices":`
	want := []string{
		head + `[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"content":"Hi "},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"content":"there"},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_9","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]}`,
		head + `[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		head + `[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`,
	}
	if strings.Join(chunks, "\n") != strings.Join(want, "\n") {
		t.Fatalf("chunks\n%s\nwant\n%s", strings.Join(chunks, "\n"), strings.Join(want, "\n"))
	}
	wantBody := `{"id":"msg_9","object":"chat.completion","created":1700000000,"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","tool_calls":[{"id":"toolu_9","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`
	if string(resp.Body) != wantBody || resp.Usage != (schemas.Usage{InputTokens: 12, OutputTokens: 7}) {
		t.Fatalf("body %s usage %+v", resp.Body, resp.Usage)
	}
	if !strings.Contains(string(g.got), `"stream":true`) {
		t.Fatalf("sent %s", g.got)
	}
}

func TestStreamErrorEvent(t *testing.T) {
	cut := strings.Split(streamGolden, "event: content_block_stop")[0]
	tests := []struct{ body, wantType string }{
		{cut + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", schemas.ErrServerError},
		{cut, schemas.ErrConnection},
	}
	for _, tt := range tests {
		g := &golden{body: tt.body}
		n := 0
		_, err := g.client(t).Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)},
			func(json.RawMessage) error { n++; return nil })
		pe, ok := llm.AsProviderError(err)
		if !ok || pe.Type != tt.wantType || !pe.Retryable || n != 3 {
			t.Fatalf("err %v after %d chunks", err, n)
		}
	}
}

// A native (Anthropic-shaped) request is sent unchanged but for its model
// and stream flag, with the caller's anthropic-version and anthropic-beta.
func TestNativeRequestPassesThrough(t *testing.T) {
	g := &golden{body: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":1}}`}
	native := `{"model":"chat","max_tokens":50,"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"thinking":{"type":"enabled","budget_tokens":1024},"future_field":{"x":1},"stream":true}`
	req := &llm.Request{Model: "claude-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"ignored"}]}`),
		Native: &schemas.NativeRequest{Format: schemas.FormatAnthropic, Body: json.RawMessage(native),
			Headers: map[string]string{"anthropic-version": "2099-01-01", "anthropic-beta": "new-thing-2099"}}}
	if _, err := g.client(t).Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(g.got, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(native), &want)
	want["model"] = "claude-x"
	delete(want, "stream")
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Fatalf("sent %s\nwant %s", gb, wb)
	}
	if g.header.Get("anthropic-version") != "2099-01-01" || g.header.Get("anthropic-beta") != "new-thing-2099" || g.header.Get("x-api-key") != testKey {
		t.Fatalf("headers %v", g.header)
	}
	// Without the caller's version the adapter's own is sent.
	req.Native.Headers = nil
	if _, err := g.client(t).Stream(context.Background(), req, func(json.RawMessage) error { return nil }); err == nil {
		t.Fatal("a non-stream body answered a stream call")
	}
	if g.header.Get("anthropic-version") != APIVersion || g.header.Get("anthropic-beta") != "" {
		t.Fatalf("headers %v", g.header)
	}
	if !strings.Contains(string(g.got), `"stream":true`) {
		t.Fatalf("stream flag not set: %s", g.got)
	}
}

// Thinking blocks (text, signature, redacted) come back as
// reasoning_content and thinking_blocks, whole and streamed, so a Messages
// caller gets them again (Anthropic needs them back on a tool-use turn).
func TestThinkingBlocks(t *testing.T) {
	g := &golden{body: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"thinking","thinking":"let me see","signature":"sig1"},{"type":"redacted_thinking","data":"opaque"},{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":1}}`}
	resp, err := g.client(t).Complete(context.Background(), &llm.Request{Model: "claude-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := `"message":{"role":"assistant","content":"ok","reasoning_content":"let me see","thinking_blocks":[{"type":"thinking","thinking":"let me see","signature":"sig1"},{"type":"redacted_thinking","data":"opaque"}]}`
	if !strings.Contains(string(resp.Body), wantMsg) {
		t.Fatalf("body %s", resp.Body)
	}

	g = &golden{body: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig2\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"yes\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"}
	var chunks []string
	resp, err = g.client(t).Stream(context.Background(), &llm.Request{Model: "claude-x", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)},
		func(c json.RawMessage) error { chunks = append(chunks, string(c)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(chunks, "\n")
	for _, w := range []string{`"delta":{"reasoning_content":"hm"}`, `"delta":{"thinking_blocks":[{"type":"thinking","signature":"sig2"}]}`, `"delta":{"content":"yes"}`} {
		if !strings.Contains(all, w) {
			t.Errorf("chunks lack %s:\n%s", w, all)
		}
	}
	if !strings.Contains(string(resp.Body), `"reasoning_content":"hm","thinking_blocks":[{"type":"thinking","thinking":"hm","signature":"sig2"}]`) {
		t.Errorf("assembled %s", resp.Body)
	}
}
