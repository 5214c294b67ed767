package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

// callError is a failed provider call, classified once.
type callError struct {
	Type       string
	Status     int
	Retryable  bool
	RetryAfter time.Duration
	Message    string
	// Code is the provider's own error code, if it gave one.
	Code string
	// abandon: the pool is shutting down; the job goes back to JetStream.
	abandon bool
	// streamBroken: the call failed after its first chunk reached the
	// client, so it may not be retried; it falls back only to continue
	// the answer (continuable).
	streamBroken bool
	// continuable: the broken stream's text may be continued by the next
	// target (continuation.go); final: nothing may follow this failure.
	continuable, final bool
	// slow: cancelled at the route's latency_threshold; the job moves on.
	slow bool
	// lost: the other of two hedged calls answered first.
	lost bool
	// expired: the call was not made because its rate-limit reservation's
	// window ended before it could start (see run.callBy).
	expired bool
}

// errReservationExpired is the callError of a call that was not made
// because its rate-limit window ended first.
func errReservationExpired() *callError {
	return &callError{Type: schemas.ErrRateLimited, Message: "rate-limit window ended before the call started", expired: true}
}

// classify turns a call's error into a callError. The job's context wins over
// whatever the adapter reported: a cancel request, the job deadline or a
// shutdown explain the failure better than "request canceled".
func classify(err error, jobCtx, callCtx context.Context, timeout time.Duration) *callError {
	if jobCtx.Err() != nil {
		switch cause := context.Cause(jobCtx); {
		case errors.Is(cause, errCancelRequested):
			return &callError{Type: schemas.ErrCanceled, Message: "canceled by the caller"}
		case errors.Is(cause, errJobDeadline):
			return &callError{Type: schemas.ErrDeadlineExceeded, Message: "job deadline passed during the provider call"}
		case errors.Is(cause, errSlowCall):
			return &callError{Type: schemas.ErrTimeout, Message: "no answer within the route's latency_threshold", slow: true}
		case errors.Is(cause, errHedgeLost):
			return &callError{Type: schemas.ErrCanceled, Message: "the other hedged call answered first", lost: true}
		default:
			return &callError{Type: schemas.ErrCanceled, Message: "worker shutting down", abandon: true}
		}
	}
	if callCtx.Err() != nil && errors.Is(context.Cause(callCtx), errStreamIdle) {
		return &callError{Type: schemas.ErrTimeout, Retryable: true, Message: "stream went silent"}
	}
	if callCtx.Err() != nil && errors.Is(context.Cause(callCtx), errCallTimeout) {
		return &callError{Type: schemas.ErrTimeout, Retryable: true, Message: fmt.Sprintf("no response within %s", timeout)}
	}
	if pe, ok := llm.AsProviderError(err); ok {
		ce := &callError{Type: pe.Type, Status: pe.Status, Retryable: pe.Retryable, RetryAfter: pe.RetryAfter, Message: pe.Message, Code: pe.Code}
		if ce.Type == "" {
			ce.Type = schemas.ErrInternal
		}
		return ce
	}
	return &callError{Type: schemas.ErrInternal, Message: err.Error()}
}

// action is what the retry loop does after a failed call.
type action int

const (
	actRetry    action = iota // call the same target again after wait
	actFallback               // publish the job to the next target
	actFail                   // publish a failed Result
	actAbandon                // Nak: another worker takes the job
)

// decision is the retry loop's next step.
type decision struct {
	act  action
	wait time.Duration
	// errType and message describe the failure when act is actFail.
	errType string
	message string
	// dlq: the failed job also goes to the dead-letter queue.
	dlq bool
}

// outcome is the attempt outcome recorded for a call that led to d.
func (d decision) outcome() string {
	switch d.act {
	case actRetry:
		return schemas.OutcomeRetry
	case actFallback:
		return schemas.OutcomeFallback
	default:
		return schemas.OutcomeFatal
	}
}

// policy is a route's retry and fallback policy on one provider.
type policy struct {
	retries    int
	fallbackOn map[string]bool
	// retryOn: error types retried on the same target before falling back;
	// another retryable type is retried only when it cannot fall back.
	retryOn map[string]bool
	// idle bounds the silence between two chunks of a stream.
	idle time.Duration
}

