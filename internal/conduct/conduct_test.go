package conduct_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/switchboard-llm/switchboard/broker/config"
	"github.com/switchboard-llm/switchboard/workers/mock"
)

// checkWhole fails unless the caller got the whole canonical answer and no error.
func checkWhole(t *testing.T, a answer) {
	t.Helper()
	if a.err != nil {
		t.Fatalf("stream error after %q: %v", a.text, a.err)
	}
	if a.text != canonical {
		t.Fatalf("assembled %q\nwant      %q", a.text, canonical)
	}
}

// Fault 2: a complete stream (finish_reason and usage) without data: [DONE]
// is a success, not a connection error after the whole answer.
func TestNoDoneIsSuccess(t *testing.T) {
	s := start(t, "retries: 0",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{NoDone: true}},
		target{name: "b", kind: config.KindMock})
	a := s.stream(true)
	checkWhole(t, a)
	if a.usage.CompletionTokens != 23 {
		t.Errorf("usage %+v, want the 23 output tokens", a.usage)
	}
	if s.calls("a") != 1 || s.calls("b") != 0 {
		t.Errorf("calls a=%d b=%d, want 1 and 0", s.calls("a"), s.calls("b"))
	}
	c, atts := s.rows(a.jobID, 1)
	if c.Status != "succeeded" || c.ErrorType != "" || c.Provider != "a" || c.Attempts != 1 || c.OutputTokens != 23 {
		t.Errorf("completion row %+v", c)
	}
	if atts[0].Outcome != "ok" || atts[0].ErrorType != "" || atts[0].OutputTokens != 23 {
		t.Errorf("attempt rows %v", atts)
	}
}

// Fault 4: one malformed event in a normal stream is skipped and counted
// as bad_chunk on the attempt; the answer is whole.
func TestMalformedEventSkipped(t *testing.T) {
	s := start(t, "retries: 0",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{MalformedAfterChunks: 5}},
		target{name: "b", kind: config.KindMock})
	a := s.stream(false)
	checkWhole(t, a)
	if s.calls("a") != 1 || s.calls("b") != 0 {
		t.Errorf("calls a=%d b=%d, want 1 and 0", s.calls("a"), s.calls("b"))
	}
	c, atts := s.rows(a.jobID, 1)
	if c.Status != "succeeded" || c.ErrorType != "" || c.Provider != "a" {
		t.Errorf("completion row %+v", c)
	}
	if atts[0].Outcome != "ok" || atts[0].ErrorType != "bad_chunk" {
		t.Errorf("attempt rows %v, want one ok attempt with error_type bad_chunk", atts)
	}
}

// The same faults on the non-OpenAI shapes: Anthropic without
// message_stop, Gemini and Anthropic with a malformed event.
func TestOtherShapesCleanEndAndMalformed(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		faults mock.Faults
		errTyp string
	}{
		{config.KindAnthropic, mock.Faults{NoDone: true}, ""},
		{config.KindAnthropic, mock.Faults{MalformedAfterChunks: 3}, "bad_chunk"},
		{config.KindGemini, mock.Faults{MalformedAfterChunks: 3}, "bad_chunk"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s := start(t, "retries: 0", target{name: "a", kind: tc.kind, faults: tc.faults}, target{name: "b", kind: config.KindMock})
			a := s.stream(false)
			checkWhole(t, a)
			if s.calls("a") != 1 || s.calls("b") != 0 {
				t.Errorf("calls a=%d b=%d, want 1 and 0", s.calls("a"), s.calls("b"))
			}
			c, atts := s.rows(a.jobID, 1)
			if c.Status != "succeeded" || atts[0].Outcome != "ok" || atts[0].ErrorType != tc.errTyp {
				t.Errorf("completion %+v attempts %v", c, atts)
			}
		})
	}
}

// Fault 5: a 400 context-length error (each vendor's shape) is
// context_length, which falls back by default: the next target serves.
func TestContextLengthFallsBack(t *testing.T) {
	for _, kind := range []string{config.KindMock, config.KindAnthropic, config.KindGemini} {
		t.Run(kind, func(t *testing.T) {
			s := start(t, "retries: 2",
				target{name: "a", kind: kind, faults: mock.Faults{ContextLength: true}},
				target{name: "b", kind: config.KindMock})
			a := s.stream(false)
			checkWhole(t, a)
			if a.header.Get("X-Switchboard-Provider") != "b" {
				t.Errorf("served by %q, want b", a.header.Get("X-Switchboard-Provider"))
			}
			// Not retried on a: a longer context does not come by waiting.
			if s.calls("a") != 1 || s.calls("b") != 1 {
				t.Errorf("calls a=%d b=%d, want 1 and 1", s.calls("a"), s.calls("b"))
			}
			c, atts := s.rows(a.jobID, 2)
			if c.Status != "succeeded" || c.Provider != "b" || c.Fallback != 1 {
				t.Errorf("completion row %+v", c)
			}
			if atts[0].ErrorType != "context_length" || atts[0].Outcome != "fallback" || atts[1].Outcome != "ok" {
				t.Errorf("attempt rows %v", atts)
			}
		})
	}
}

