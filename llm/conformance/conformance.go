// Package conformance is the shared behaviour suite every provider adapter
// runs against the real mock provider (llm/mock) over HTTP on loopback:
// text, system prompt, multi-turn, tools, stop, max_tokens, streaming, usage,
// one HTTP attempt per call, each error class, cancellation, and that the
// API key never appears in an error or in a URL.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Key is the API key the suite configures on the mock and the adapter.
const Key = "sk-conformance-SECRET-0042"

// KeyPart returns the first 8-byte piece of key found in s, or "": a key
// redacted only in part leaks still.
func KeyPart(s, key string) string {
	for i := 0; i+8 <= len(key); i++ {
		if strings.Contains(s, key[i:i+8]) {
			return key[i : i+8]
		}
	}
	return ""
}

// toolArgs are the arguments the mock puts in its tool calls.
const toolArgs = `{"city":"Paris","days":2}`

// Harness describes one adapter to the suite.
type Harness struct {
	// Shape is the vendor shape the adapter speaks.
	Shape mock.Shape
	// New builds the adapter for the mock listening at mockURL (mock.Server.URL(),
	// no path) with the given key and HTTP client. It must return a Streamer.
	New func(mockURL, key string, hc *http.Client) llm.Completer
	// Model is the provider model name to request.
	Model string
	// SystemField is the top-level member of the vendor request body that
	// must carry the system prompt ("messages", "system", "systemInstruction").
	SystemField string
}

type env struct {
	t   *testing.T
	h   Harness
	srv *mock.Server
	c   llm.Completer
}

