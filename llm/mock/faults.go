package mock

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Faults are the failure and latency knobs applied to a provider call. The
// zero value injects nothing. Options.Faults is the default set;
// Options.ModelFaults replaces it (as a whole, not field by field) for
// requests naming that model.
type Faults struct {
	// ErrorRate is the probability (0..1) that a call fails with ErrorStatus,
	// drawn from the server's seeded random source.
	ErrorRate float64
	// FailFirst deterministically fails the first N calls served under this
	// fault set, then lets calls succeed. The count restarts when the set is
	// replaced (SetFaults, SetModelFaults, PUT /_mock/faults) or on Reset.
	FailFirst int
	// ErrorStatus is the HTTP status of injected errors (default 500).
	ErrorStatus int
	// ErrorBody, when set, is the raw body of injected errors (sent as
	// text/plain) instead of the vendor's JSON error object: an upstream
	// that answers with an HTML page or a proxy's message.
	ErrorBody string
	// RetryAfter, when positive, sets a Retry-After header (whole seconds,
	// rounded up, at least 1) on injected errors.
	RetryAfter time.Duration
	// Latency delays every call (success or injected error) before the
	// response starts.
	Latency time.Duration
	// Jitter adds a random extra delay in [0, Jitter) on top of Latency.
	Jitter time.Duration
	// Hang blocks the call until the client disconnects or the server closes;
	// no response is written.
	Hang bool
	// Malformed answers 200 with a truncated, unparseable JSON body (or SSE
	// event when streaming).
	Malformed bool
	// InputTokens, when positive, overrides the reported input token count.
	InputTokens int
	// OutputTokens, when positive, overrides the reported output token count.
	OutputTokens int
	// ErrorAfterChunks, when positive, makes a streaming call send that many
	// content chunks, then a vendor-shaped error event, then drop the
	// connection without the normal end of stream. Non-streaming calls ignore it.
	ErrorAfterChunks int
	// TTFB delays the first streamed event after the 200 headers are sent.
	TTFB time.Duration
	// ChunkDelay is the pause between streamed content chunks.
	ChunkDelay time.Duration
	// CutAfterChunks, when positive, makes a streaming call send that many
	// content chunks (then the finish-reason event when CutWithFinish) and
	// drop the connection: no error event, no end of stream. A
	// non-streaming call gets part of its JSON body, then the drop.
	CutAfterChunks int
	// CutWithFinish sends the finish-reason event before the cut of
	// CutAfterChunks (a complete answer without its end of stream).
	CutWithFinish bool
	// StallAfterChunks, when positive, makes a streaming call send that many
	// content chunks and then stay silent, connection open, until the
	// client goes away.
	StallAfterChunks int
	// MalformedAfterChunks, when positive, inserts one malformed event after
	// that many content chunks of an otherwise normal stream.
	MalformedAfterChunks int
	// NoDone ends a complete stream without its terminator (OpenAI
	// "data: [DONE]", Anthropic message_stop): a clean end of the body right
	// after the finish reason and usage. Gemini streams have no terminator.
	NoDone bool
	// ContextLength answers 400 with the vendor's context-window error
	// (OpenAI code context_length_exceeded, Anthropic "prompt is too long",
	// Gemini "input token count ... exceeds the maximum number of tokens").
	ContextLength bool
	// RejectPrefill answers a request whose last message is the
	// assistant's (a prefill) with 400 and the vendor's message that the
	// conversation must end with a user message. Without it the mock
	// honours a prefill: it answers only the rest of its reply.
	RejectPrefill bool
}

// Validate reports an out-of-range knob, wrapping ErrInvalidFaults.
func (f Faults) Validate() error {
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("%w: error_rate %v not in [0,1]", ErrInvalidFaults, f.ErrorRate)
	case f.FailFirst < 0:
		return fmt.Errorf("%w: fail_first %d is negative", ErrInvalidFaults, f.FailFirst)
	case f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599):
		return fmt.Errorf("%w: error_status %d not in 400..599", ErrInvalidFaults, f.ErrorStatus)
	case f.RetryAfter < 0, f.Latency < 0, f.Jitter < 0, f.TTFB < 0, f.ChunkDelay < 0:
		return fmt.Errorf("%w: durations must not be negative", ErrInvalidFaults)
	case f.InputTokens < 0 || f.OutputTokens < 0:
		return fmt.Errorf("%w: token overrides must not be negative", ErrInvalidFaults)
	case f.ErrorAfterChunks < 0:
		return fmt.Errorf("%w: error_after_chunks %d is negative", ErrInvalidFaults, f.ErrorAfterChunks)
	case f.CutAfterChunks < 0 || f.StallAfterChunks < 0 || f.MalformedAfterChunks < 0:
		return fmt.Errorf("%w: cut_after_chunks, stall_after_chunks and malformed_after_chunks must not be negative", ErrInvalidFaults)
	case f.CutWithFinish && f.CutAfterChunks == 0:
		return fmt.Errorf("%w: cut_with_finish needs cut_after_chunks", ErrInvalidFaults)
	}
	return nil
}

