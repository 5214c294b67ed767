package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/latency"
	"github.com/switchboard-llm/switchboard/policy/ratelimit"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers/lanes"
	"github.com/switchboard-llm/switchboard/workers/prefill"
)

// Resilience is the shared policy state a pool consults around each call.
// Every field is optional: a nil one turns its policy off.
type Resilience struct {
	// Breakers refuses calls to targets whose circuit is open (the job
	// falls back without a call) and counts every call's outcome.
	Breakers *breaker.Set
	// Limiter holds the provider's rpm/tpm over all processes; a job over
	// the limit waits in the queue (Nak with delay) while its deadline allows.
	Limiter *ratelimit.Limiter
	// Latency receives every call's latency (least-latency routing,
	// deadline-aware skipping).
	Latency *latency.Store
	// Completers returns the llm.Completer of another provider, used to hedge
	// a slow call on the plan's next target (mode: hedge). Nil, or a nil
	// llm.Completer, degrades hedging to cancel mode.
	Completers func(provider string) llm.Completer
	// Providers returns another provider's config (timeout, rpm) for
	// hedged calls; nil means Config's providers.
	Providers func(name string) (config.Provider, bool)
	// Prefill is the shared record of models that refused an assistant
	// prefill (continuation.go); nil: only the config decides.
	Prefill *prefill.Store
}

// OpenResilience opens the shared breakers, rate limiter and latency store
// of cfg; they run until ctx ends.
func OpenResilience(ctx context.Context, js jetstream.JetStream, cfg *config.Config) (Resilience, error) {
	b, err := breaker.New(ctx, js, cfg.Breaker, breaker.Options{})
	if err != nil {
		return Resilience{}, err
	}
	l, err := ratelimit.New(ctx, js, cfg.RateLimits, ratelimit.Options{})
	if err != nil {
		return Resilience{}, err
	}
	lat, err := latency.Open(ctx, js, cfg.Routing)
	if err != nil {
		return Resilience{}, err
	}
	pf, err := prefill.Open(ctx, js)
	if err != nil {
		return Resilience{}, err
	}
	return Resilience{Breakers: b, Limiter: l, Latency: lat, Prefill: pf}, nil
}

// Error types and causes of the resilience policies.
var (
	// errSlowCall cancels a call that passed its route's latency_threshold.
	errSlowCall = errors.New("latency threshold passed")
	// errHedgeLost cancels the slower of two hedged calls.
	errHedgeLost = errors.New("the other hedged call answered first")
)

// messages opens the pool's job source: the three priority lanes of the
// provider, picked by the configured lane weights.
func (p *Pool) messages(ctx context.Context) (jetstream.MessagesContext, error) {
	cons, err := topology.EnsureLaneConsumers(ctx, p.cfg.JS, p.cfg.Provider)
	if err != nil {
		return nil, err
	}
	p.confirmAcks.Store(topology.ReplicasOf(p.cfg.JS) > 1 || topology.AnyReplicated(cons))
	// The provider's global in-flight cap over lanes and processes.
	slots, err := lanes.EnsureSlots(ctx, p.cfg.JS, p.cfg.Provider)
	if err != nil {
		return nil, err
	}
	if old := p.slots.Swap(slots); old != nil {
		old.Close() // the workers that used it have returned
	}
	// A pull request takes as many ready jobs as workers are idle (up to
	// the concurrency), one round trip for many jobs under load.
	return lanes.Open(p.cfg.JS.Conn(), cons, lanes.Weights(p.liveConfig().Lanes), p.ackWait/3, p.concurrency)
}

