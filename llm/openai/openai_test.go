package openai

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

const testKey = "sk-test-SECRET-123"

// recorder is a golden wire-format server: it records the request and
// replies with a canned status, headers and body.
type recorder struct {
	status int
	header map[string]string
	body   string
	got    []byte
	auth   string
	path   string
}

func (r *recorder) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.got, _ = io.ReadAll(req.Body)
		r.auth = req.Header.Get("Authorization")
		r.path = req.URL.Path
		for k, v := range r.header {
			w.Header().Set(k, v)
		}
		if r.status != 0 {
			w.WriteHeader(r.status)
		}
		io.WriteString(w, r.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const okBody = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`

func TestCompleteBodyPassthrough(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"model replaced, order kept, unknown fields kept",
			`{"zeta":1,"model":"route-name","messages":[{"role":"user","content":"hi"}],"x_vendor":{"a":[1,2.50,"b"]},"temperature":0.70}`,
			`{"zeta":1,"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"x_vendor":{"a":[1,2.50,"b"]},"temperature":0.70}`},
		{"stream fields removed",
			`{"messages":[],"stream":true,"stream_options":{"include_usage":true},"n":2}`,
			`{"messages":[],"n":2,"model":"gpt-x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{body: okBody}
			c := New(Config{Name: "oa", BaseURL: rec.server(t).URL + "/v1/", APIKey: testKey})
			resp, err := c.Complete(context.Background(), &llm.Request{Model: "gpt-x", Body: json.RawMessage(tt.in)})
			if err != nil {
				t.Fatal(err)
			}
			if string(rec.got) != tt.want {
				t.Fatalf("sent %s\nwant %s", rec.got, tt.want)
			}
			if rec.path != "/v1/chat/completions" {
				t.Fatalf("path %q", rec.path)
			}
			if rec.auth != "Bearer "+testKey {
				t.Fatalf("auth %q", rec.auth)
			}
			if string(resp.Body) != okBody {
				t.Fatalf("body not passed through: %s", resp.Body)
			}
			if resp.Usage != (schemas.Usage{InputTokens: 7, OutputTokens: 3}) || resp.StatusCode != 200 {
				t.Fatalf("usage %+v status %d", resp.Usage, resp.StatusCode)
			}
		})
	}
}

func TestNoKeyNoAuthHeader(t *testing.T) {
	rec := &recorder{body: okBody}
	c := New(Config{BaseURL: rec.server(t).URL})
	if _, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[]}`)}); err != nil {
		t.Fatal(err)
	}
	if rec.auth != "" {
		t.Fatalf("auth header %q without a key", rec.auth)
	}
}

func TestCompleteErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantType   string
		retryable  bool
		retryAfter time.Duration
		wantMsg    string
	}{
		{"429 retry-after", 429, map[string]string{"Retry-After": "3"}, `{"error":{"message":"slow down","type":"requests"}}`, schemas.ErrRateLimited, true, 3 * time.Second, "slow down"},
		{"500", 500, nil, `{"error":{"message":"boom"}}`, schemas.ErrServerError, true, 0, "boom"},
		{"503 html", 503, nil, `<html>unavailable</html>`, schemas.ErrServerError, true, 0, "unavailable"},
		{"400", 400, nil, `{"error":{"message":"bad param","code":null}}`, schemas.ErrInvalidRequest, false, 0, "bad param"},
		{"401 echoes key", 401, nil, `{"error":{"message":"Incorrect API key provided: ` + testKey + `"}}`, schemas.ErrAuth, false, 0, "[redacted]"},
		{"content filter", 400, nil, `{"error":{"message":"filtered","code":"content_filter"}}`, schemas.ErrContentFilter, false, 0, "filtered"},
		{"content policy", 400, nil, `{"error":{"message":"policy","code":"content_policy_violation"}}`, schemas.ErrContentFilter, false, 0, "policy"},
		{"200 malformed", 200, nil, `{"choices":[`, schemas.ErrBadResponse, true, 0, "unparseable"},
		{"200 no choices", 200, nil, `{"id":"x"}`, schemas.ErrBadResponse, true, 0, "no choices"},
		{"200 error body", 200, nil, `{"error":{"message":"upstream exploded"}}`, schemas.ErrBadResponse, true, 0, "upstream exploded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: tt.status, header: tt.header, body: tt.body}
			c := New(Config{Name: "oa", BaseURL: rec.server(t).URL, APIKey: testKey})
			_, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[]}`)})
			pe, ok := llm.AsProviderError(err)
			if !ok {
				t.Fatalf("err %v is not a ProviderError", err)
			}
			if pe.Type != tt.wantType || pe.Retryable != tt.retryable || pe.RetryAfter != tt.retryAfter || pe.Status != tt.status {
				t.Fatalf("got %+v", pe)
			}
			if !strings.Contains(pe.Message, tt.wantMsg) {
				t.Fatalf("message %q lacks %q", pe.Message, tt.wantMsg)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("key leaked: %v", err)
			}
		})
	}
}

func TestBadRequestBody(t *testing.T) {
	c := New(Config{BaseURL: "http://127.0.0.1:1"})
	for _, body := range []string{``, `[]`, `{"a":`, `{} x`} {
		_, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(body)})
		if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrInvalidRequest {
			t.Fatalf("body %q: err %v", body, err)
		}
	}
}

func TestTransportErrors(t *testing.T) {
	// A listener that accepts and never answers, to exercise the deadline.
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer hang.Close()
	defer close(stop)
	c := New(Config{BaseURL: hang.URL, APIKey: testKey})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Complete(ctx, &llm.Request{Model: "m", Body: json.RawMessage(`{}`)})
	if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrTimeout || !pe.Retryable {
		t.Fatalf("hang: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	c = New(Config{BaseURL: url, APIKey: testKey})
	_, err = c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{}`)})
	if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrConnection || !pe.Retryable {
		t.Fatalf("refused: %v", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Fatalf("key leaked: %v", err)
	}
}

