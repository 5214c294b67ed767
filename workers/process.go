package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// runStatus is how one delivery (hop) of a job ended; settle.go acts on it.
type runStatus int

// Run statuses of one delivery of a job.
const (
	runSucceeded runStatus = iota // publish the Result
	runFailed                     // publish the failed Result (and maybe dead-letter)
	runFallback                   // publish the job to its next target
	runAbandoned                  // Nak: another worker takes the job
	runDelayed                    // Nak with delay: back to the queue, e.g. until the rate-limit window resets
)

// run is what happened to one delivery (hop) of a job.
type run struct {
	status   runStatus
	target   schemas.Target
	resp     *llm.Response
	attempts []schemas.Attempt // this hop's calls
	err      *schemas.ErrorInfo
	dlq      bool
	// delay: runDelayed's wait in the queue before redelivery.
	delay time.Duration
	// deferTarget: the fallback puts this target at the end of the plan
	// instead of dropping it (skipped for an open breaker).
	deferTarget bool

	// callBy: the current call must start before this instant, the end
	// of the rate-limit window its reservation was counted in (zero: no
	// reservation). A call that could not start in time is not made.
	callBy time.Time
	// probe: the current call is the breaker's half-open probe.
	probe bool

	// redelivered: this delivery is not the message's first, so an
	// earlier run may have stored this hop's Result (settle.go).
	redelivered bool

	pulledAt     time.Time
	firstTokenAt time.Time
	providerMS   int64
	// chunks counts the chunks published to the client (streaming jobs).
	chunks atomic.Int64
	// sent is what the current call published (continuation.go).
	sent sentText
	// cont: the stream broke and may be continued; the next hop carries it.
	cont *schemas.Continuation
	// noPrefill: the target refused a prefill in this run; continue by
	// restarting the answer instead. prefilled: the current call sent one.
	noPrefill, prefilled bool
}

// handle processes one delivery of a job, end to end.
func (p *Pool) handle(msg jetstream.Msg) {
	pulled := time.Now()
	job, reason := p.decode(msg)
	if reason != "" {
		p.poison(msg, reason)
		return
	}
	// A delivery whose count cannot be read is treated as a redelivery:
	// that only costs a lookup.
	redelivered := true
	if md, err := msg.Metadata(); err == nil {
		redelivered = md.NumDelivered > 1
	}
	if redelivered && p.finishedBefore(msg, job) {
		return
	}
	p.stats.inFlight.Add(1)
	ctx, done := p.track(job.ID, job.Deadline, msg)
	r := p.execute(ctx, job, pulled)
	r.redelivered = redelivered
	done()
	p.stats.inFlight.Add(-1)
	p.settle(msg, job, r)
}

// decode parses a delivered job; reason is non-empty for a poison message.
func (p *Pool) decode(msg jetstream.Msg) (*schemas.Job, string) {
	job, err := schemas.DecodeJob(msg.Data(), p.maxJobBytes)
	if err != nil {
		return nil, err.Error()
	}
	if err := job.Validate(); err != nil {
		return nil, err.Error()
	}
	if len(job.Plan) == 0 {
		return nil, "plan: is empty (a routed job needs a target)"
	}
	if job.Plan[0].Provider != p.name {
		return nil, fmt.Sprintf("plan[0].provider: %q does not match this subject's provider %q", job.Plan[0].Provider, p.name)
	}
	return job, ""
}