// SetConfig applies a reloaded config to a running pool: routes' retry and
// fallback policies, breaker settings and the rate-limit window. Jobs in
// flight finish under the policy they started with. A pool with
// PoolConfig.Live calls it itself and leaves the shared breaker and limiter
// settings to whoever owns the holder (cmd's app registers them on it).
func (p *Pool) SetConfig(cfg *config.Config) {
	p.mu.Lock()
	same := p.live == cfg
	p.mu.Unlock()
	if same {
		return
	}
	pols := map[string]policy{}
	prov, ok := cfg.Provider(p.name)
	if !ok {
		prov = p.cfg.Provider
	}
	for i := range cfg.Routes {
		pols[cfg.Routes[i].Name] = newPolicy(&cfg.Routes[i], prov)
	}
	p.mu.Lock()
	p.policies = pols
	p.live = cfg
	p.mu.Unlock()
	if p.cfg.Live != nil {
		return // the shared breakers and limiter follow the holder themselves (its OnChange)
	}
	if b := p.cfg.Resilience.Breakers; b != nil {
		b.SetConfig(cfg.Breaker)
	}
	if l := p.cfg.Resilience.Limiter; l != nil {
		l.SetConfig(cfg.RateLimits)
	}
}

// liveConfig is the config the pool runs under now: Live's when set (a new
// one is applied first), else the last SetConfig's, else Config.
func (p *Pool) liveConfig() *config.Config {
	if p.cfg.Live != nil {
		if cur := p.cfg.Live(); cur != nil {
			p.SetConfig(cur)
			return cur
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live != nil {
		return p.live
	}
	return p.cfg.Config
}

func (p *Pool) routeOf(job *schemas.Job) *config.Route {
	rt, _ := p.liveConfig().Route(job.Route)
	return rt
}

func (p *Pool) providerConfig(name string) (config.Provider, bool) {
	if name == p.name {
		return p.cfg.Provider, true
	}
	if f := p.cfg.Resilience.Providers; f != nil {
		return f(name)
	}
	return p.liveConfig().Provider(name)
}

// skipAttempt records a target passed over without a call.
func skipAttempt(t schemas.Target, errType, msg string) schemas.Attempt {
	return schemas.Attempt{Provider: t.Provider, Model: t.Model, StartedAt: time.Now().UTC(),
		ErrorType: errType, ErrorMessage: msg, Outcome: schemas.OutcomeFallback}
}

// gate runs before every call of the retry loop (call is its 0-based
// number on this target). It returns nil when the call may go ahead, or
// the run's end: a fallback without a call (breaker open, no quota or no
// time left while a later target remains), a delay (wait in the queue for
// quota or a probe), or a failure. reserved is the rate-limit reservation
// to commit after the call.
func (p *Pool) gate(ctx context.Context, job *schemas.Job, r *run, call int) (end *run, reserved *ratelimit.Reservation) {
	res := p.cfg.Resilience
	t := r.target
	now := time.Now()
	more := len(job.Plan) > 1
	// Deadline: a target whose recent latency cannot fit in the time
	// left is skipped when a later target remains.
	if call == 0 && job.Deadline != nil && more && res.Latency != nil {
		if lat, ok := res.Latency.Latency(t.Provider, t.Model); ok && now.Add(lat).After(*job.Deadline) {
			r.attempts = append(r.attempts, skipAttempt(t, schemas.ErrDeadlineExceeded,
				fmt.Sprintf("skipped: recent latency %s exceeds the %s left before the deadline", lat.Round(time.Millisecond), job.Deadline.Sub(now).Round(time.Millisecond))))
			r.status = runFallback
			return r, nil
		}
	}
	r.callBy, r.probe = time.Time{}, false
	// A refusal that waited in place (a short wait mid-retries) checks again.
	for {
		probe := false
		if res.Breakers != nil {
			d, err := res.Breakers.Allow(ctx, t.Provider, t.Model)
			if err != nil {
				p.log.Warn("breaker state unavailable; calling", "err", err)
			}
			if !d.Allowed {
				if end := p.refuse(ctx, job, r, call, d.RetryAt, schemas.ErrCircuitOpen, "circuit breaker open for "+t.String()); end != nil {
					return end, nil
				}
				continue
			}
			probe = d.Probe
		}
		if res.Limiter == nil || (p.cfg.Provider.RPM <= 0 && p.cfg.Provider.TPM <= 0) {
			r.probe = probe // no rate limit: nothing to reserve or estimate
			return nil, nil
		}
		in, out := pricing.EstimateTokens(job.Request, p.liveConfig().Routing.DefaultOutputTokens)
		rv, err := res.Limiter.Reserve(ctx, p.cfg.Provider, in+out)
		if err != nil {
			p.log.Warn("rate limit state unavailable; calling", "err", err)
			r.probe = probe
			return nil, nil
		}
		if rv.OK {
			r.callBy, r.probe = rv.CallBy, probe
			return nil, &rv
		}
		if probe { // hand the unused half-open probe back
			_ = res.Breakers.Record(ctx, t.Provider, t.Model, schemas.ErrRateLimited)
		}
		if end := p.refuse(ctx, job, r, call, rv.RetryAt, schemas.ErrRateLimited, "provider rpm/tpm limit reached for this window"); end != nil {
			return end, nil
		}
	}
}

// refuse ends a run whose target may not be called before retryAt: wait in
// the queue when the deadline allows (first call) or in place (a retry,
// when short), else fall back to the next target, else fail.
func (p *Pool) refuse(ctx context.Context, job *schemas.Job, r *run, call int, retryAt time.Time, errType, msg string) *run {
	now := time.Now()
	var need time.Duration
	if lat := p.cfg.Resilience.Latency; lat != nil {
		need, _ = lat.Latency(r.target.Provider, r.target.Model)
	}
	wait, fits := ratelimit.Delay(retryAt, now, job.Deadline, need)
	more := len(job.Plan) > 1
	// A job with another healthy target goes there at once when the
	// breaker is open; for a rate limit it waits for its own target's
	// quota only when no other target remains.
	if more && (errType == schemas.ErrCircuitOpen || !fits || call > 0) {
		r.attempts = append(r.attempts, skipAttempt(r.target, errType, msg))
		r.status = runFallback
		// An open breaker may close by the time the other targets are done:
		// the target goes to the end of the plan, once per job.
		r.deferTarget = errType == schemas.ErrCircuitOpen && !skippedBefore(job, r.target)
		return r
	}
	if !fits {
		if errType == schemas.ErrCircuitOpen {
			return r.fail(errType, msg+"; no other target and the deadline comes before the next probe", 0, true)
		}
		return r.fail(schemas.ErrDeadlineExceeded, msg+"; the deadline comes before the window resets", 0, false)
	}
	if call > 0 && wait <= p.cfg.MaxRetryWait {
		// Mid-retry: wait here so this delivery's attempts are kept.
		if sleepCtx(ctx, wait) {
			return nil
		}
	}
	if call > 0 && errType == schemas.ErrCircuitOpen && wait > p.cfg.MaxRetryWait && len(r.attempts) > 0 {
		// The retry of a failed call on the last target, whose breaker is
		// open now: like any retry that would wait past MaxRetryWait the
		// job fails with that call's error. Waiting in the queue instead
		// would start the next delivery with its retries anew, so a target
		// that stays down would take a failed probe per cooldown forever
		// and the job would never be answered.
		return p.failRetry(r)
	}
	r.status = runDelayed
	r.delay = max(wait, 10*time.Millisecond)
	p.log.Debug("job waits in the queue", "job", job.ID, "reason", errType, "delay", r.delay)
	return r
}

// failRetry fails a run whose retry was refused, with its last call's
// error (the caller appended that call's attempt to r.attempts).
func (p *Pool) failRetry(r *run) *run {
	last := &r.attempts[len(r.attempts)-1]
	last.Outcome = schemas.OutcomeFatal
	r.fail(last.ErrorType, last.ErrorMessage+"; no retry: the circuit breaker opened for "+r.target.String(), last.StatusCode, deadLetters(last.ErrorType))
	return r
}

// skippedBefore reports whether an earlier hop already skipped t for an
// open breaker.
func skippedBefore(job *schemas.Job, t schemas.Target) bool {
	for _, a := range job.Attempts {
		if a.ErrorType == schemas.ErrCircuitOpen && a.Provider == t.Provider && a.Model == t.Model {
			return true
		}
	}
	return false
}

// unreserve hands back what the gate granted to a call that was not made:
// its rate-limit reservation and, if it was one, the half-open probe.
func (p *Pool) unreserve(job *schemas.Job, r *run, rv *ratelimit.Reservation) {
	res := p.cfg.Resilience
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	if res.Limiter != nil && rv != nil {
		if err := res.Limiter.Release(ctx, p.cfg.Provider, *rv); err != nil {
			p.log.Warn("release rate-limit reservation", "job", job.ID, "err", err)
		}
	}
	if res.Breakers != nil && r.probe {
		_ = res.Breakers.Record(ctx, r.target.Provider, r.target.Model, schemas.ErrRateLimited)
	}
	r.callBy, r.probe = time.Time{}, false
}

// observe feeds one finished call into the breakers, the latency store and
// the rate limiter.
func (p *Pool) observe(t schemas.Target, att schemas.Attempt, ce *callError, rv *ratelimit.Reservation) {
	res := p.cfg.Resilience
	errType := ""
	if ce != nil {
		errType = ce.Type
		if ce.lost || errType == schemas.ErrCanceled || errType == schemas.ErrDeadlineExceeded {
			errType = schemas.ErrCanceled // says nothing about the provider
		}
		if ce.slow {
			// Slower than the route's latency_threshold is a routing
			// preference, not a failure: it does not trip the breaker.
			errType = schemas.ErrCanceled
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	if res.Breakers != nil && errType != schemas.ErrCanceled {
		if err := res.Breakers.Record(ctx, t.Provider, t.Model, errType); err != nil {
			p.log.Warn("record breaker outcome", "err", err)
		}
	}
	if res.Latency != nil && (errType == "" || errType == schemas.ErrTimeout || (ce != nil && ce.slow)) {
		res.Latency.Observe(t.Provider, t.Model, time.Duration(att.DurationMS)*time.Millisecond)
	}
	if res.Limiter != nil && rv != nil && ce == nil {
		prov, _ := p.providerConfig(t.Provider)
		_ = res.Limiter.Commit(ctx, prov, *rv, int(att.InputTokens+att.OutputTokens))
	}
}

// callResilient makes the current call under the route's latency_threshold:
// plain when the route has none (or no later target); in cancel mode a call
// with no answer (no first chunk) by the threshold is cancelled and the job
// falls back; in hedge mode the next target is called beside it and the
// first answer wins. Extra attempts (the hedge's loser) are appended to
// r.attempts; the returned attempt is the one deciding the job.
func (p *Pool) callResilient(ctx context.Context, job *schemas.Job, r *run, rv *ratelimit.Reservation) (schemas.Attempt, *llm.Response, *callError) {
	rt := p.routeOf(job)
	if rt == nil || rt.LatencyThreshold <= 0 || !p.laterTargetOpen(job) {
		att, resp, ce := p.call(ctx, job, r)
		if ce == nil || !ce.expired {
			p.observe(r.target, att, ce, rv)
		}
		return att, resp, ce
	}
	if rt.Mode == config.ModeHedge && !job.Stream {
		if c := p.hedgeCompleter(job.Plan[1].Provider); c != nil {
			return p.callHedged(ctx, job, r, rt.LatencyThreshold, c, rv)
		}
	}
	slowCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(rt.LatencyThreshold, func() {
		if r.chunks.Load() == 0 {
			cancel(errSlowCall)
		}
	})
	att, resp, ce := p.call(slowCtx, job, r)
	timer.Stop()
	if ce != nil && ce.expired {
		return att, resp, ce
	}
	if ce != nil && ce.slow {
		ce.Message = fmt.Sprintf("no answer within latency_threshold %s; moving to %s", rt.LatencyThreshold, job.Plan[1])
		att.ErrorMessage = ce.Message
	}
	p.observe(r.target, att, ce, rv)
	return att, resp, ce
}

// laterTargetOpen reports whether a target after the current one could
// take the job now (its breaker is not open). When none can, cutting a slow
// call at the latency threshold would only move the job off a target that
// answers onto ones that refuse it (then it waits in the queue for their
// probe), so the call runs plainly, bounded by the provider's timeout.
func (p *Pool) laterTargetOpen(job *schemas.Job) bool {
	b := p.cfg.Resilience.Breakers
	for _, t := range job.Plan[1:] {
		if b == nil || !b.Open(t.Provider, t.Model) {
			return true
		}
	}
	return false
}

func (p *Pool) hedgeCompleter(provider string) llm.Completer {
	if f := p.cfg.Resilience.Completers; f != nil {
		return f(provider)
	}
	return nil
}

type callOutcome struct {
	att  schemas.Attempt
	resp *llm.Response
	ce   *callError
	r    *run
	rv   *ratelimit.Reservation
}

// callHedged races the current target against the next one, started once
// the current has not answered within threshold. The first success wins
// and the other call is cancelled; both attempts are recorded.
func (p *Pool) callHedged(ctx context.Context, job *schemas.Job, r *run, threshold time.Duration, hc llm.Completer, rv *ratelimit.Reservation) (schemas.Attempt, *llm.Response, *callError) {
	primaryCtx, cancelPrimary := context.WithCancelCause(ctx)
	defer cancelPrimary(nil)
	hedgeCtx, cancelHedge := context.WithCancelCause(ctx)
	defer cancelHedge(nil)
	results := make(chan callOutcome, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pr := &run{target: r.target, pulledAt: r.pulledAt, callBy: r.callBy}
		att, resp, ce := p.call(primaryCtx, job, pr)
		results <- callOutcome{att, resp, ce, pr, rv}
	}()
	timer := time.NewTimer(threshold)
	defer timer.Stop()
	running, hedged := 1, false
	var first, primary, hedge *callOutcome
	for running > 0 {
		select {
		case <-timer.C:
			if hedged {
				continue
			}
			next := job.Plan[1]
			// A hedge counts against the next provider's cap like any
			// call to it: no free token, no hedge.
			slot := p.hedgeSlot(ctx, next.Provider)
			if slot == nil {
				continue
			}
			hrv, ok := p.hedgeAllowed(ctx, job, next)
			if !ok {
				slot.Release()
				continue
			}
			hedged = true
			running++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer slot.Release()
				hr := &run{target: next, pulledAt: r.pulledAt}
				att, resp, ce := p.callOther(hedgeCtx, job, hr, hc)
				results <- callOutcome{att, resp, ce, hr, hrv}
			}()
		case o := <-results:
			running--
			if o.r.target == r.target && primary == nil {
				primary = &o
			} else {
				hedge = &o
			}
			if o.ce == nil && first == nil {
				first = &o
				// The winner is in: cancel the other call.
				if o.r.target == r.target {
					cancelHedge(errHedgeLost)
				} else {
					cancelPrimary(errHedgeLost)
				}
			}
		}
	}
	wg.Wait()
	for _, o := range []*callOutcome{primary, hedge} {
		if o != nil && (o.ce == nil || !o.ce.expired) {
			p.observe(o.r.target, o.att, o.ce, o.rv)
		}
	}
	if primary.ce != nil && primary.ce.expired {
		// The primary call was never made (its rate-limit window ended
		// first) and no hedge started: the caller passes the gate again.
		return primary.att, primary.resp, primary.ce
	}
	if first == nil {
		// Both failed (or no hedge started): the primary's failure decides;
		// a failed hedge is recorded as a fallback attempt.
		if hedge != nil {
			hedge.att.Outcome = schemas.OutcomeFallback
			r.attempts = append(r.attempts, hedge.att)
		}
		return primary.att, primary.resp, primary.ce
	}
	loser := hedge
	if first == hedge {
		loser = primary
	}
	if loser != nil {
		loser.att.Outcome = schemas.OutcomeFallback
		if loser.ce != nil && loser.ce.lost {
			loser.att.ErrorType = schemas.ErrCanceled
			loser.att.ErrorMessage = "hedge: " + first.r.target.String() + " answered first"
		}
		r.attempts = append(r.attempts, loser.att)
	}
	r.target = first.r.target
	r.firstTokenAt, r.providerMS = first.r.firstTokenAt, first.r.providerMS
	return first.att, first.resp, nil
}

// hedgeSlot takes one of provider's concurrency tokens if one is free now
// (lanes.Slots.TryAcquire), or returns nil.
func (p *Pool) hedgeSlot(ctx context.Context, provider string) *lanes.Slot {
	p.mu.Lock()
	s := p.hedgeSlots[provider]
	p.mu.Unlock()
	if s == nil {
		prov, ok := p.providerConfig(provider)
		if !ok {
			return nil
		}
		var err error
		if s, err = lanes.OpenSlots(ctx, p.cfg.JS, prov); err != nil {
			p.log.Warn("no hedge: the next provider's concurrency tokens are not readable", "provider", provider, "err", err)
			return nil
		}
		p.mu.Lock()
		if p.hedgeSlots == nil {
			p.hedgeSlots = map[string]*lanes.Slots{}
		}
		if had := p.hedgeSlots[provider]; had != nil {
			s.Close() // another call opened them first
			s = had
		} else {
			p.hedgeSlots[provider] = s
		}
		p.mu.Unlock()
	}
	return s.TryAcquire(ctx)
}

// hedgeAllowed checks the next target's breaker, quota and the deadline
// before a hedge is started.
func (p *Pool) hedgeAllowed(ctx context.Context, job *schemas.Job, t schemas.Target) (*ratelimit.Reservation, bool) {
	if job.Deadline != nil && !time.Now().Before(*job.Deadline) {
		return nil, false
	}
	res := p.cfg.Resilience
	if res.Breakers != nil {
		if d, _ := res.Breakers.Allow(ctx, t.Provider, t.Model); !d.Allowed {
			return nil, false
		}
	}
	if res.Limiter != nil {
		prov, ok := p.providerConfig(t.Provider)
		if ok && (prov.RPM > 0 || prov.TPM > 0) {
			in, out := pricing.EstimateTokens(job.Request, p.liveConfig().Routing.DefaultOutputTokens)
			rv, err := res.Limiter.Reserve(ctx, prov, in+out)
			if err == nil && !rv.OK {
				return nil, false
			}
			if err == nil {
				return &rv, true
			}
		}
	}
	return nil, true
}

// callOther makes one non-streaming call to another provider's target (a
// hedge), under that provider's timeout.
func (p *Pool) callOther(jobCtx context.Context, job *schemas.Job, r *run, c llm.Completer) (schemas.Attempt, *llm.Response, *callError) {
	timeout := p.timeout
	if prov, ok := p.providerConfig(r.target.Provider); ok && prov.Timeout > 0 {
		timeout = prov.Timeout
	}
	callCtx, cancel := context.WithCancelCause(jobCtx)
	defer cancel(nil)
	timer := time.AfterFunc(timeout, func() { cancel(errCallTimeout) })
	defer timer.Stop()
	start := time.Now()
	resp, err := invoke(callCtx, c, job, &llm.Request{Model: r.target.Model, Body: job.Request, Native: job.Native})
	end := time.Now()
	if err == nil && resp == nil {
		err = &llm.ProviderError{Provider: r.target.Provider, Type: schemas.ErrBadResponse, Message: "adapter returned no response"}
	}
	att := schemas.Attempt{Provider: r.target.Provider, Model: r.target.Model, StartedAt: start.UTC(), DurationMS: end.Sub(start).Milliseconds()}
	if err != nil {
		ce := classify(err, jobCtx, callCtx, timeout)
		att.StatusCode, att.ErrorType, att.ErrorMessage = ce.Status, ce.Type, shortMessage(ce.Message)
		return att, nil, ce
	}
	att.StatusCode = resp.StatusCode
	if att.StatusCode == 0 {
		att.StatusCode = 200
	}
	att.InputTokens, att.OutputTokens = resp.Usage.InputTokens, resp.Usage.OutputTokens
	r.firstTokenAt, r.providerMS = end, end.Sub(start).Milliseconds()
	return att, resp, nil
}
