package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// settle makes a run's effects durable, then acknowledges the job: the
// Result (or the next hop, or a dead letter) and telemetry are published and
// confirmed first; if any publish fails the job is Nak'd with a delay and
// redelivered, so nothing is lost.
func (p *Pool) settle(msg jetstream.Msg, job *schemas.Job, r *run) {
	switch r.status {
	case runAbandoned:
		p.stats.abandoned.Add(1)
		_ = msg.Nak()
		p.log.Info("job handed back", "job", job.ID)
		return
	case runFallback:
		p.fallback(msg, job, r)
		return
	case runDelayed:
		// Waits in the queue (rate limit window, breaker probe).
		_ = msg.NakWithDelay(r.delay)
		return
	}
	res := p.result(job, r)
	data, err := schemas.AppendResult(make([]byte, 0, 512+len(res.Response)), res)
	if err != nil {
		p.log.Error("encode result", "job", job.ID, "err", err)
		_ = msg.NakWithDelay(p.cfg.NakDelay)
		return
	}
	if job.Stream {
		if r.status == runFailed {
			info, _ := json.Marshal(res.Error)
			if err := p.publishChunk(job.ID, r.target, chunkError, info); err != nil {
				p.log.Warn("publish error chunk", "job", job.ID, "err", err)
			}
		}
		// Chunks are core messages: make sure the server has routed them
		// before the Result, which ends the stream for the client.
		_ = p.cfg.Conn.FlushTimeout(p.cfg.PublishTimeout)
	}
	resMsg := &nats.Msg{Subject: topology.Result(job.Batch, job.ID), Data: data, Header: nats.Header{}}
	resMsg.Header.Set(jetstream.MsgIDHeader, topology.ResultMsgID(job.ID, job.Hop))
	msgs := []*nats.Msg{resMsg}
	var telemetryDone <-chan error // shared with other jobs' telemetry (telbatch.go)
	telemetry, err := p.eventMsg(job, res, len(job.Attempts))
	switch {
	case err != nil:
		p.log.Error("encode telemetry", "job", job.ID, "err", err)
	case p.telemetry != nil:
		telemetryDone = p.telemetry.publish(telemetry)
	default:
		msgs = append(msgs, telemetry)
	}
	if r.dlq {
		dl, err := p.deadLetter(msg, job, res)
		if err != nil {
			p.log.Error("encode dead letter", "job", job.ID, "err", err)
			_ = msg.NakWithDelay(p.cfg.NakDelay)
			return
		}
		msgs = append(msgs, dl)
	}
	// A sync caller is answered as the Result goes out on the message's
	// first delivery, without waiting for its confirmation (nor for the
	// telemetry's): no earlier run of this message stored another Result
	// of this hop (only a run that outlived AckWait, or a copy of the job
	// published again after the duplicate window, could have; then the
	// caller may get this run's answer rather than the stored one). The
	// job is acked only once everything is confirmed; if a publish fails
	// it is redelivered and runs again, and RESULTS keeps that run's Result
	// (the caller, answered already, is gone). On a redelivery the caller
	// is answered once the Result is confirmed, with the stored copy if an
	// earlier run stored it first (storedResult).
	futs := p.publishAsync(msgs)
	if !r.redelivered {
		p.reply(job, data)
	}
	acks, err := p.await(msgs, futs)
	if err == nil && r.redelivered {
		p.reply(job, p.storedResult(job, acks[0], data))
	}
	if telemetryDone != nil {
		if terr := <-telemetryDone; err == nil {
			err = terr
		}
	}
	if err != nil {
		p.log.Warn("publish outcome; job will be redelivered", "job", job.ID, "err", err)
		p.stats.publishFailures.Add(1)
		_ = msg.NakWithDelay(p.cfg.NakDelay)
		return
	}
	p.ack(msg, job)
	if r.status == runSucceeded {
		p.stats.succeeded.Add(1)
	} else {
		p.stats.failed.Add(1)
	}
	if r.dlq {
		p.stats.deadLettered.Add(1)
	}
	if r.status == runFailed {
		p.log.Info("job failed", "job", job.ID, "error_type", res.Error.Type, "attempts", len(res.Attempts), "dead_lettered", r.dlq)
	}
}