// execute is the retry loop, the only one in the system: it calls the
// current target up to 1+retries times and decides what happens next.
func (p *Pool) execute(ctx context.Context, job *schemas.Job, pulled time.Time) *run {
	r := &run{target: job.Plan[0], pulledAt: pulled}
	if job.Expired(time.Now()) {
		return r.fail(schemas.ErrDeadlineExceeded, "job deadline passed before it was started", 0, false)
	}
	if ctx.Err() != nil { // cancelled before it started
		ce := classify(ctx.Err(), ctx, ctx, p.timeout)
		if ce.abandon {
			r.status = runAbandoned
			return r
		}
		return r.fail(ce.Type, ce.Message, 0, false)
	}
	pol := p.policyFor(job.Route)
	for call := 0; ; call++ {
		// Breaker, rate limit and deadline gate, then the call under the
		// route's latency threshold / hedging (resilience.go).
		end, rv := p.gate(ctx, job, r, call)
		if end != nil {
			return end
		}
		att, resp, ce := p.callResilient(ctx, job, r, rv)
		if ce != nil && ce.expired {
			// No call was made: its rate-limit window ended first. Give the
			// quota (and a half-open probe) back and pass the gate again.
			p.unreserve(job, r, rv)
			call--
			continue
		}
		if ce == nil {
			att.Outcome = schemas.OutcomeOK
			r.attempts = append(r.attempts, att)
			r.status, r.resp = runSucceeded, resp
			return r
		}
		if r.prefilled && ce.Status == 400 && (ce.Type == schemas.ErrInvalidRequest || ce.Type == schemas.ErrBadResponse) {
			// The target refused the prefill: never the caller's error.
			// Ask it again from the start at once (no retry used up).
			p.learnRefusal(r.target, ce)
			r.noPrefill = true
			att.Outcome = schemas.OutcomeRetry
			att.ErrorMessage = shortMessage("prefill refused; restarting the answer: " + ce.Message)
			r.attempts = append(r.attempts, att)
			call--
			continue
		}
		d := decide(ce, pol, retryBudget{
			call: call, moreTargets: len(job.Plan) > 1, deadline: job.Deadline, now: time.Now(),
			base: p.cfg.BackoffBase, max: p.cfg.BackoffMax, maxWait: p.cfg.MaxRetryWait,
		})
		if d.act == actAbandon {
			r.status = runAbandoned
			return r
		}
		att.Outcome = d.outcome()
		r.attempts = append(r.attempts, att)
		switch d.act {
		case actFallback:
			if ce.streamBroken {
				// The cut call's tokens (estimated: it reported no usage).
				var est schemas.Usage
				r.cont, est = p.continuation(job, r)
				last := &r.attempts[len(r.attempts)-1]
				last.InputTokens, last.OutputTokens = est.InputTokens, est.OutputTokens
			}
			r.status = runFallback
			return r
		case actFail:
			r.fail(d.errType, d.message, ce.Status, d.dlq)
			if d.errType == ce.Type {
				r.err.Code = ce.Code // the upstream's own code reaches the caller
			}
			return r
		}
		p.log.Debug("retrying", "job", job.ID, "error_type", ce.Type, "wait", d.wait)
		if !sleepCtx(ctx, d.wait) {
			// Cancelled, past the deadline or shutting down while waiting.
			ce := classify(ctx.Err(), ctx, ctx, p.timeout)
			if ce.abandon {
				r.status = runAbandoned
				return r
			}
			r.attempts[len(r.attempts)-1].Outcome = schemas.OutcomeFatal
			return r.fail(ce.Type, ce.Message, 0, false)
		}
	}
}

// invoke makes one non-streaming call of the job's kind: a completion, or
// embeddings (an adapter without them answers invalid_request).
func invoke(ctx context.Context, c llm.Completer, job *schemas.Job, req *llm.Request) (*llm.Response, error) {
	if job.Kind != schemas.KindEmbeddings {
		return c.Complete(ctx, req)
	}
	e, ok := c.(llm.Embedder)
	if !ok {
		return nil, &llm.ProviderError{Provider: job.Plan[0].Provider, Type: schemas.ErrInvalidRequest, Status: 400,
			Message: fmt.Sprintf("%s has no embeddings API (route embeddings to openai or gemini kinds)", job.Plan[0].Provider)}
	}
	return e.Embed(ctx, req)
}

// fail marks the run failed.
func (r *run) fail(errType, message string, status int, dlq bool) *run {
	r.status = runFailed
	r.err = &schemas.ErrorInfo{Type: errType, Message: shortMessage(message), StatusCode: status}
	r.dlq = dlq
	return r
}