const streamBody = `data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}

: keep-alive

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-x","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}

data: [DONE]

`

func TestStream(t *testing.T) {
	rec := &recorder{header: map[string]string{"Content-Type": "text/event-stream"}, body: streamBody}
	c := New(Config{Name: "oa", BaseURL: rec.server(t).URL, APIKey: testKey})
	var chunks []string
	resp, err := c.Stream(context.Background(), &llm.Request{Model: "gpt-x",
		Body: json.RawMessage(`{"model":"r","messages":[],"stream_options":{"include_usage":true}}`)},
		func(ch json.RawMessage) error { chunks = append(chunks, string(ch)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model":"gpt-x","messages":[],"stream_options":{"include_usage":true},"stream":true}`; string(rec.got) != want {
		t.Fatalf("sent %s", rec.got)
	}
	if len(chunks) != 8 || !strings.Contains(chunks[1], `"Hel"`) || !strings.Contains(chunks[7], `"usage"`) {
		t.Fatalf("chunks %d: %q", len(chunks), chunks)
	}
	want := `{"id":"c1","object":"chat.completion","created":5,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"Hello","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}`
	if string(resp.Body) != want {
		t.Fatalf("assembled\n%s\nwant\n%s", resp.Body, want)
	}
	if resp.Usage != (schemas.Usage{InputTokens: 11, OutputTokens: 4}) {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestStreamFailures(t *testing.T) {
	first := strings.SplitAfterN(streamBody, "\n\n", 2)[0]
	tests := []struct {
		name, body, wantType string
		wantChunks           int
	}{
		{"cut before done", first, schemas.ErrConnection, 1},
		{"cut mid event", first + `data: {"id":"c1",`, schemas.ErrConnection, 1},
		{"error event", first + "data: {\"error\":{\"message\":\"overloaded " + testKey + "\"}}\n\n", schemas.ErrServerError, 1},
		{"garbage chunk", first + "data: {nope\n\n", schemas.ErrBadResponse, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{body: tt.body}
			c := New(Config{Name: "oa", BaseURL: rec.server(t).URL, APIKey: testKey})
			n := 0
			_, err := c.Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{}`)},
				func(json.RawMessage) error { n++; return nil })
			pe, ok := llm.AsProviderError(err)
			if !ok || pe.Type != tt.wantType || n != tt.wantChunks {
				t.Fatalf("err %v chunks %d", err, n)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("key leaked: %v", err)
			}
		})
	}
}

func TestStreamEmitErrorStops(t *testing.T) {
	rec := &recorder{body: streamBody}
	c := New(Config{BaseURL: rec.server(t).URL})
	stop := errors.New("client went away")
	n := 0
	_, err := c.Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{}`)},
		func(json.RawMessage) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err %v after %d chunks", err, n)
	}
}

func TestStringHidesKey(t *testing.T) {
	c := New(Config{Name: "oa", APIKey: testKey})
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, testKey) {
			t.Fatalf("key in %q", s)
		}
	}
}

// streamParts splits streamBody into its events (the last is [DONE]).
func streamParts() []string {
	var parts []string
	for _, p := range strings.SplitAfter(streamBody, "\n\n") {
		if strings.TrimSpace(p) != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func TestStreamEndsWithoutDone(t *testing.T) {
	// Finished (finish_reason and usage) but no [DONE]: a complete answer.
	body := strings.TrimSuffix(streamBody, "data: [DONE]\n\n")
	if body == streamBody {
		t.Fatal("streamBody has no [DONE] to remove")
	}
	rec := &recorder{body: body}
	c := New(Config{Name: "oa", BaseURL: rec.server(t).URL})
	resp, err := c.Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{}`)}, func(json.RawMessage) error { return nil })
	if err != nil {
		t.Fatalf("clean end after finish_reason: %v", err)
	}
	if resp.Usage != (schemas.Usage{InputTokens: 11, OutputTokens: 4}) {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestStreamSkipsMalformedEvents(t *testing.T) {
	parts := streamParts()
	bad := "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"tru\n\n"
	for _, tt := range []struct {
		name     string
		bad      int
		wantErr  string
		wantText string
	}{
		{"one", 1, "", "Hello"},
		{"the most allowed", llm.MaxBadChunks, "", "Hello"},
		{"one too many", llm.MaxBadChunks + 1, schemas.ErrStreamBroken, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := parts[0] + parts[1] + strings.Repeat(bad, tt.bad) + strings.Join(parts[2:], "")
			rec := &recorder{body: body}
			c := New(Config{Name: "oa", BaseURL: rec.server(t).URL, APIKey: testKey})
			resp, err := c.Stream(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{}`)}, func(json.RawMessage) error { return nil })
			if tt.wantErr != "" {
				pe, ok := llm.AsProviderError(err)
				if !ok || pe.Type != tt.wantErr {
					t.Fatalf("err %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var comp struct {
				Choices []struct {
					Message struct{ Content string } `json:"message"`
				} `json:"choices"`
			}
			if err := json.Unmarshal(resp.Body, &comp); err != nil || comp.Choices[0].Message.Content != tt.wantText {
				t.Fatalf("assembled %s (%v)", resp.Body, err)
			}
			if resp.BadChunks != tt.bad {
				t.Fatalf("bad chunks %d, want %d", resp.BadChunks, tt.bad)
			}
		})
	}
}