// When every target is over its context window the caller gets a 400 with
// OpenAI's code and the last upstream's own message and code.
func TestContextLengthEverywhere(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{ContextLength: true}},
		target{name: "b", kind: config.KindMock, faults: mock.Faults{ContextLength: true}})
	for _, streamed := range []bool{false, true} {
		var err error
		if streamed {
			err = s.stream(false).err
		} else {
			_, _, err = s.complete()
		}
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("stream=%v: err %v, want an API error", streamed, err)
		}
		raw := apiErr.RawJSON()
		if apiErr.StatusCode != 400 || apiErr.Code != "context_length_exceeded" ||
			!strings.Contains(apiErr.Message, "maximum context length is 8192 tokens") ||
			!strings.Contains(raw, `"upstream_code":"context_length_exceeded"`) {
			t.Errorf("stream=%v: %d %q %q %s", streamed, apiErr.StatusCode, apiErr.Code, apiErr.Message, raw)
		}
	}
	if s.calls("a") != 2 || s.calls("b") != 2 {
		t.Errorf("calls a=%d b=%d, want 2 and 2 (one per request, no retries)", s.calls("a"), s.calls("b"))
	}
}

// Sync requests get the same conduct: context length falls back.
func TestContextLengthSync(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindAnthropic, faults: mock.Faults{ContextLength: true}},
		target{name: "b", kind: config.KindGemini})
	c, resp, err := s.complete()
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != canonical || resp.Header.Get("X-Switchboard-Provider") != "b" {
		t.Errorf("content %q from %q", c.Choices[0].Message.Content, resp.Header.Get("X-Switchboard-Provider"))
	}
	_, atts := s.rows(resp.Header.Get("X-Switchboard-Job-Id"), 2)
	if atts[0].ErrorType != "context_length" || atts[0].Outcome != "fallback" {
		t.Errorf("attempt rows %v", atts)
	}
}

// Fault 7: a provider that accepts the request and never answers, on a
// route without latency_threshold and with the default retries (2): the
// timeout moves the job to the next target at once.
func TestSilentProviderFallsBack(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{Hang: true}, timeout: "500ms"},
		target{name: "b", kind: config.KindMock})
	a := s.stream(false)
	checkWhole(t, a)
	if s.calls("a") != 1 || s.calls("b") != 1 {
		t.Errorf("calls a=%d b=%d, want 1 and 1 (no retry on the silent provider)", s.calls("a"), s.calls("b"))
	}
	c, atts := s.rows(a.jobID, 2)
	if c.Status != "succeeded" || c.Provider != "b" {
		t.Errorf("completion row %+v", c)
	}
	if atts[0].ErrorType != "timeout" || atts[0].Outcome != "fallback" || atts[1].Outcome != "ok" {
		t.Errorf("attempt rows %v", atts)
	}
}

// Fault 3 without a target to continue on: a stream silent for longer than
// stream_idle_timeout (300ms here, the provider timeout is 10s) ends with a
// clean error event after the chunks already sent, and the job fails.
func TestStallEndsAtIdleTimeout(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{StallAfterChunks: 5}, yaml: "stream_idle_timeout: 300ms"})
	a := s.stream(false)
	if a.err == nil || !strings.Contains(a.err.Error(), "stream idle for 300ms after") {
		t.Fatalf("err %v, want the idle timeout's error event", a.err)
	}
	if want := "mock reply to: one two "; a.text != want {
		t.Errorf("assembled %q, want the 5 chunks sent before the stall, %q", a.text, want)
	}
	if s.calls("a") != 1 {
		t.Errorf("a saw %d calls, want 1", s.calls("a"))
	}
	c, atts := s.rows(a.jobID, 1)
	if c.Status != "failed" || atts[0].ErrorType != "timeout" || atts[0].Outcome != "fatal" {
		t.Errorf("completion %+v attempts %v", c, atts)
	}
}