// call makes one provider call and records it as an Attempt (outcome left
// to the caller). The call's timeout is the provider's until the first
// streamed chunk, then the stream idle timeout restarted by every chunk,
// and never past the job's deadline.
func (p *Pool) call(jobCtx context.Context, job *schemas.Job, r *run) (schemas.Attempt, *llm.Response, *callError) {
	target := r.target
	callCtx, cancel := context.WithCancelCause(jobCtx)
	defer cancel(nil)
	// One timer: the provider timeout until the first chunk, then the
	// stream idle timeout between chunks.
	idle := min(p.policyFor(job.Route).idle, p.timeout)
	var received atomic.Int64
	timer := time.AfterFunc(p.timeout, func() {
		if received.Load() > 0 {
			cancel(errStreamIdle)
			return
		}
		cancel(errCallTimeout)
	})
	defer timer.Stop()

	req := &llm.Request{Model: target.Model, Body: job.Request, Native: job.Native}
	var filter *contFilter
	r.sent, r.prefilled = sentText{}, false
	if c := job.Continuation; c != nil && job.Stream && p.streamer != nil {
		filter = &contFilter{addOut: c.OutputTokens}
		if c.Text != "" && !r.noPrefill && p.prefillAllowed(target) {
			body, trimmed, err := prefillBody(job.Request, c.Text, p.cfg.Provider.Kind)
			if err != nil {
				return schemas.Attempt{}, nil, &callError{Type: schemas.ErrInvalidRequest, Message: err.Error()}
			}
			// The prefill is in the OpenAI body: the native one can't carry it.
			req.Body, req.Native, r.prefilled, filter.trimSpace = body, nil, true, trimmed
		} else {
			filter.pending = c.Text // restart: match the text already sent
		}
	}
	start := time.Now()
	if !r.callBy.IsZero() && !start.Before(r.callBy) {
		return schemas.Attempt{}, nil, errReservationExpired()
	}
	if job.Continuation != nil && job.Stream && p.streamer == nil {
		// A whole-answer adapter would repeat the text already sent.
		ce := &callError{Type: schemas.ErrStreamBroken, streamBroken: true, final: true,
			Message: fmt.Sprintf("%v: %s cannot stream, so it cannot continue the answer", errContinuationMismatch, target)}
		return schemas.Attempt{Provider: target.Provider, Model: target.Model, StartedAt: start.UTC(),
			ErrorType: ce.Type, ErrorMessage: ce.Message}, nil, ce
	}
	p.stats.calls.Add(1)
	var (
		resp *llm.Response
		err  error
	)
	if job.Stream && p.streamer != nil && job.Kind == "" {
		resp, err = p.streamer.Stream(callCtx, req, func(chunk json.RawMessage) error {
			if callCtx.Err() != nil {
				return context.Cause(callCtx)
			}
			timer.Reset(idle)
			received.Add(1)
			if filter != nil {
				out, err := filter.apply(chunk)
				if err != nil || out == nil {
					return err
				}
				chunk = out
			}
			if r.chunks.Load() == 0 {
				r.firstTokenAt = time.Now()
			}
			if err := p.publishChunk(job.ID, target, chunkData, chunk); err != nil {
				return fmt.Errorf("publish chunk: %w", err)
			}
			r.chunks.Add(1)
			r.sent.observe(chunk)
			return nil
		})
	} else {
		resp, err = invoke(callCtx, p.cfg.Completer, job, req)
	}
	end := time.Now()
	if err == nil && resp == nil {
		err = &llm.ProviderError{Provider: p.name, Type: schemas.ErrBadResponse, Message: "adapter returned no response"}
	}
	att := schemas.Attempt{
		Provider:   target.Provider,
		Model:      target.Model,
		StartedAt:  start.UTC(),
		DurationMS: end.Sub(start).Milliseconds(),
	}
	if err != nil {
		ce := classify(err, jobCtx, callCtx, p.timeout)
		if errors.Is(context.Cause(callCtx), errStreamIdle) && jobCtx.Err() == nil {
			ce.Message = fmt.Sprintf("stream idle for %s after %d chunks", idle, received.Load())
		}
		if errors.Is(err, errContinuationMismatch) {
			ce = &callError{Type: schemas.ErrStreamBroken, Message: fmt.Sprintf("%v (%s restarted the answer)", err, target)}
			ce.streamBroken, ce.final = true, true
		}
		if r.chunks.Load() > 0 {
			ce.streamBroken = true
			ce.continuable = !ce.final && !r.sent.other && continuable(ce.Type)
		}
		att.StatusCode, att.ErrorType, att.ErrorMessage = ce.Status, ce.Type, shortMessage(ce.Message)
		return att, nil, ce
	}
	if job.Stream && p.streamer == nil && job.Kind == "" {
		// The adapter cannot stream: the whole completion is one chunk.
		if perr := p.publishChunk(job.ID, target, chunkData, completionAsChunk(resp.Body)); perr != nil {
			p.log.Warn("publish chunk", "job", job.ID, "err", perr)
		}
		r.chunks.Add(1)
	}
	if r.firstTokenAt.IsZero() {
		r.firstTokenAt = end
	}
	if c := job.Continuation; c != nil && filter != nil {
		if filter.pending != "" {
			ce := &callError{Type: schemas.ErrStreamBroken, streamBroken: true, final: true,
				Message: fmt.Sprintf("%v: %s restarted with a shorter answer", errContinuationMismatch, target)}
			att.ErrorType, att.ErrorMessage = ce.Type, ce.Message
			return att, nil, ce
		}
		resp.Body = wholeCompletion(resp.Body, c.Text)
	}
	att.StatusCode = resp.StatusCode
	if att.StatusCode == 0 {
		att.StatusCode = 200
	}
	att.InputTokens, att.OutputTokens = resp.Usage.InputTokens, resp.Usage.OutputTokens
	if resp.BadChunks > 0 {
		// Telemetry only: the answer is whole, the stream held junk.
		att.ErrorType = schemas.ErrBadChunk
		att.ErrorMessage = fmt.Sprintf("skipped %d malformed stream events", resp.BadChunks)
	}
	r.providerMS = end.Sub(start).Milliseconds()
	return att, resp, nil
}

