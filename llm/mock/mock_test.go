package mock_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// post sends a JSON body and returns status, headers and body.
func post(t *testing.T, ctx context.Context, url string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, b
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return m
}

// path walks a decoded JSON value by keys and indexes.
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// sseEvent is one server-sent event.
type sseEvent struct{ event, data string }

// readSSE reads events until EOF; err is the read error, if any (an
// unexpected EOF for an aborted stream).
func readSSE(r io.Reader) ([]sseEvent, error) {
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
			if cur.data != "" || cur.event != "" {
				evs = append(evs, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return evs, sc.Err()
}

// stream posts body and reads the SSE answer.
func stream(t *testing.T, url string, hdr map[string]string, body string) (*http.Response, []sseEvent, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs, err := readSSE(resp.Body)
	return resp, evs, err
}

const openAIChat = `{"model":"gpt-mock","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}`

func TestOpenAIChat(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	for _, p := range []string{"/v1/chat/completions", "/chat/completions"} {
		status, _, b := post(t, context.Background(), srv.URL()+p, map[string]string{"Authorization": "Bearer sk-secret"}, openAIChat)
		if status != 200 {
			t.Fatalf("%s: status %d: %s", p, status, b)
		}
		m := decode(t, b)
		if got := path(m, "object"); got != "chat.completion" {
			t.Errorf("object = %v", got)
		}
		if got := path(m, "model"); got != "gpt-mock" {
			t.Errorf("model = %v", got)
		}
		if got := path(m, "choices", 0, "message", "content"); got != "mock reply to: hello there world" {
			t.Errorf("content = %v", got)
		}
		if got := path(m, "choices", 0, "message", "role"); got != "assistant" {
			t.Errorf("role = %v", got)
		}
		if got := path(m, "choices", 0, "finish_reason"); got != "stop" {
			t.Errorf("finish_reason = %v", got)
		}
		// input: "be brief" (2) + "hello there world" (3); output: 6 words.
		if in, out, tot := path(m, "usage", "prompt_tokens"), path(m, "usage", "completion_tokens"), path(m, "usage", "total_tokens"); in != 5.0 || out != 6.0 || tot != 11.0 {
			t.Errorf("usage = %v/%v/%v, want 5/6/11", in, out, tot)
		}
	}
	last := srv.LastRequest()
	if last.Shape != mock.ShapeOpenAI || last.Model != "gpt-mock" || last.System != "be brief" || last.Prompt != "hello there world" || last.Path != "/chat/completions" {
		t.Errorf("last request = %+v", last)
	}
	if got := last.Header.Get("Authorization"); got != "REDACTED" {
		t.Errorf("Authorization recorded as %q, want REDACTED", got)
	}
	if !bytes.Contains(last.Body, []byte(`"be brief"`)) {
		t.Errorf("raw body not recorded: %s", last.Body)
	}
	if st := srv.Stats(); st.Requests != 2 || st.OpenAI != 2 || st.Succeeded != 2 || st.InFlight != 0 || st.Errors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOpenAIContentPartsAndReply(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Reply: func(p string) string { return "echo " + strings.ToUpper(p) }})
	body := `{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"sys a"}]},{"role":"user","content":[{"type":"text","text":"first"}]},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"second part"}]}]}`
	status, _, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, body)
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	m := decode(t, b)
	if got := path(m, "choices", 0, "message", "content"); got != "echo SECOND PART" {
		t.Errorf("content = %v", got)
	}
	if got := path(m, "usage", "prompt_tokens"); got != 6.0 {
		t.Errorf("prompt_tokens = %v, want 6", got)
	}
	if got := srv.LastRequest().System; got != "sys a" {
		t.Errorf("system = %q", got)
	}
}

