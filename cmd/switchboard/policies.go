package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/workers"
)

// policies returns the process's shared-state policies: one breaker set,
// rate limiter, latency store and prefill record per process (each with one
// KV watch and one flush loop, on the shared-state context), used by
// routing, the dashboard and every pool alike. They open on first use with
// cfg's settings; reloads of the breaker and rate-limit settings reach them
// through app.WatchConfig (the latency average's alpha and flush interval
// stay those of the start). The app's Wait returns after their last flush.
func (a *app) policies(js jetstream.JetStream, cfg *config.Config) (workers.Resilience, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.res == nil {
		res, err := workers.OpenResilience(a.stateCtx, js, cfg)
		if err != nil {
			return workers.Resilience{}, err
		}
		a.res = &res
		// Their flush loops push what this process counted one last time
		// when the shared state stops; Wait waits for that.
		for name, done := range map[string]<-chan struct{}{"breaker flush": res.Breakers.Done(), "latency flush": res.Latency.Done()} {
			a.Background(name, func(context.Context) error { <-done; return nil })
		}
	}
	return *a.res, nil
}

// budgets returns the process's tenant spend tracker, opened on first use.
// With count it also counts Results' cost into spend in the background
// (routing needs that; the dashboard only reads). The budget-spend consumer
// is shared by every process that runs it.
func (a *app) budgets(js jetstream.JetStream, count bool) (*budget.Tracker, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.spend == nil {
		spend, err := budget.Open(a.stateCtx, js, budget.Options{Log: a.log})
		if err != nil {
			return nil, err
		}
		a.spend = spend
	}
	if count && !a.counts {
		a.counts = true
		a.Background("budget spend counter", func(ctx context.Context) error { return a.spend.Run(ctx, js) })
	}
	return a.spend, nil
}

// routingPolicies is what routing reads: breakers (open targets last),
// latency (least-latency, deadlines), tenant spend (budgets, counted here)
// and the billing price table (lowest-cost).
func routingPolicies(a *app, js jetstream.JetStream, cfg *config.Config) (router.Options, error) {
	res, err := a.policies(js, cfg)
	if err != nil {
		return router.Options{}, err
	}
	prices, err := pricing.Load(cfg) // the table the workers bill with
	if err != nil {
		return router.Options{}, err
	}
	spend, err := a.budgets(js, true)
	if err != nil {
		return router.Options{}, err
	}
	return router.Options{Health: res.Breakers, Latencies: res.Latency, Budgets: spend, Prices: prices}, nil
}

// logStopped logs a background loop's end as an error, unless it ended
// because its context did (shutdown, or a start-up that failed elsewhere).
func logStopped(log *slog.Logger, msg string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(msg, "err", err)
	}
}