// finishedBefore handles a redelivered job whose Result is already stored
// (the previous worker died between publishing it and acknowledging): it
// answers a sync caller again, re-publishes the telemetry (deduplicated)
// and acknowledges,
// without calling the provider again.
func (p *Pool) finishedBefore(msg jetstream.Msg, job *schemas.Job) bool {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	results, err := p.resultsStream(ctx)
	if err != nil {
		p.log.Warn("results stream", "err", err)
		return false
	}
	stored, err := results.GetLastMsgForSubject(ctx, topology.ResultByID(job.ID))
	if err != nil {
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			p.log.Warn("look up stored result", "job", job.ID, "err", err)
		}
		return false
	}
	if stored.Header.Get(jetstream.MsgIDHeader) != topology.ResultMsgID(job.ID, job.Hop) {
		return false // an earlier run's result (e.g. before a DLQ replay)
	}
	res, err := schemas.DecodeResult(stored.Data)
	if err != nil {
		return false
	}
	telemetry, err := p.eventMsg(job, res, 0)
	if err != nil {
		return false
	}
	p.reply(job, stored.Data)
	if _, err := p.publishAll([]*nats.Msg{telemetry}); err != nil {
		p.log.Warn("re-publish telemetry", "job", job.ID, "err", err)
		p.stats.publishFailures.Add(1)
		_ = msg.NakWithDelay(p.cfg.NakDelay)
		return true
	}
	p.ack(msg, job)
	p.stats.redelivered.Add(1)
	p.log.Info("redelivered job already finished", "job", job.ID)
	return true
}