func TestOpenAILimitsStopsAndTools(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{ToolArguments: json.RawMessage(`{"city":"Paris"}`)})
	msgs := `"messages":[{"role":"user","content":"one two three four"}]`
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}},{"type":"function","function":{"name":"get_time"}}]`
	tests := []struct {
		name, extra, content, finish, tool, args string
		outTokens                                float64
	}{
		{name: "max_tokens", extra: `"max_tokens":3`, content: "mock reply to:", finish: "length", outTokens: 3},
		{name: "max_completion_tokens", extra: `"max_completion_tokens":4,"max_tokens":1`, content: "mock reply to: one", finish: "length", outTokens: 4},
		{name: "max_tokens not reached", extra: `"max_tokens":100`, content: "mock reply to: one two three four", finish: "stop", outTokens: 7},
		{name: "stop string", extra: `"stop":"three"`, content: "mock reply to: one two ", finish: "stop", outTokens: 5},
		{name: "stop array earliest", extra: `"stop":["four","two"]`, content: "mock reply to: one ", finish: "stop", outTokens: 4},
		{name: "stop then max", extra: `"stop":["four"],"max_tokens":2`, content: "mock reply", finish: "length", outTokens: 2},
		{name: "tools auto", extra: tools, finish: "tool_calls", tool: "get_weather", args: `{"city":"Paris"}`, outTokens: 2},
		{name: "tools named", extra: tools + `,"tool_choice":{"type":"function","function":{"name":"get_time"}}`, finish: "tool_calls", tool: "get_time", args: `{"city":"Paris"}`, outTokens: 2},
		{name: "tools none", extra: tools + `,"tool_choice":"none"`, content: "mock reply to: one two three four", finish: "stop", outTokens: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, `{"model":"m",`+msgs+`,`+tt.extra+`}`)
			if status != 200 {
				t.Fatalf("status %d: %s", status, b)
			}
			m := decode(t, b)
			if got := path(m, "choices", 0, "finish_reason"); got != tt.finish {
				t.Errorf("finish_reason = %v, want %v", got, tt.finish)
			}
			if got := path(m, "usage", "completion_tokens"); got != tt.outTokens {
				t.Errorf("completion_tokens = %v, want %v", got, tt.outTokens)
			}
			if tt.tool == "" {
				if got := path(m, "choices", 0, "message", "content"); got != tt.content {
					t.Errorf("content = %q, want %q", got, tt.content)
				}
				return
			}
			if got := path(m, "choices", 0, "message", "content"); got != nil {
				t.Errorf("content = %v, want null", got)
			}
			tc := path(m, "choices", 0, "message", "tool_calls", 0)
			if path(tc, "type") != "function" || path(tc, "function", "name") != tt.tool || path(tc, "function", "arguments") != tt.args {
				t.Errorf("tool call = %v", tc)
			}
			if id, _ := path(tc, "id").(string); !strings.HasPrefix(id, "call_") {
				t.Errorf("tool call id = %q", id)
			}
		})
	}
}

func TestOpenAIBadRequests(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	tests := []struct{ name, body, want string }{
		{"not json", `{`, "parse the JSON"},
		{"no model", `{"messages":[{"role":"user","content":"x"}]}`, "model"},
		{"no messages", `{"model":"m","messages":[]}`, "messages"},
		{"bad stop", `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}`, "stop"},
		{"unknown tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`, `"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, tt.body)
			m := decode(t, b)
			msg, _ := path(m, "error", "message").(string)
			if status != 400 || path(m, "error", "type") != "invalid_request_error" || !strings.Contains(msg, tt.want) {
				t.Errorf("status %d body %s, want 400 invalid_request_error mentioning %s", status, b, tt.want)
			}
		})
	}
	if st := srv.Stats(); st.BadRequests != int64(len(tests)) || st.Errors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOpenAIStream(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage=", includeUsage), func(t *testing.T) {
			body := fmt.Sprintf(`{"model":"gpt-mock","stream":true,"stream_options":{"include_usage":%v},"messages":[{"role":"user","content":"hi you"}]}`, includeUsage)
			resp, evs, err := stream(t, srv.URL()+"/v1/chat/completions", nil, body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if evs[len(evs)-1].data != "[DONE]" {
				t.Fatalf("last event %q, want [DONE]", evs[len(evs)-1].data)
			}
			var text strings.Builder
			var finish any
			var usage any
			chunks := 0
			for _, ev := range evs[:len(evs)-1] {
				m := decode(t, []byte(ev.data))
				if path(m, "object") != "chat.completion.chunk" || path(m, "model") != "gpt-mock" {
					t.Fatalf("bad chunk %s", ev.data)
				}
				if choices := path(m, "choices").([]any); len(choices) == 0 {
					usage = path(m, "usage")
					continue
				}
				chunks++
				if c, ok := path(m, "choices", 0, "delta", "content").(string); ok {
					text.WriteString(c)
				}
				if f := path(m, "choices", 0, "finish_reason"); f != nil {
					finish = f
				}
			}
			if text.String() != "mock reply to: hi you" || finish != "stop" {
				t.Errorf("streamed %q finish %v", text.String(), finish)
			}
			if chunks != 1+5+1 { // role, 5 words, finish
				t.Errorf("%d choice chunks, want 7", chunks)
			}
			if includeUsage {
				if path(usage, "prompt_tokens") != 2.0 || path(usage, "completion_tokens") != 5.0 {
					t.Errorf("usage chunk = %v", usage)
				}
			} else if usage != nil {
				t.Errorf("usage chunk without include_usage: %v", usage)
			}
		})
	}
	t.Run("tool call", func(t *testing.T) {
		s2 := testenv.StartMock(t, mock.Options{ToolArguments: json.RawMessage(`{"location":"San Francisco, CA"}`)})
		body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"w"}}],"tool_choice":"required"}`
		_, evs, err := stream(t, s2.URL()+"/v1/chat/completions", nil, body)
		if err != nil {
			t.Fatal(err)
		}
		var args strings.Builder
		var name, finish any
		for _, ev := range evs[:len(evs)-1] {
			m := decode(t, []byte(ev.data))
			tc := path(m, "choices", 0, "delta", "tool_calls", 0)
			if n := path(tc, "function", "name"); n != nil {
				name = n
			}
			if a, ok := path(tc, "function", "arguments").(string); ok {
				args.WriteString(a)
			}
			if f := path(m, "choices", 0, "finish_reason"); f != nil {
				finish = f
			}
		}
		if name != "w" || args.String() != `{"location":"San Francisco, CA"}` || finish != "tool_calls" {
			t.Errorf("tool stream name=%v args=%q finish=%v", name, args.String(), finish)
		}
	})
	if st := srv.Stats(); st.Streams != 2 || st.Succeeded != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestModelsList(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Models: []string{"a", "b"}})
	resp, err := http.Get(srv.URL() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := decode(t, b)
	if resp.StatusCode != 200 || path(m, "object") != "list" || path(m, "data", 1, "id") != "b" {
		t.Errorf("models: %d %s", resp.StatusCode, b)
	}
	if st := srv.Stats(); st.Requests != 0 {
		t.Errorf("model listing counted as a call: %+v", st)
	}
}

