package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/policy/latency"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/router"
)

// routingPolicies opens the shared state routing reads — breakers (open
// targets last), latency (least-latency, deadlines) and tenant spend
// (budgets) — on a's shared-state context, and counts Results' cost into
// spend in a's background (the budget-spend consumer is shared by every
// process that runs it).
func routingPolicies(a *app, js jetstream.JetStream, cfg *config.Config) ([]router.Option, error) {
	ctx, log := a.stateCtx, a.log
	breakers, err := breaker.New(ctx, js, cfg.Breaker, breaker.Options{})
	if err != nil {
		return nil, err
	}
	latency, err := latency.Open(ctx, js, cfg.Routing)
	if err != nil {
		return nil, err
	}
	prices, err := routePrices(cfg)
	if err != nil {
		return nil, err
	}
	spend, err := budget.Open(ctx, js, nil)
	if err != nil {
		return nil, err
	}
	spend.Log = log // it restarts itself until ctx ends, logging each restart
	a.Background("budget spend counter", func(ctx context.Context) error { return spend.Run(ctx, js) })
	return []router.Option{router.WithHealth(breakers), router.WithLatencies(latency), router.WithBudgets(spend), prices}, nil
}

// routePrices makes lowest-cost routing price with the table the workers
// bill with (pricing.Load: config prices, then analytics.prices_file).
func routePrices(cfg *config.Config) (router.Option, error) {
	prices, err := pricing.Load(cfg)
	if err != nil {
		return nil, err
	}
	return router.WithPrices(prices), nil
}

// logStopped logs a background loop's end as an error, unless it ended
// because its context did (shutdown, or a start-up that failed elsewhere).
func logStopped(log *slog.Logger, msg string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(msg, "err", err)
	}
}