// fallback publishes the job to its next target with this hop's attempts.
func (p *Pool) fallback(msg jetstream.Msg, job *schemas.Job, r *run) {
	next := *job
	next.Attempts = append(append([]schemas.Attempt(nil), job.Attempts...), r.attempts...)
	next.Plan = job.Plan[1:]
	if r.deferTarget { // breaker open: retry it after the others (resilience.go)
		next.Plan = append(append([]schemas.Target(nil), next.Plan...), job.Plan[0])
	}
	next.Hop = job.Hop + 1
	if r.cont != nil { // the stream broke: the next target continues it
		next.Continuation = r.cont
	}
	var events []*nats.Msg
	if m, err := p.attemptMsg(&next, job.Hop, len(job.Attempts)); err != nil {
		p.log.Error("encode telemetry", "job", job.ID, "err", err)
	} else if m != nil {
		events = append(events, m)
	}
	futs := p.publishAsync(events)
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	err := topology.PublishJob(ctx, p.cfg.JS, &next)
	cancel()
	if err == nil {
		_, err = p.await(events, futs)
	}
	if err != nil {
		p.log.Warn("publish next hop; job will be redelivered", "job", job.ID, "err", err)
		p.stats.publishFailures.Add(1)
		_ = msg.NakWithDelay(p.cfg.NakDelay)
		return
	}
	p.ack(msg, job)
	p.stats.fellBack.Add(1)
	last := r.attempts[len(r.attempts)-1]
	p.log.Info("job falls back", "job", job.ID, "error_type", last.ErrorType, "next", next.Plan[0].String())
}

// result builds the Result of a finished run.
func (p *Pool) result(job *schemas.Job, r *run) *schemas.Result {
	now := time.Now()
	attempts := make([]schemas.Attempt, 0, len(job.Attempts)+len(r.attempts))
	attempts = append(append(attempts, job.Attempts...), r.attempts...)
	res := &schemas.Result{
		V:        schemas.Version,
		ID:       job.ID,
		Route:    job.Route,
		Provider: r.target.Provider,
		Model:    r.target.Model,
		Attempts: attempts,
		Metadata: job.Metadata,
	}
	firstPull := r.pulledAt
	if len(job.Attempts) > 0 && job.Attempts[0].StartedAt.Before(firstPull) {
		firstPull = job.Attempts[0].StartedAt // pulled by an earlier hop
	}
	res.Timings = schemas.Timings{
		QueuedMS:   msBetween(job.CreatedAt, firstPull),
		ProviderMS: r.providerMS,
		TotalMS:    msBetween(job.CreatedAt, now),
	}
	if r.status == runSucceeded {
		res.Status = schemas.StatusSucceeded
		res.Response = r.resp.Body
		res.Usage = r.resp.Usage
		res.Timings.TTFTMS = msBetween(job.CreatedAt, r.firstTokenAt)
		if c := job.Continuation; c != nil && !c.FirstChunkAt.IsZero() {
			res.Timings.TTFTMS = msBetween(job.CreatedAt, c.FirstChunkAt) // the caller's first chunk came earlier
		}
	} else {
		res.Status = schemas.StatusFailed
		res.Error = r.err
	}
	res.CostUSD = costOf(p.cfg.Pricer, r.target.Provider, r.target.Model, res.Usage.InputTokens, res.Usage.OutputTokens)
	if c := job.Continuation; c != nil && r.status == runSucceeded {
		// A continued answer: its usage covers the whole answer and its
		// cost is that of every call that produced it.
		res.CostUSD = continuedCost(p.cfg.Pricer, attempts, res.CostUSD)
		res.Usage.OutputTokens += c.OutputTokens
	}
	return res
}