func TestFailFirst(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{FailFirst: 2, ErrorStatus: 429, RetryAfter: 1500 * time.Millisecond}})
	var statuses []int
	for range 4 {
		status, hdr, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat)
		statuses = append(statuses, status)
		if status == 429 {
			if got := hdr.Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After = %q, want 2 (1.5s rounded up)", got)
			}
			m := decode(t, b)
			if path(m, "error", "code") != "rate_limit_exceeded" {
				t.Errorf("429 body = %s", b)
			}
		}
	}
	if fmt.Sprint(statuses) != "[429 429 200 200]" {
		t.Errorf("statuses = %v, want [429 429 200 200]", statuses)
	}
	if st := srv.Stats(); st.Errors != 2 || st.Succeeded != 2 || st.Requests != 4 {
		t.Errorf("stats = %+v", st)
	}
	// Replacing the fault set restarts the count; default status is 500.
	srv.SetFaults(mock.Faults{FailFirst: 1})
	if status, hdr, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat); status != 500 || hdr.Get("Retry-After") != "" {
		t.Errorf("after SetFaults: status %d Retry-After %q, want 500 and none", status, hdr.Get("Retry-After"))
	}
	if status, _, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat); status != 200 {
		t.Errorf("second call after SetFaults: status %d", status)
	}
	// Reset zeroes counters and restarts FailFirst.
	srv.Reset()
	if st := srv.Stats(); st != (mock.Stats{}) {
		t.Errorf("after Reset: %+v", st)
	}
	if status, _, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat); status != 500 {
		t.Errorf("after Reset: status %d, want 500", status)
	}
}

func TestModelFaults(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{ModelFaults: map[string]mock.Faults{"bad": {ErrorRate: 1, ErrorStatus: 503}}})
	call := func(model string) int {
		status, _, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, `{"model":"`+model+`","messages":[{"role":"user","content":"x"}]}`)
		return status
	}
	if a, b := call("bad"), call("good"); a != 503 || b != 200 {
		t.Errorf("bad=%d good=%d, want 503 and 200", a, b)
	}
	srv.SetModelFaults("good", mock.Faults{FailFirst: 1, ErrorStatus: 502})
	if a := call("good"); a != 502 {
		t.Errorf("good after SetModelFaults = %d, want 502", a)
	}
	srv.ClearModelFaults("bad")
	if a := call("bad"); a != 200 {
		t.Errorf("bad after ClearModelFaults = %d, want 200", a)
	}
}

func TestErrorRateSeeded(t *testing.T) {
	run := func() []int {
		srv := testenv.StartMock(t, mock.Options{Seed: 42, Faults: mock.Faults{ErrorRate: 0.5}})
		var out []int
		for range 40 {
			status, _, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat)
			out = append(out, status)
		}
		if st := srv.Stats(); st.Errors+st.Succeeded != 40 {
			t.Errorf("stats = %+v", st)
		}
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different outcomes:\n%v\n%v", a, b)
	}
	fails := 0
	for _, s := range a {
		if s == 500 {
			fails++
		} else if s != 200 {
			t.Fatalf("unexpected status %d", s)
		}
	}
	if fails < 8 || fails > 32 {
		t.Errorf("%d/40 failures at rate 0.5", fails)
	}
}