func newPolicy(rt *config.Route, prov config.Provider) policy {
	p := policy{retries: config.DefaultRetries, fallbackOn: map[string]bool{}, retryOn: map[string]bool{},
		idle: config.StreamIdle(rt, prov)}
	for _, t := range config.RetryOnFor(rt, prov) {
		p.retryOn[t] = true
	}
	fallbackOn := config.DefaultFallbackOn
	if rt != nil {
		if rt.Retries != nil {
			p.retries = *rt.Retries
		}
		if rt.FallbackOn != nil {
			fallbackOn = rt.FallbackOn
		}
	}
	for _, t := range fallbackOn {
		p.fallbackOn[t] = true
	}
	return p
}

// retryBudget holds what decide needs besides the error.
type retryBudget struct {
	call        int        // 0-based number of the failed call on this target
	moreTargets bool       // the plan has a target after this one
	deadline    *time.Time // the job's deadline, if any
	now         time.Time
	base, max   time.Duration
	maxWait     time.Duration
}

// decide is the one place that maps a failed call to what happens next:
// retry the same target (retryable error in retry_on, or one that cannot
// fall back; retries left; the wait fits before the deadline and under
// maxWait), fall back (error type in fallback_on and another target left),
// or fail.
func decide(ce *callError, pol policy, b retryBudget) decision {
	if ce.abandon {
		return decision{act: actAbandon}
	}
	if ce.slow && b.moreTargets {
		return decision{act: actFallback}
	}
	switch ce.Type {
	case schemas.ErrCanceled, schemas.ErrDeadlineExceeded:
		return decision{act: actFail, errType: ce.Type, message: ce.Message}
	}
	if ce.streamBroken {
		if ce.continuable && b.moreTargets {
			return decision{act: actFallback} // the next target continues the answer
		}
		msg := ce.Message
		if !ce.final {
			reason := "no target left to continue it"
			if !ce.continuable {
				reason = "continuation not possible after " + ce.Type
			}
			msg = "stream broken after the first chunk: " + ce.Message + "; " + reason
		}
		return decision{act: actFail, errType: schemas.ErrStreamBroken, message: msg}
	}
	if b.deadline != nil && !b.now.Before(*b.deadline) {
		return decision{act: actFail, errType: schemas.ErrDeadlineExceeded, message: "job deadline passed after " + ce.Type}
	}
	deadlineBlocked := false
	canFallBack := pol.fallbackOn[ce.Type] && b.moreTargets
	if ce.Retryable && b.call < pol.retries && (pol.retryOn[ce.Type] || !canFallBack) {
		wait := backoff(b.base, b.max, b.call, ce.RetryAfter)
		switch {
		case b.deadline != nil && !b.now.Add(wait).Before(*b.deadline):
			deadlineBlocked = true
		case wait <= b.maxWait:
			return decision{act: actRetry, wait: wait}
		}
	}
	if canFallBack {
		return decision{act: actFallback}
	}
	if deadlineBlocked {
		return decision{act: actFail, errType: schemas.ErrDeadlineExceeded, message: "no time left before the job deadline to retry " + ce.Type}
	}
	return decision{act: actFail, errType: ce.Type, message: ce.Message, dlq: deadLetters(ce.Type)}
}

// deadLetters reports whether a job that failed with errType goes to the
// dead-letter queue: failures on the provider's side do (they can be replayed
// once the provider recovers); the caller's own faults (invalid_request,
// content_filter), cancellations and missed deadlines do not.
func deadLetters(errType string) bool {
	switch errType {
	case schemas.ErrInvalidRequest, schemas.ErrContentFilter, schemas.ErrContextLength, schemas.ErrCanceled, schemas.ErrDeadlineExceeded:
		return false
	}
	return true
}

// maxMessage bounds an error message recorded on attempts and results.
const maxMessage = 300

// shortMessage bounds an error message recorded on attempts and results,
// on a character boundary. Adapters have redacted their key from the whole
// message already (see redact.Clip).
func shortMessage(s string) string { return redact.Clip(s, maxMessage) }