func TestContextLengthError(t *testing.T) {
	rec := &recorder{status: 400, body: `{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`}
	c := New(Config{Name: "oa", BaseURL: rec.server(t).URL})
	_, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[]}`)})
	pe, ok := llm.AsProviderError(err)
	if !ok || pe.Type != schemas.ErrContextLength || pe.Retryable || pe.Code != "context_length_exceeded" || pe.Status != 400 {
		t.Fatalf("err %+v", pe)
	}
	// A plain 400 stays invalid_request.
	rec.body = `{"error":{"message":"'messages' is required","type":"invalid_request_error","code":"missing_field"}}`
	_, err = c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[]}`)})
	if pe, _ := llm.AsProviderError(err); pe == nil || pe.Type != schemas.ErrInvalidRequest || pe.Code != "missing_field" {
		t.Fatalf("err %+v", pe)
	}
}

func TestCompletionProbe(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantUsage schemas.Usage
		wantErr   string
	}{
		{"ok", okBody, schemas.Usage{InputTokens: 7, OutputTokens: 3}, ""},
		{"two choices", `{"choices":[{"index":0},{"index":1}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`, schemas.Usage{InputTokens: 1, OutputTokens: 2}, ""},
		{"no usage", `{"choices":[{}]}`, schemas.Usage{}, ""},
		{"null usage", `{"choices":[{}],"usage":null}`, schemas.Usage{}, ""},
		{"usage a string", `{"choices":[{}],"usage":"lots"}`, schemas.Usage{}, ""},
		{"usage with a string count", `{"choices":[{}],"usage":{"prompt_tokens":"7","completion_tokens":3}}`, schemas.Usage{}, ""},
		{"error beside choices", `{"choices":[{}],"error":{"message":"partial"}}`, schemas.Usage{}, ""},
		{"empty choices", `{"choices":[]}`, schemas.Usage{}, "no choices"},
		{"null choices", `{"choices":null}`, schemas.Usage{}, "no choices"},
		{"choices an object", `{"choices":{"a":1}}`, schemas.Usage{}, "unparseable"},
		{"choices a number", `{"choices":3}`, schemas.Usage{}, "unparseable"},
		{"broken inside choices", `{"choices":[{"a":]}`, schemas.Usage{}, "unparseable"},
		{"trailing garbage", okBody + `x`, schemas.Usage{}, "unparseable"},
		{"error without choices", `{"error":{"message":"nope"}}`, schemas.Usage{}, "nope"},
	}
	c := New(Config{Name: "oa", APIKey: testKey})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.completion([]byte(tt.body), 200)
			if tt.wantErr != "" {
				pe, ok := llm.AsProviderError(err)
				if !ok || pe.Type != schemas.ErrBadResponse || !strings.Contains(pe.Message, tt.wantErr) {
					t.Fatalf("err %v, want a bad_response naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Usage != tt.wantUsage || string(resp.Body) != tt.body {
				t.Fatalf("usage %+v body %s", resp.Usage, resp.Body)
			}
		})
	}
}

func BenchmarkCompletionProbe(b *testing.B) {
	c := New(Config{Name: "oa"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.completion([]byte(okBody), 200); err != nil {
			b.Fatal(err)
		}
	}
}