func TestLatencyHonoursCancel(t *testing.T) {
	// A latency far beyond the test's budget: the call can only finish
	// because the client cancels, which the mock must count.
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{Latency: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/chat/completions", strings.NewReader(openAIChat))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 1 {
			return fmt.Errorf("in flight %d", st.InFlight)
		}
		return nil
	})
	select {
	case err := <-errc:
		t.Fatalf("call returned during latency: %v", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want context.Canceled", err)
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.Canceled != 1 || st.InFlight != 0 || st.Succeeded != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestHang(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{Hang: true}})
	// Client disconnect ends the hang and counts as canceled.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/chat/completions", strings.NewReader(openAIChat))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 1 {
			return fmt.Errorf("in flight %d", st.InFlight)
		}
		return nil
	})
	cancel()
	<-errc
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.Canceled != 1 || st.InFlight != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})

	// Server close releases a hanging call without counting a cancel.
	go func() {
		resp, err := http.Post(srv.URL()+"/v1/chat/completions", "application/json", strings.NewReader(openAIChat))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 1 {
			return fmt.Errorf("in flight %d", st.InFlight)
		}
		return nil
	})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("hanging call got a response after Close")
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 0 || st.Canceled != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	if err := srv.Close(); !errors.Is(err, mock.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func TestMalformed(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{Malformed: true}})
	status, hdr, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat)
	var v any
	if status != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal(b, &v) == nil {
		t.Errorf("status %d content-type %q body %q: want 200 JSON that does not parse", status, hdr.Get("Content-Type"), b)
	}
	_, evs, _ := stream(t, srv.URL()+"/v1/chat/completions", nil, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if len(evs) != 1 || json.Unmarshal([]byte(evs[0].data), &v) == nil {
		t.Errorf("malformed stream events = %v", evs)
	}
	if st := srv.Stats(); st.Errors != 2 || st.Succeeded != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOpenAIErrorAfterChunks(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{ErrorAfterChunks: 2, ErrorStatus: 503}})
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"a b c d"}]}`
	_, evs, err := stream(t, srv.URL()+"/v1/chat/completions", nil, body)
	if err == nil {
		t.Error("stream ended cleanly; want an aborted connection")
	}
	// role chunk + 2 content chunks + error event, no [DONE].
	if len(evs) != 4 {
		t.Fatalf("%d events: %v", len(evs), evs)
	}
	m := decode(t, []byte(evs[3].data))
	if path(m, "error", "type") != "server_error" {
		t.Errorf("error event = %s", evs[3].data)
	}
	for _, ev := range evs {
		if ev.data == "[DONE]" {
			t.Error("aborted stream sent [DONE]")
		}
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.Errors != 1 || st.Succeeded != 0 || st.InFlight != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestStreamClientDisconnect(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{ChunkDelay: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read the role chunk and the first word, then hang up mid-stream.
	br := bufio.NewReader(resp.Body)
	for n := 0; n < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	cancel()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.Canceled != 1 || st.InFlight != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestMaxInFlight(t *testing.T) {
	// Each call stays in flight until the client cancels it, so all N are
	// concurrent by construction; the test then releases them.
	const n = 8
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{Latency: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/chat/completions", strings.NewReader(openAIChat))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != n || st.MaxInFlight != n {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	cancel()
	wg.Wait()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 0 || st.MaxInFlight != n || st.Canceled != n {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestMaxInFlightWithLatency(t *testing.T) {
	// Calls that do finish: a short latency with a cap of 3 concurrent
	// clients never shows more than 3 in flight.
	const clients, perClient = 3, 4
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{Latency: 20 * time.Millisecond}})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				resp, err := http.Post(srv.URL()+"/v1/chat/completions", "application/json", strings.NewReader(openAIChat))
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	st := srv.Stats()
	if st.MaxInFlight < 1 || st.MaxInFlight > clients || st.Succeeded != clients*perClient {
		t.Errorf("stats = %+v", st)
	}
}

func TestAPIKey(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "sk-right"})
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer sk-wrong"}} {
		status, _, b := post(t, context.Background(), srv.URL()+"/v1/chat/completions", hdr, openAIChat)
		m := decode(t, b)
		if status != 401 || path(m, "error", "code") != "invalid_api_key" {
			t.Errorf("status %d body %s", status, b)
		}
		if bytes.Contains(b, []byte("sk-")) {
			t.Errorf("error body leaks a key: %s", b)
		}
	}
	if status, _, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-right"}, openAIChat); status != 200 {
		t.Errorf("right key: status %d", status)
	}
	if st := srv.Stats(); st.Unauthorized != 2 || st.Succeeded != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestControlEndpoints(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	put := func(q, body string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL()+"/_mock/faults"+q, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	get := func(p string) (int, []byte) {
		resp, err := http.Get(srv.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if status, b := put("", `{"fail_first":1,"error_status":429,"retry_after":"3s","latency":"1ms"}`); status != 200 {
		t.Fatalf("PUT faults: %d %s", status, b)
	}
	if f := srv.Faults(); f.FailFirst != 1 || f.ErrorStatus != 429 || f.RetryAfter != 3*time.Second || f.Latency != time.Millisecond {
		t.Errorf("faults after PUT = %+v", f)
	}
	if status, b := get("/_mock/faults"); status != 200 || !strings.Contains(string(b), `"retry_after":"3s"`) {
		t.Errorf("GET faults: %d %s", status, b)
	}
	for _, bad := range []string{`{"error_rate":2}`, `{"nope":1}`, `{"latency":"soon"}`, `{"error_status":200}`} {
		if status, b := put("", bad); status != 400 {
			t.Errorf("PUT %s: %d %s, want 400", bad, status, b)
		}
	}
	if status, b := put("?model=m2", `{"hang":true}`); status != 200 {
		t.Fatalf("PUT model faults: %d %s", status, b)
	}
	if f, ok := srv.ModelFaults("m2"); !ok || !f.Hang {
		t.Errorf("model faults = %+v %v", f, ok)
	}
	status, hdr, _ := post(t, context.Background(), srv.URL()+"/v1/chat/completions", nil, openAIChat)
	if status != 429 || hdr.Get("Retry-After") != "3" {
		t.Errorf("call after PUT: %d Retry-After %q", status, hdr.Get("Retry-After"))
	}
	status, b := get("/_mock/stats")
	var st mock.Stats
	if err := json.Unmarshal(b, &st); err != nil || status != 200 || st.Requests != 1 || st.Errors != 1 {
		t.Errorf("GET stats: %d %s", status, b)
	}
	status, b = get("/_mock/last")
	if !strings.Contains(string(b), `"model":"gpt-mock"`) {
		t.Errorf("GET last: %d %s", status, b)
	}
	resp, err := http.Post(srv.URL()+"/_mock/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := srv.Stats(); resp.StatusCode != 200 || st.Requests != 0 || st.Errors != 0 {
		t.Errorf("after reset: %d %+v", resp.StatusCode, st)
	}
}

func TestListenValidates(t *testing.T) {
	if _, err := mock.Listen("127.0.0.1:0", mock.Options{Faults: mock.Faults{ErrorRate: 1.5}}); !errors.Is(err, mock.ErrInvalidFaults) {
		t.Errorf("err = %v, want ErrInvalidFaults", err)
	}
	if _, err := mock.Listen("127.0.0.1:0", mock.Options{ToolArguments: json.RawMessage(`[1]`)}); !errors.Is(err, mock.ErrInvalidFaults) {
		t.Errorf("err = %v, want ErrInvalidFaults", err)
	}
}

var anthropicHdr = map[string]string{"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}

const anthropicMsg = `{"model":"claude-mock","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hello there world"}]}`

func TestAnthropicMessages(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "sk-ant", ToolArguments: json.RawMessage(`{"q":"x"}`)})
	status, _, b := post(t, context.Background(), srv.URL()+"/v1/messages", anthropicHdr, anthropicMsg)
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	m := decode(t, b)
	if path(m, "type") != "message" || path(m, "role") != "assistant" || path(m, "model") != "claude-mock" {
		t.Errorf("message = %s", b)
	}
	if path(m, "content", 0, "type") != "text" || path(m, "content", 0, "text") != "mock reply to: hello there world" {
		t.Errorf("content = %v", path(m, "content"))
	}
	if path(m, "stop_reason") != "end_turn" || path(m, "usage", "input_tokens") != 5.0 || path(m, "usage", "output_tokens") != 6.0 {
		t.Errorf("stop/usage = %v %v", path(m, "stop_reason"), path(m, "usage"))
	}
	if id, _ := path(m, "id").(string); !strings.HasPrefix(id, "msg_") {
		t.Errorf("id = %q", id)
	}
	last := srv.LastRequest()
	if last.Shape != mock.ShapeAnthropic || last.System != "be brief" || last.Header.Get("X-Api-Key") != "REDACTED" || last.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("last = %+v", last)
	}

	msgs := `"messages":[{"role":"user","content":[{"type":"text","text":"one two three four"}]}]`
	tools := `"tools":[{"name":"search","input_schema":{"type":"object"}},{"name":"lookup","input_schema":{"type":"object"}}]`
	tests := []struct {
		name, extra, text, stop, seq, tool string
		out                                float64
	}{
		{name: "max_tokens", extra: `"max_tokens":2`, text: "mock reply", stop: "max_tokens", out: 2},
		{name: "stop_sequences", extra: `"max_tokens":50,"stop_sequences":["three","two"]`, text: "mock reply to: one ", stop: "stop_sequence", seq: "two", out: 4},
		{name: "tool auto", extra: `"max_tokens":50,` + tools, stop: "tool_use", tool: "search", out: 2},
		{name: "tool named", extra: `"max_tokens":50,` + tools + `,"tool_choice":{"type":"tool","name":"lookup"}`, stop: "tool_use", tool: "lookup", out: 2},
		{name: "tool none", extra: `"max_tokens":50,` + tools + `,"tool_choice":{"type":"none"}`, text: "mock reply to: one two three four", stop: "end_turn", out: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), srv.URL()+"/v1/messages", anthropicHdr, `{"model":"c",`+msgs+`,`+tt.extra+`}`)
			if status != 200 {
				t.Fatalf("status %d: %s", status, b)
			}
			m := decode(t, b)
			if path(m, "stop_reason") != tt.stop || path(m, "usage", "output_tokens") != tt.out {
				t.Errorf("stop_reason %v output_tokens %v, want %v %v", path(m, "stop_reason"), path(m, "usage", "output_tokens"), tt.stop, tt.out)
			}
			if tt.seq != "" && path(m, "stop_sequence") != tt.seq {
				t.Errorf("stop_sequence = %v", path(m, "stop_sequence"))
			}
			blk := path(m, "content", 0)
			if tt.tool == "" {
				if path(blk, "type") != "text" || path(blk, "text") != tt.text {
					t.Errorf("block = %v, want text %q", blk, tt.text)
				}
				return
			}
			if path(blk, "type") != "tool_use" || path(blk, "name") != tt.tool || path(blk, "input", "q") != "x" {
				t.Errorf("block = %v", blk)
			}
		})
	}
}

func TestAnthropicErrors(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "sk-ant"})
	tests := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		typ    string
	}{
		{"no key", map[string]string{"anthropic-version": "2023-06-01"}, anthropicMsg, 401, "authentication_error"},
		{"no version", map[string]string{"x-api-key": "sk-ant"}, anthropicMsg, 400, "invalid_request_error"},
		{"no max_tokens", anthropicHdr, `{"model":"c","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error"},
		{"bad json", anthropicHdr, `{`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), srv.URL()+"/v1/messages", tt.hdr, tt.body)
			m := decode(t, b)
			if status != tt.status || path(m, "type") != "error" || path(m, "error", "type") != tt.typ {
				t.Errorf("status %d body %s, want %d %s", status, b, tt.status, tt.typ)
			}
		})
	}
	srv.SetFaults(mock.Faults{FailFirst: 2, ErrorStatus: 529, RetryAfter: time.Second})
	status, hdr, b := post(t, context.Background(), srv.URL()+"/v1/messages", anthropicHdr, anthropicMsg)
	if m := decode(t, b); status != 529 || path(m, "error", "type") != "overloaded_error" || hdr.Get("Retry-After") != "1" {
		t.Errorf("injected: %d %s Retry-After %q", status, b, hdr.Get("Retry-After"))
	}
	srv.SetFaults(mock.Faults{FailFirst: 1, ErrorStatus: 429})
	status, _, b = post(t, context.Background(), srv.URL()+"/v1/messages", anthropicHdr, anthropicMsg)
	if m := decode(t, b); status != 429 || path(m, "error", "type") != "rate_limit_error" {
		t.Errorf("injected 429: %d %s", status, b)
	}
}

