package conduct_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm/mock"
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

// lastMessage is the role and text of the last message a mock received
// (OpenAI and Anthropic messages, Gemini contents).
func lastMessage(t *testing.T, rec mock.RecordedRequest) (role, text string) {
	t.Helper()
	var body struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Contents []struct {
			Role  string `json:"role"`
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	if n := len(body.Contents); n > 0 {
		c := body.Contents[n-1]
		for _, p := range c.Parts {
			text += p.Text
		}
		return c.Role, text
	}
	m := body.Messages[len(body.Messages)-1]
	if json.Unmarshal(m.Content, &text) != nil {
		var parts []struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(m.Content, &parts)
		for _, p := range parts {
			text += p.Text
		}
	}
	return m.Role, text
}

// sentBefore is the text of the first n chunks of the canonical answer.
func sentBefore(n int) string {
	return strings.Join(strings.SplitAfter(canonical, " ")[:n], "")
}

// Faults 1 and 3 and an error event mid-stream: the next target continues
// the answer from a prefill (any kind: OpenAI-compatible mock, Anthropic,
// Gemini) and the caller receives the whole answer once, with usage that
// covers it all.
func TestMidStreamContinuation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		faults  mock.Faults
		kind    string
		errType string
		sent    int
	}{
		{"cut", mock.Faults{CutAfterChunks: 10}, config.KindMock, "connection", 10},
		{"stall", mock.Faults{StallAfterChunks: 5}, config.KindMock, "timeout", 5},
		{"error event", mock.Faults{ErrorAfterChunks: 7}, config.KindMock, "server_error", 7},
		{"cut, anthropic continues", mock.Faults{CutAfterChunks: 10}, config.KindAnthropic, "connection", 10},
		{"cut, gemini continues", mock.Faults{CutAfterChunks: 10}, config.KindGemini, "connection", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, "stream_idle_timeout: 300ms",
				target{name: "a", kind: config.KindMock, faults: tc.faults},
				target{name: "b", kind: tc.kind})
			a := s.stream(true)
			checkWhole(t, a)
			if a.usage.CompletionTokens != 23 {
				t.Errorf("usage %+v, want the whole answer's 23 output tokens", a.usage)
			}
			if s.calls("a") != 1 || s.calls("b") != 1 {
				t.Errorf("calls a=%d b=%d, want 1 and 1", s.calls("a"), s.calls("b"))
			}
			role, text := lastMessage(t, s.mocks["b"].LastRequest())
			want := sentBefore(tc.sent)
			if tc.kind == config.KindAnthropic {
				want = strings.TrimRight(want, " ") // Anthropic refuses trailing whitespace
			}
			if (role != "assistant" && role != "model") || text != want {
				t.Errorf("b was asked to continue %s %q, want the %d chunks sent, %q", role, text, tc.sent, want)
			}
			c, atts := s.rows(a.jobID, 2)
			if c.Status != "succeeded" || c.Provider != "b" || c.Fallback != 1 || c.OutputTokens != 23 {
				t.Errorf("completion row %+v", c)
			}
			// The job's cost is that of both calls.
			var jobCost, callsCost float64
			if err := s.db.Conn.QueryRow(context.Background(), "SELECT cost_usd FROM completions FINAL WHERE job_id = ?", a.jobID).Scan(&jobCost); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Conn.QueryRow(context.Background(), "SELECT sum(cost_usd) FROM attempts FINAL WHERE job_id = ?", a.jobID).Scan(&callsCost); err != nil {
				t.Fatal(err)
			}
			if jobCost <= 0 || math.Abs(jobCost-callsCost) > 1e-12 {
				t.Errorf("job cost %v, want the sum of its calls' %v", jobCost, callsCost)
			}
			if atts[0].ErrorType != tc.errType || atts[0].Outcome != "fallback" || atts[0].OutputTokens != uint64(tc.sent) ||
				atts[1].Outcome != "ok" || atts[1].OutputTokens != uint64(23-tc.sent) {
				t.Errorf("attempt rows %v", atts)
			}
		})
	}
}

// Fault 6: the next target refuses the prefill (a 400 saying the
// conversation must end with a user message). The broker asks it again from
// the start, streams only what follows the text already sent, and
// remembers the refusal (shared KV): the next job restarts at once.
func TestPrefillRefusedRestartAndMatch(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{CutAfterChunks: 10}},
		target{name: "b", kind: config.KindAnthropic, faults: mock.Faults{RejectPrefill: true}})
	a := s.stream(false)
	checkWhole(t, a)
	if s.calls("a") != 1 || s.calls("b") != 2 {
		t.Errorf("calls a=%d b=%d, want 1 and 2 (the refused prefill, the restart)", s.calls("a"), s.calls("b"))
	}
	if role, _ := lastMessage(t, s.mocks["b"].LastRequest()); role != "user" {
		t.Errorf("the restart ends with a %s message, want the caller's user message", role)
	}
	c, atts := s.rows(a.jobID, 3)
	if c.Status != "succeeded" || c.ErrorType != "" || c.Provider != "b" {
		t.Errorf("completion row %+v", c)
	}
	if atts[0].Outcome != "fallback" || atts[1].ErrorType != "invalid_request" || atts[1].Outcome != "retry" || atts[2].Outcome != "ok" {
		t.Errorf("attempt rows %v", atts)
	}
	// Learned: the second job's continuation goes straight to a restart.
	a = s.stream(false)
	checkWhole(t, a)
	if s.calls("b") != 3 {
		t.Errorf("b saw %d calls after the second job, want 3 (no second refused prefill)", s.calls("b"))
	}
}