// continuedCost adds the cost of the earlier calls of a continued answer
// (attempts with tokens, all but the last) to the serving call's cost; nil
// when any price is unknown.
func continuedCost(pr Pricer, attempts []schemas.Attempt, last *float64) *float64 {
	if last == nil {
		return nil
	}
	total := *last
	for _, a := range attempts[:len(attempts)-1] {
		if a.InputTokens == 0 && a.OutputTokens == 0 {
			continue
		}
		c := costOf(pr, a.Provider, a.Model, a.InputTokens, a.OutputTokens)
		if c == nil {
			return nil
		}
		total += *c
	}
	return &total
}

func msBetween(from, to time.Time) int64 {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from).Milliseconds()
}

// storedResult is the Result a sync caller gets: data, the one this run
// published, unless the server had stored this hop's Result before (ack
// says Duplicate: an earlier run of the job stored it and its redelivery
// could not find it, so the provider was called again). Then it is the
// stored one, which RESULTS, budgets and every later reader see; data only
// if that cannot be read.
func (p *Pool) storedResult(job *schemas.Job, ack *jetstream.PubAck, data []byte) []byte {
	if job.Reply == "" || ack == nil || !ack.Duplicate {
		return data
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	results, err := p.resultsStream(ctx)
	if err == nil {
		var stored *jetstream.RawStreamMsg
		if stored, err = results.GetLastMsgForSubject(ctx, topology.ResultByID(job.ID)); err == nil {
			if stored.Header.Get(jetstream.MsgIDHeader) == topology.ResultMsgID(job.ID, job.Hop) {
				return stored.Data
			}
			err = fmt.Errorf("the last stored result is of another run (%s)", stored.Header.Get(jetstream.MsgIDHeader))
		}
	}
	p.log.Warn("result was stored before, but the stored copy could not be read; replying with this run's", "job", job.ID, "err", err)
	return data
}

// reply answers a sync caller: in process when it waits in this process
// (PoolConfig.LocalReply), else by a core publish to its inbox. A streaming
// job's answer always goes through the server, behind the chunks it
// published there (a local answer could overtake them).
func (p *Pool) reply(job *schemas.Job, data []byte) {
	if job.Reply == "" {
		return
	}
	if !job.Stream && p.cfg.LocalReply != nil && p.cfg.LocalReply(job.Reply, data) {
		return
	}
	if err := p.cfg.Conn.Publish(job.Reply, data); err != nil {
		p.log.Warn("reply", "job", job.ID, "err", err)
	}
}

// ack acknowledges a job whose effects are durable. On replicated lane
// consumers it waits for the server to confirm the ack, sending it again
// while the consumer elects a new leader (for up to AckWait/3): an ack lost
// unconfirmed keeps the job counted against MaxAckPending until AckWait, so
// after a node loss every lost ack would stall the lane for seconds. On a
// single replica no election can lose it, so the ack is sent without a
// round trip (one server message less per job). Either way a lost ack only
// redelivers the job, and the redelivery finds the stored Result and does
// not call again.
func (p *Pool) ack(msg jetstream.Msg, job *schemas.Job) {
	if !p.confirmAcks.Load() {
		if err := msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			p.log.Warn("ack", "job", job.ID, "err", err)
		}
		return
	}
	deadline := time.Now().Add(p.ackWait / 3)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), ackConfirmWait)
		err := msg.DoubleAck(ctx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return
		}
		if time.Now().After(deadline) || !(errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded)) {
			p.log.Warn("ack", "job", job.ID, "err", err)
			return
		}
		time.Sleep(ackConfirmBackoff)
	}
}

// How long ack waits for each confirmation, and between tries.
const (
	ackConfirmWait    = 500 * time.Millisecond
	ackConfirmBackoff = 50 * time.Millisecond
)