func TestAnthropicStream(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	body := `{"model":"claude-mock","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi you"}]}`
	_, evs, err := stream(t, srv.URL()+"/v1/messages", anthropicHdr, body)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var text strings.Builder
	var stop, outTokens, inTokens any
	for _, ev := range evs {
		m := decode(t, []byte(ev.data))
		if path(m, "type") != ev.event {
			t.Errorf("event %q carries type %v", ev.event, path(m, "type"))
		}
		names = append(names, ev.event)
		switch ev.event {
		case "message_start":
			inTokens = path(m, "message", "usage", "input_tokens")
		case "content_block_delta":
			if path(m, "delta", "type") != "text_delta" {
				t.Errorf("delta = %v", path(m, "delta"))
			}
			text.WriteString(path(m, "delta", "text").(string))
		case "message_delta":
			stop, outTokens = path(m, "delta", "stop_reason"), path(m, "usage", "output_tokens")
		}
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(names, " ") != want {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(names, " "), want)
	}
	if text.String() != "mock reply to: hi you" || stop != "end_turn" || outTokens != 5.0 || inTokens != 2.0 {
		t.Errorf("text %q stop %v out %v in %v", text.String(), stop, outTokens, inTokens)
	}

	t.Run("tool_use", func(t *testing.T) {
		body := `{"model":"c","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t1"}],"tool_choice":{"type":"any"}}`
		_, evs, err := stream(t, srv.URL()+"/v1/messages", anthropicHdr, body)
		if err != nil {
			t.Fatal(err)
		}
		var partial strings.Builder
		var start, stop any
		for _, ev := range evs {
			m := decode(t, []byte(ev.data))
			switch ev.event {
			case "content_block_start":
				start = path(m, "content_block")
			case "content_block_delta":
				partial.WriteString(path(m, "delta", "partial_json").(string))
			case "message_delta":
				stop = path(m, "delta", "stop_reason")
			}
		}
		if path(start, "type") != "tool_use" || path(start, "name") != "t1" || partial.String() != "{}" || stop != "tool_use" {
			t.Errorf("start %v partial %q stop %v", start, partial.String(), stop)
		}
	})

	t.Run("error after chunks", func(t *testing.T) {
		srv.SetFaults(mock.Faults{ErrorAfterChunks: 1, ErrorStatus: 529})
		_, evs, err := stream(t, srv.URL()+"/v1/messages", anthropicHdr, body)
		if err == nil {
			t.Error("stream ended cleanly; want an aborted connection")
		}
		if n := len(evs); n != 5 || evs[3].event != "content_block_delta" || evs[4].event != "error" {
			t.Fatalf("events = %v", evs)
		}
		if m := decode(t, []byte(evs[4].data)); path(m, "error", "type") != "overloaded_error" {
			t.Errorf("error event = %s", evs[4].data)
		}
	})
}

