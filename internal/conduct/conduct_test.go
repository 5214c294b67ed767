package conduct_test

import (
	"testing"

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