func (h Harness) start(t *testing.T, f mock.Faults) *env {
	t.Helper()
	srv, err := mock.Listen("127.0.0.1:0", mock.Options{APIKey: Key, Faults: f, ToolArguments: json.RawMessage(toolArgs)})
	if err != nil {
		t.Fatalf("mock.Listen: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &env{t: t, h: h, srv: srv, c: h.New(srv.URL(), Key, &http.Client{})}
}

func (e *env) complete(ctx context.Context, body string) (*llm.Response, error) {
	return e.c.Complete(ctx, &llm.Request{Model: e.h.Model, Body: json.RawMessage(body)})
}

func (e *env) stream(ctx context.Context, body string, emit func(json.RawMessage) error) (*llm.Response, error) {
	s, ok := e.c.(llm.Streamer)
	if !ok {
		e.t.Fatalf("%T does not implement llm.Streamer", e.c)
	}
	return s.Stream(ctx, &llm.Request{Model: e.h.Model, Body: json.RawMessage(body)}, emit)
}

// completion is the part of a chat.completion the suite checks.
type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			ToolCalls []struct {
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
}

func parse(t *testing.T, resp *llm.Response) completion {
	t.Helper()
	var c completion
	if err := json.Unmarshal(resp.Body, &c); err != nil {
		t.Fatalf("response body is not a chat.completion: %v: %s", err, resp.Body)
	}
	if c.Object != "chat.completion" || c.ID == "" || len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" {
		t.Fatalf("not a chat.completion with one assistant choice: %s", resp.Body)
	}
	return c
}

func content(c completion) string {
	if p := c.Choices[0].Message.Content; p != nil {
		return *p
	}
	return ""
}

// must fails t on a call error: must(t)(e.complete(...)).
func must(t *testing.T) func(*llm.Response, error) *llm.Response {
	return func(resp *llm.Response, err error) *llm.Response {
		t.Helper()
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		return resp
	}
}

const hello = `{"model":"route","messages":[{"role":"user","content":"hello there"}]}`

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("text", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		resp := must(t)(e.complete(context.Background(), hello))
		c := parse(t, resp)
		if got := content(c); got != "mock reply to: hello there" || c.Choices[0].FinishReason != "stop" {
			t.Fatalf("content %q finish %q", got, c.Choices[0].FinishReason)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		rec := e.srv.LastRequest()
		if rec.Shape != h.Shape || rec.Model != h.Model || rec.KeyInURL || rec.Stream {
			t.Fatalf("recorded %+v", rec)
		}
	})

	t.Run("usage normalised", func(t *testing.T) {
		e := h.start(t, mock.Faults{InputTokens: 123, OutputTokens: 45})
		resp := must(t)(e.complete(context.Background(), hello))
		c := parse(t, resp)
		if resp.Usage != (schemas.Usage{InputTokens: 123, OutputTokens: 45}) {
			t.Fatalf("Response.Usage %+v", resp.Usage)
		}
		if c.Usage == nil || c.Usage.PromptTokens != 123 || c.Usage.CompletionTokens != 45 || c.Usage.TotalTokens != 168 {
			t.Fatalf("body usage %+v", c.Usage)
		}
	})

	t.Run("system prompt", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		must(t)(e.complete(context.Background(), `{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hi"}]}`))
		rec := e.srv.LastRequest()
		if rec.System != "You are terse." {
			t.Fatalf("mock saw system %q", rec.System)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body, &body); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body[h.SystemField]), "You are terse.") {
			t.Fatalf("system prompt not in %q: %s", h.SystemField, rec.Body)
		}
	})

	t.Run("multi-turn", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		resp := must(t)(e.complete(context.Background(), `{"messages":[{"role":"user","content":"first question"},{"role":"assistant","content":"first answer"},{"role":"user","content":"second question"}]}`))
		if got := content(parse(t, resp)); got != "mock reply to: second question" {
			t.Fatalf("content %q", got)
		}
		rec := e.srv.LastRequest()
		if rec.Prompt != "second question" || !strings.Contains(string(rec.Body), "first answer") || !strings.Contains(string(rec.Body), "first question") {
			t.Fatalf("history lost: prompt %q body %s", rec.Prompt, rec.Body)
		}
		// Five words of input across the three turns.
		if resp.Usage.InputTokens != 6 {
			t.Fatalf("input tokens %d, want 6 (every turn counted)", resp.Usage.InputTokens)
		}
	})

	const tools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	t.Run("tools", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		resp := must(t)(e.complete(context.Background(), `{"messages":[{"role":"user","content":"weather in Paris?"}],`+tools+`,"tool_choice":"required"}`))
		c := parse(t, resp)
		checkToolCall(t, c)
		// The tool result goes back in the vendor's shape and the turn continues.
		resp = must(t)(e.complete(context.Background(), `{"messages":[{"role":"user","content":"weather in Paris?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_7","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","tool_call_id":"call_7","content":"18C and sunny"}],`+tools+`,"tool_choice":"none"}`))
		if c := parse(t, resp); c.Choices[0].FinishReason != "stop" || len(c.Choices[0].Message.ToolCalls) != 0 {
			t.Fatalf("after tool result: %s", resp.Body)
		}
		if !strings.Contains(string(e.srv.LastRequest().Body), "18C and sunny") {
			t.Fatalf("tool result not sent: %s", e.srv.LastRequest().Body)
		}
	})

	t.Run("stop", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		resp := must(t)(e.complete(context.Background(), `{"messages":[{"role":"user","content":"hello there"}],"stop":["to:"]}`))
		c := parse(t, resp)
		if got := content(c); strings.Contains(got, "to:") || !strings.HasPrefix(got, "mock reply") || c.Choices[0].FinishReason != "stop" {
			t.Fatalf("content %q finish %q", got, c.Choices[0].FinishReason)
		}
	})

	t.Run("max_tokens", func(t *testing.T) {
		e := h.start(t, mock.Faults{})
		resp := must(t)(e.complete(context.Background(), `{"messages":[{"role":"user","content":"hello there"}],"max_tokens":2}`))
		c := parse(t, resp)
		if got := content(c); strings.TrimSpace(got) != "mock reply" || c.Choices[0].FinishReason != "length" {
			t.Fatalf("content %q finish %q", got, c.Choices[0].FinishReason)
		}
		if resp.Usage.OutputTokens != 2 {
			t.Fatalf("output tokens %d", resp.Usage.OutputTokens)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		for _, includeUsage := range []bool{true, false} {
			t.Run(fmt.Sprintf("include_usage=%v", includeUsage), func(t *testing.T) {
				e := h.start(t, mock.Faults{})
				body := `{"messages":[{"role":"user","content":"hello there"}],"stream":true}`
				if includeUsage {
					body = `{"messages":[{"role":"user","content":"hello there"}],"stream":true,"stream_options":{"include_usage":true}}`
				}
				var chunks []json.RawMessage
				resp := must(t)(e.stream(context.Background(), body, func(c json.RawMessage) error {
					chunks = append(chunks, append(json.RawMessage(nil), c...))
					return nil
				}))
				text, finish, usage, _ := checkChunks(t, chunks, includeUsage)
				if text != "mock reply to: hello there" || finish != "stop" {
					t.Fatalf("streamed %q finish %q", text, finish)
				}
				c := parse(t, resp)
				if content(c) != text || c.Choices[0].FinishReason != "stop" {
					t.Fatalf("assembled body %s does not match the chunks", resp.Body)
				}
				if includeUsage {
					if usage == nil || resp.Usage != (schemas.Usage{InputTokens: usage.PromptTokens, OutputTokens: usage.CompletionTokens}) || resp.Usage.InputTokens != 2 || resp.Usage.OutputTokens != 5 {
						t.Fatalf("usage chunk %+v Response.Usage %+v", usage, resp.Usage)
					}
				}
				if rec := e.srv.LastRequest(); !rec.Stream || rec.KeyInURL {
					t.Fatalf("recorded %+v", rec)
				}
				// The mock counts success after its last write, so poll.
				natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
					if st := e.srv.Stats(); st.Succeeded != 1 || st.Requests != 1 || st.InFlight != 0 {
						return fmt.Errorf("stats %+v", st)
					}
					return nil
				})
			})
		}
		t.Run("tool call", func(t *testing.T) {
			e := h.start(t, mock.Faults{})
			var chunks []json.RawMessage
			resp := must(t)(e.stream(context.Background(), `{"messages":[{"role":"user","content":"weather?"}],`+tools+`,"stream":true}`, func(c json.RawMessage) error {
				chunks = append(chunks, append(json.RawMessage(nil), c...))
				return nil
			}))
			_, finish, _, args := checkChunks(t, chunks, false)
			if finish != "tool_calls" || !jsonEqual(args, toolArgs) {
				t.Fatalf("finish %q streamed arguments %q", finish, args)
			}
			checkToolCall(t, parse(t, resp))
		})
		t.Run("max_tokens", func(t *testing.T) {
			e := h.start(t, mock.Faults{})
			var chunks []json.RawMessage
			must(t)(e.stream(context.Background(), `{"messages":[{"role":"user","content":"hello there"}],"max_tokens":2,"stream":true}`, func(c json.RawMessage) error {
				chunks = append(chunks, c)
				return nil
			}))
			if _, finish, _, _ := checkChunks(t, chunks, false); finish != "length" {
				t.Fatalf("finish %q", finish)
			}
		})
	})

	var errs []error // every error seen, for the key check at the end
	expect := func(t *testing.T, err error, typ string, retryable bool) *llm.ProviderError {
		t.Helper()
		errs = append(errs, err)
		pe, ok := llm.AsProviderError(err)
		if !ok {
			t.Fatalf("error %v (%T) is not a *llm.ProviderError", err, err)
		}
		if pe.Type != typ || pe.Retryable != retryable {
			t.Fatalf("got type %q retryable %v (%v), want %q retryable %v", pe.Type, pe.Retryable, err, typ, retryable)
		}
		return pe
	}

	t.Run("errors", func(t *testing.T) {
		statusTests := []struct {
			status    int
			typ       string
			retryable bool
		}{
			{429, schemas.ErrRateLimited, true},
			{500, schemas.ErrServerError, true},
			{503, schemas.ErrServerError, true},
			{400, schemas.ErrInvalidRequest, false},
		}
		for _, tt := range statusTests {
			t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
				e := h.start(t, mock.Faults{FailFirst: 1, ErrorStatus: tt.status, RetryAfter: 2 * time.Second})
				_, err := e.complete(context.Background(), hello)
				pe := expect(t, err, tt.typ, tt.retryable)
				if pe.Status != tt.status || pe.RetryAfter != 2*time.Second {
					t.Fatalf("status %d retry-after %v", pe.Status, pe.RetryAfter)
				}
				if st := e.srv.Stats(); st.Requests != 1 {
					t.Fatalf("%d HTTP attempts, want exactly 1", st.Requests)
				}
				// The fault is spent: the next call succeeds.
				must(t)(e.complete(context.Background(), hello))
				_, err = e.stream(context.Background(), `{"messages":[{"role":"user","content":"x"}],"stream":true}`, func(json.RawMessage) error { return nil })
				if err != nil {
					t.Fatalf("stream after spent fault: %v", err)
				}
			})
		}
		t.Run("key in a non-JSON error body", func(t *testing.T) {
			// An upstream echoing the key in a plain-text body, the key
			// straddling the cut of the quoted snippet (300 bytes).
			e := h.start(t, mock.Faults{})
			for _, at := range []int{280, 292, 296, 299} {
				body := strings.Repeat("é", at/2) + strings.Repeat("x", at%2) + Key + strings.Repeat(" upstream said no", 30)
				e.srv.SetFaults(mock.Faults{FailFirst: 2, ErrorStatus: 502, ErrorBody: body})
				_, err := e.complete(context.Background(), hello)
				pe := expect(t, err, schemas.ErrServerError, true)
				_, serr := e.stream(context.Background(), `{"messages":[{"role":"user","content":"x"}],"stream":true}`, func(json.RawMessage) error { return nil })
				spe := expect(t, serr, schemas.ErrServerError, true)
				for _, msg := range []string{pe.Message, spe.Message} {
					if !utf8.ValidString(msg) || !strings.Contains(msg, "é") {
						t.Fatalf("key at byte %d: message %q is not the body's valid UTF-8 start", at, msg)
					}
					if part := KeyPart(msg, Key); part != "" {
						t.Fatalf("key at byte %d: %q of the key survives in %q", at, part, msg)
					}
				}
			}
		})
		t.Run("stream status", func(t *testing.T) {
			e := h.start(t, mock.Faults{FailFirst: 1, ErrorStatus: 429, RetryAfter: time.Second})
			n := 0
			_, err := e.stream(context.Background(), `{"messages":[{"role":"user","content":"x"}],"stream":true}`, func(json.RawMessage) error { n++; return nil })
			if pe := expect(t, err, schemas.ErrRateLimited, true); pe.RetryAfter != time.Second || n != 0 {
				t.Fatalf("retry-after %v, %d chunks", pe.RetryAfter, n)
			}
		})
		t.Run("401", func(t *testing.T) {
			srv, err := mock.Listen("127.0.0.1:0", mock.Options{APIKey: "some-other-key"})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c := h.New(srv.URL(), Key, &http.Client{})
			_, err = c.Complete(context.Background(), &llm.Request{Model: h.Model, Body: json.RawMessage(hello)})
			expect(t, err, schemas.ErrAuth, false)
		})
		t.Run("hang then timeout", func(t *testing.T) {
			e := h.start(t, mock.Faults{Hang: true})
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			_, err := e.complete(ctx, hello)
			expect(t, err, schemas.ErrTimeout, true)
			// The deadline reached the provider: the mock saw the client go away.
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if st := e.srv.Stats(); st.Canceled != 1 || st.InFlight != 0 {
					return fmt.Errorf("stats %+v", st)
				}
				return nil
			})
		})
		t.Run("connection refused", func(t *testing.T) {
			srv, err := mock.Listen("127.0.0.1:0", mock.Options{})
			if err != nil {
				t.Fatal(err)
			}
			url := srv.URL()
			srv.Close()
			c := h.New(url, Key, &http.Client{})
			_, err = c.Complete(context.Background(), &llm.Request{Model: h.Model, Body: json.RawMessage(hello)})
			expect(t, err, schemas.ErrConnection, true)
		})
		t.Run("malformed", func(t *testing.T) {
			e := h.start(t, mock.Faults{Malformed: true})
			_, err := e.complete(context.Background(), hello)
			expect(t, err, schemas.ErrBadResponse, true)
			_, err = e.stream(context.Background(), `{"messages":[{"role":"user","content":"x"}],"stream":true}`, func(json.RawMessage) error { return nil })
			expect(t, err, schemas.ErrBadResponse, true)
		})
		t.Run("error mid-stream", func(t *testing.T) {
			e := h.start(t, mock.Faults{ErrorAfterChunks: 2})
			n := 0
			_, err := e.stream(context.Background(), `{"messages":[{"role":"user","content":"one two three four five"}],"stream":true}`, func(json.RawMessage) error { n++; return nil })
			pe, ok := llm.AsProviderError(err)
			errs = append(errs, err)
			if !ok || !pe.Retryable || n == 0 {
				t.Fatalf("err %v after %d chunks; want a retryable ProviderError after some chunks", err, n)
			}
		})
		t.Run("client disconnect cancels upstream", func(t *testing.T) {
			e := h.start(t, mock.Faults{ChunkDelay: 50 * time.Millisecond})
			gone := errors.New("client went away")
			n := 0
			_, err := e.stream(context.Background(), `{"messages":[{"role":"user","content":"one two three four five six"}],"stream":true}`, func(json.RawMessage) error {
				n++
				if n == 2 {
					return gone
				}
				return nil
			})
			if !errors.Is(err, gone) || n != 2 {
				t.Fatalf("err %v after %d chunks; want the emit error after 2", err, n)
			}
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if st := e.srv.Stats(); st.Canceled != 1 || st.InFlight != 0 || st.Succeeded != 0 {
					return fmt.Errorf("stats %+v", st)
				}
				return nil
			})
		})
		t.Run("invalid body", func(t *testing.T) {
			e := h.start(t, mock.Faults{})
			_, err := e.complete(context.Background(), `{"messages":"nope"}`)
			expect(t, err, schemas.ErrInvalidRequest, false)
		})
	})

	t.Run("key never in errors or URLs", func(t *testing.T) {
		if len(errs) < 10 {
			t.Fatalf("only %d errors collected; run the whole suite", len(errs))
		}
		for _, err := range errs {
			if err != nil && strings.Contains(err.Error(), Key) {
				t.Fatalf("API key in error: %v", err)
			}
			if pe, ok := llm.AsProviderError(err); ok && strings.Contains(fmt.Sprintf("%+v %#v", pe, pe), Key) {
				t.Fatalf("API key in error fields: %+v", pe)
			}
		}
		e := h.start(t, mock.Faults{})
		if s := fmt.Sprintf("%v %+v %#v %s", e.c, e.c, e.c, e.c); strings.Contains(s, Key) {
			t.Fatalf("API key in the adapter's printed form: %s", s)
		}
		must(t)(e.complete(context.Background(), hello))
		for _, rec := range e.srv.Requests() {
			if rec.KeyInURL || strings.Contains(rec.Path+rec.Query, Key) {
				t.Fatalf("API key in URL: %+v", rec)
			}
		}
	})
}