func geminiURL(srv *mock.Server, model, method string) string {
	return srv.URL() + "/v1beta/models/" + model + ":" + method
}

var geminiHdr = map[string]string{"x-goog-api-key": "g-key"}

const geminiReq = `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello there world"}]}]}`

func TestGeminiGenerate(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "g-key", ToolArguments: json.RawMessage(`{"a":1}`)})
	status, _, b := post(t, context.Background(), geminiURL(srv, "gemini-mock", "generateContent"), geminiHdr, geminiReq)
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	m := decode(t, b)
	cand := path(m, "candidates", 0)
	if path(cand, "content", "role") != "model" || path(cand, "content", "parts", 0, "text") != "mock reply to: hello there world" || path(cand, "finishReason") != "STOP" {
		t.Errorf("candidate = %v", cand)
	}
	if path(m, "usageMetadata", "promptTokenCount") != 5.0 || path(m, "usageMetadata", "candidatesTokenCount") != 6.0 || path(m, "usageMetadata", "totalTokenCount") != 11.0 {
		t.Errorf("usage = %v", path(m, "usageMetadata"))
	}
	last := srv.LastRequest()
	if last.Shape != mock.ShapeGemini || last.Model != "gemini-mock" || last.System != "be brief" || last.KeyInURL || last.Header.Get("X-Goog-Api-Key") != "REDACTED" {
		t.Errorf("last = %+v", last)
	}

	contents := `"contents":[{"role":"user","parts":[{"text":"one two three four"}]}]`
	tools := `"tools":[{"functionDeclarations":[{"name":"f1"},{"name":"f2"}]}]`
	tests := []struct {
		name, extra, text, finish, tool string
		out                             float64
	}{
		{name: "maxOutputTokens", extra: `"generationConfig":{"maxOutputTokens":3}`, text: "mock reply to:", finish: "MAX_TOKENS", out: 3},
		{name: "stopSequences", extra: `"generationConfig":{"stopSequences":["three"]}`, text: "mock reply to: one two ", finish: "STOP", out: 5},
		{name: "snake_case config", extra: `"generation_config":{"maxOutputTokens":1}`, text: "mock", finish: "MAX_TOKENS", out: 1},
		{name: "tool auto", extra: tools, finish: "STOP", tool: "f1", out: 2},
		{name: "tool ANY allowed", extra: tools + `,"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f2"]}}`, finish: "STOP", tool: "f2", out: 2},
		{name: "tool NONE", extra: tools + `,"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}`, text: "mock reply to: one two three four", finish: "STOP", out: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), geminiURL(srv, "g", "generateContent"), geminiHdr, `{`+contents+`,`+tt.extra+`}`)
			if status != 200 {
				t.Fatalf("status %d: %s", status, b)
			}
			m := decode(t, b)
			cand := path(m, "candidates", 0)
			if path(cand, "finishReason") != tt.finish || path(m, "usageMetadata", "candidatesTokenCount") != tt.out {
				t.Errorf("finish %v out %v, want %v %v", path(cand, "finishReason"), path(m, "usageMetadata", "candidatesTokenCount"), tt.finish, tt.out)
			}
			part := path(cand, "content", "parts", 0)
			if tt.tool == "" {
				if path(part, "text") != tt.text {
					t.Errorf("part = %v, want text %q", part, tt.text)
				}
				return
			}
			if path(part, "functionCall", "name") != tt.tool || path(part, "functionCall", "args", "a") != 1.0 {
				t.Errorf("part = %v", part)
			}
		})
	}
}