// When the restarted answer differs from the text already sent, the stream
// ends with a clean stream_broken error event: never a splice, never the
// prefill 400, never a truncated answer without an error.
func TestRestartMismatchEndsCleanly(t *testing.T) {
	s := start(t, "",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{CutAfterChunks: 10}},
		// kind openai: no prefill by default, so a restart at once.
		target{name: "b", kind: config.KindOpenAI, reply: "an entirely different answer"})
	a := s.stream(false)
	if a.err == nil || !strings.Contains(a.err.Error(), "stream_broken") || !strings.Contains(a.err.Error(), "continuation not possible") {
		t.Fatalf("err %v, want a stream_broken error event", a.err)
	}
	if a.text != sentBefore(10) {
		t.Errorf("assembled %q, want only the %q sent before the cut", a.text, sentBefore(10))
	}
	if role, _ := lastMessage(t, s.mocks["b"].LastRequest()); role != "user" || s.calls("b") != 1 {
		t.Errorf("b: %d calls, last message %s; want one restart", s.calls("b"), role)
	}
	c, atts := s.rows(a.jobID, 2)
	if c.Status != "failed" || c.ErrorType != "stream_broken" {
		t.Errorf("completion row %+v", c)
	}
	if atts[0].Outcome != "fallback" || atts[1].ErrorType != "stream_broken" || atts[1].Outcome != "fatal" {
		t.Errorf("attempt rows %v", atts)
	}
}

// Cut after the finish reason (no usage chunk, no [DONE], the connection
// dropped): the answer is complete, so the job succeeded on its target.
func TestCutAfterFinishIsSuccess(t *testing.T) {
	s := start(t, "retries: 0",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{CutAfterChunks: 23, CutWithFinish: true}},
		target{name: "b", kind: config.KindMock})
	a := s.stream(false)
	checkWhole(t, a)
	if s.calls("a") != 1 || s.calls("b") != 0 {
		t.Errorf("calls a=%d b=%d, want 1 and 0", s.calls("a"), s.calls("b"))
	}
	c, atts := s.rows(a.jobID, 1)
	if c.Status != "succeeded" || atts[0].Outcome != "ok" {
		t.Errorf("completion %+v attempts %v", c, atts)
	}
}

// Sync requests: a malformed body is bad_response, retried (retry_on) and
// then moved to the next target (fallback_on).
func TestSyncMalformedBodyFallsBack(t *testing.T) {
	s := start(t, "retries: 1",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{Malformed: true}},
		target{name: "b", kind: config.KindMock})
	c, resp, err := s.complete()
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != canonical || resp.Header.Get("X-Switchboard-Provider") != "b" {
		t.Errorf("content %q from %q", c.Choices[0].Message.Content, resp.Header.Get("X-Switchboard-Provider"))
	}
	if s.calls("a") != 2 || s.calls("b") != 1 {
		t.Errorf("calls a=%d b=%d, want 2 (one retry) and 1", s.calls("a"), s.calls("b"))
	}
	_, atts := s.rows(resp.Header.Get("X-Switchboard-Job-Id"), 3)
	if atts[0].ErrorType != "bad_response" || atts[0].Outcome != "retry" || atts[1].Outcome != "fallback" || atts[2].Outcome != "ok" {
		t.Errorf("attempt rows %v", atts)
	}
}

// Sync requests: a body cut mid-way is a connection error, which falls
// back (retries 0 here) to the next target.
func TestSyncCutBodyFallsBack(t *testing.T) {
	s := start(t, "retries: 0",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{CutAfterChunks: 1}},
		target{name: "b", kind: config.KindMock})
	c, resp, err := s.complete()
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != canonical || resp.Header.Get("X-Switchboard-Provider") != "b" {
		t.Errorf("content %q from %q", c.Choices[0].Message.Content, resp.Header.Get("X-Switchboard-Provider"))
	}
	if s.calls("a") != 1 || s.calls("b") != 1 {
		t.Errorf("calls a=%d b=%d, want 1 and 1", s.calls("a"), s.calls("b"))
	}
	_, atts := s.rows(resp.Header.Get("X-Switchboard-Job-Id"), 2)
	if atts[0].ErrorType != "connection" || atts[0].Outcome != "fallback" || atts[1].Outcome != "ok" {
		t.Errorf("attempt rows %v", atts)
	}
}