// status returns the HTTP status for injected errors.
func (f Faults) status() int {
	if f.ErrorStatus == 0 {
		return 500
	}
	return f.ErrorStatus
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("250ms"); it also accepts a number of nanoseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "250ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("bad duration %s: want a string like \"250ms\"", b)
	}
	*d = Duration(n)
	return nil
}

// faultsJSON is the wire form of Faults used by /_mock/faults.
type faultsJSON struct {
	ErrorRate        float64  `json:"error_rate,omitempty"`
	FailFirst        int      `json:"fail_first,omitempty"`
	ErrorStatus      int      `json:"error_status,omitempty"`
	ErrorBody        string   `json:"error_body,omitempty"`
	RetryAfter       Duration `json:"retry_after,omitempty"`
	Latency          Duration `json:"latency,omitempty"`
	Jitter           Duration `json:"jitter,omitempty"`
	Hang             bool     `json:"hang,omitempty"`
	Malformed        bool     `json:"malformed,omitempty"`
	InputTokens      int      `json:"input_tokens,omitempty"`
	OutputTokens     int      `json:"output_tokens,omitempty"`
	ErrorAfterChunks int      `json:"error_after_chunks,omitempty"`
	TTFB             Duration `json:"ttfb,omitempty"`
	ChunkDelay       Duration `json:"chunk_delay,omitempty"`
	CutAfterChunks   int      `json:"cut_after_chunks,omitempty"`
	CutWithFinish    bool     `json:"cut_with_finish,omitempty"`
	StallAfterChunks int      `json:"stall_after_chunks,omitempty"`
	MalformedAfter   int      `json:"malformed_after_chunks,omitempty"`
	NoDone           bool     `json:"no_done,omitempty"`
	ContextLength    bool     `json:"context_length,omitempty"`
	RejectPrefill    bool     `json:"reject_prefill,omitempty"`
}

// MarshalJSON writes snake_case keys with duration strings, omitting zero knobs.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		ErrorRate: f.ErrorRate, FailFirst: f.FailFirst, ErrorStatus: f.ErrorStatus, ErrorBody: f.ErrorBody,
		RetryAfter: Duration(f.RetryAfter), Latency: Duration(f.Latency), Jitter: Duration(f.Jitter),
		Hang: f.Hang, Malformed: f.Malformed, InputTokens: f.InputTokens, OutputTokens: f.OutputTokens,
		ErrorAfterChunks: f.ErrorAfterChunks, TTFB: Duration(f.TTFB), ChunkDelay: Duration(f.ChunkDelay),
		CutAfterChunks: f.CutAfterChunks, CutWithFinish: f.CutWithFinish, StallAfterChunks: f.StallAfterChunks,
		MalformedAfter: f.MalformedAfterChunks, NoDone: f.NoDone, ContextLength: f.ContextLength, RejectPrefill: f.RejectPrefill,
	})
}

func (j faultsJSON) faults() Faults {
	return Faults{
		ErrorRate: j.ErrorRate, FailFirst: j.FailFirst, ErrorStatus: j.ErrorStatus, ErrorBody: j.ErrorBody,
		RetryAfter: time.Duration(j.RetryAfter), Latency: time.Duration(j.Latency), Jitter: time.Duration(j.Jitter),
		Hang: j.Hang, Malformed: j.Malformed, InputTokens: j.InputTokens, OutputTokens: j.OutputTokens,
		ErrorAfterChunks: j.ErrorAfterChunks, TTFB: time.Duration(j.TTFB), ChunkDelay: time.Duration(j.ChunkDelay),
		CutAfterChunks: j.CutAfterChunks, CutWithFinish: j.CutWithFinish, StallAfterChunks: j.StallAfterChunks,
		MalformedAfterChunks: j.MalformedAfter, NoDone: j.NoDone, ContextLength: j.ContextLength, RejectPrefill: j.RejectPrefill,
	}
}

// UnmarshalJSON reads the snake_case form written by MarshalJSON.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = j.faults()
	return nil
}