func TestGeminiErrors(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "g-key"})
	tests := []struct {
		name, url string
		hdr       map[string]string
		body      string
		status    int
		gstatus   string
	}{
		{"no key", geminiURL(srv, "g", "generateContent"), nil, geminiReq, 401, "UNAUTHENTICATED"},
		{"wrong key", geminiURL(srv, "g", "generateContent"), map[string]string{"x-goog-api-key": "nope"}, geminiReq, 401, "UNAUTHENTICATED"},
		{"no contents", geminiURL(srv, "g", "generateContent"), geminiHdr, `{"contents":[]}`, 400, "INVALID_ARGUMENT"},
		{"bad json", geminiURL(srv, "g", "generateContent"), geminiHdr, `{`, 400, "INVALID_ARGUMENT"},
		{"unknown method", geminiURL(srv, "g", "countTokens"), geminiHdr, geminiReq, 400, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, b := post(t, context.Background(), tt.url, tt.hdr, tt.body)
			m := decode(t, b)
			if status != tt.status || path(m, "error", "code") != float64(tt.status) || path(m, "error", "status") != tt.gstatus {
				t.Errorf("status %d body %s, want %d %s", status, b, tt.status, tt.gstatus)
			}
		})
	}
	// A key in the URL works, as with the real API, but is flagged.
	status, _, _ := post(t, context.Background(), geminiURL(srv, "g", "generateContent")+"?key=g-key", nil, geminiReq)
	if last := srv.LastRequest(); status != 200 || !last.KeyInURL || strings.Contains(last.Query, "g-key") {
		t.Errorf("key in URL: status %d last %+v", status, last)
	}
	srv.SetModelFaults("busy", mock.Faults{ErrorRate: 1, ErrorStatus: 503})
	status, _, b := post(t, context.Background(), geminiURL(srv, "busy", "generateContent"), geminiHdr, geminiReq)
	if m := decode(t, b); status != 503 || path(m, "error", "status") != "UNAVAILABLE" {
		t.Errorf("injected: %d %s", status, b)
	}
}