func checkToolCall(t *testing.T, c completion) {
	t.Helper()
	m := c.Choices[0].Message
	if c.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 {
		t.Fatalf("want one tool call with finish tool_calls, got %+v", c.Choices[0])
	}
	tc := m.ToolCalls[0]
	if tc.ID == "" || tc.Type != "function" || tc.Function.Name != "get_weather" || !jsonEqual(tc.Function.Arguments, toolArgs) {
		t.Fatalf("tool call %+v", tc)
	}
}

type chunkUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// checkChunks validates a chunk sequence and returns the streamed text,
// finish reason, usage chunk and the first tool call's arguments.
func checkChunks(t *testing.T, chunks []json.RawMessage, wantUsage bool) (text, finish string, usage *chunkUsage, args string) {
	t.Helper()
	var b strings.Builder
	var a strings.Builder
	id := ""
	finishAt, usageAt := -1, -1
	for i, raw := range chunks {
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role      string  `json:"role"`
					Content   *string `json:"content"`
					ToolCalls []struct {
						Index    int `json:"index"`
						Function struct {
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *chunkUsage `json:"usage"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("chunk %d is not JSON: %v: %s", i, err, raw)
		}
		if c.Object != "chat.completion.chunk" || c.ID == "" || (id != "" && c.ID != id) {
			t.Fatalf("chunk %d: bad object/id: %s", i, raw)
		}
		id = c.ID
		if i == 0 && (len(c.Choices) == 0 || c.Choices[0].Delta.Role != "assistant") {
			t.Fatalf("first chunk carries no role: %s", raw)
		}
		if c.Usage != nil && len(c.Choices) == 0 {
			usage, usageAt = c.Usage, i
		}
		for _, ch := range c.Choices {
			if usageAt >= 0 {
				t.Fatalf("content after the usage chunk: %s", raw)
			}
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == 0 {
					a.WriteString(tc.Function.Arguments)
				}
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				if finishAt >= 0 {
					t.Fatalf("two finish reasons")
				}
				finish, finishAt = *ch.FinishReason, i
			}
		}
	}
	if finishAt < 0 {
		t.Fatalf("no chunk carried a finish_reason")
	}
	if wantUsage != (usageAt >= 0) {
		t.Fatalf("usage chunk present=%v, want %v", usageAt >= 0, wantUsage)
	}
	if wantUsage && usageAt != len(chunks)-1 {
		t.Fatalf("usage chunk at %d of %d, want last", usageAt, len(chunks))
	}
	return b.String(), finish, usage, a.String()
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