func TestGeminiStream(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	body := `{"contents":[{"role":"user","parts":[{"text":"hi you"}]}]}`
	resp, evs, err := stream(t, geminiURL(srv, "g", "streamGenerateContent")+"?alt=sse", geminiHdr, body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("content-type %q", resp.Header.Get("Content-Type"))
	}
	collect := func(objs []map[string]any) (string, any, any) {
		var text strings.Builder
		var finish, usage any
		for _, m := range objs {
			if s, ok := path(m, "candidates", 0, "content", "parts", 0, "text").(string); ok {
				text.WriteString(s)
			}
			if f := path(m, "candidates", 0, "finishReason"); f != nil {
				finish = f
			}
			if u := path(m, "usageMetadata"); u != nil {
				usage = u
			}
		}
		return text.String(), finish, usage
	}
	var objs []map[string]any
	for _, ev := range evs {
		objs = append(objs, decode(t, []byte(ev.data)))
	}
	text, finish, usage := collect(objs)
	if len(evs) != 6 || text != "mock reply to: hi you" || finish != "STOP" || path(usage, "candidatesTokenCount") != 5.0 {
		t.Errorf("%d events, text %q finish %v usage %v", len(evs), text, finish, usage)
	}

	// Without alt=sse the stream is one JSON array.
	_, _, b := post(t, context.Background(), geminiURL(srv, "g", "streamGenerateContent"), geminiHdr, body)
	var arr []map[string]any
	if err := json.Unmarshal(b, &arr); err != nil {
		t.Fatalf("array stream %q: %v", b, err)
	}
	if text, finish, _ := collect(arr); len(arr) != 6 || text != "mock reply to: hi you" || finish != "STOP" {
		t.Errorf("array: %d items, %q %v", len(arr), text, finish)
	}

	t.Run("function call", func(t *testing.T) {
		body := `{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}]}`
		_, evs, err := stream(t, geminiURL(srv, "g", "streamGenerateContent")+"?alt=sse", geminiHdr, body)
		if err != nil {
			t.Fatal(err)
		}
		if m := decode(t, []byte(evs[0].data)); path(m, "candidates", 0, "content", "parts", 0, "functionCall", "name") != "f" {
			t.Errorf("first event %s", evs[0].data)
		}
	})

	t.Run("error after chunks", func(t *testing.T) {
		srv.SetFaults(mock.Faults{ErrorAfterChunks: 2, ErrorStatus: 500})
		_, evs, err := stream(t, geminiURL(srv, "g", "streamGenerateContent")+"?alt=sse", geminiHdr, body)
		if err == nil {
			t.Error("stream ended cleanly; want an aborted connection")
		}
		if len(evs) != 3 {
			t.Fatalf("events = %v", evs)
		}
		if m := decode(t, []byte(evs[2].data)); path(m, "error", "status") != "INTERNAL" {
			t.Errorf("error event = %s", evs[2].data)
		}
	})
}

func TestModelsListShapes(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{})
	get := func(p string, hdr map[string]string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+p, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return decode(t, b)
	}
	if m := get("/v1/models", anthropicHdr); path(m, "data", 0, "type") != "model" || path(m, "has_more") != false {
		t.Errorf("anthropic models = %v", m)
	}
	if m := get("/v1beta/models", geminiHdr); path(m, "models", 0, "name") != "models/mock-model" {
		t.Errorf("gemini models = %v", m)
	}
}

// TestOpenAISDKConformance drives the mock with the official openai-go
// client: if the SDK cannot read our shapes, neither can real integrations.
func TestOpenAISDKConformance(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "sk-sdk"})
	client := openai.NewClient(option.WithBaseURL(srv.URL()+"/v1"), option.WithAPIKey("sk-sdk"), option.WithMaxRetries(0))
	ctx := natstest.Context(t)
	params := openai.ChatCompletionNewParams{
		Model:         "gpt-mock",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("sys"), openai.UserMessage("ping pong")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != "mock reply to: ping pong" || c.Usage.PromptTokens != 3 || c.Usage.CompletionTokens != 5 {
		t.Errorf("completion = %+v", c)
	}

	st := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "mock reply to: ping pong" || acc.Choices[0].FinishReason != "stop" || acc.Usage.CompletionTokens != 5 {
		t.Errorf("accumulated = %+v", acc.ChatCompletion)
	}

	srv.SetFaults(mock.Faults{FailFirst: 1, ErrorStatus: 429, RetryAfter: time.Second})
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
		t.Errorf("injected error = %v", err)
	}

	srv.SetFaults(mock.Faults{ErrorAfterChunks: 2})
	st = client.Chat.Completions.NewStreaming(ctx, params)
	for st.Next() {
	}
	if st.Err() == nil {
		t.Error("mid-stream failure not surfaced by the SDK")
	}
}

func TestStreamTTFB(t *testing.T) {
	// Headers arrive at once; the first event waits for TTFB, which only a
	// client cancel can cut short here.
	srv := testenv.StartMock(t, mock.Options{Faults: mock.Faults{TTFB: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct{ url, body string }{
		{srv.URL() + "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`},
		{srv.URL() + "/v1/messages", `{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}`},
		{geminiURL(srv, "m", "streamGenerateContent") + "?alt=sse", `{"contents":[{"parts":[{"text":"x"}]}]}`},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tc.url, strings.NewReader(tc.body))
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("%s: status %d content-type %q", tc.url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.InFlight != 3 || st.Streams != 3 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	cancel()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Stats(); st.Canceled != 3 || st.InFlight != 0 || st.Succeeded != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}
