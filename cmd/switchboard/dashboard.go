package main

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/dashboard"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
)

// newDashboard builds the gateway's dashboard: history from ClickHouse at
// dsn (may be empty, or set later with SetDSN), live state, breakers and
// spend from NATS, until ctx ends.
func newDashboard(ctx context.Context, js jetstream.JetStream, resolver *router.Resolver, dsn string, log *slog.Logger) (*dashboard.Dashboard, error) {
	breakers, err := breaker.New(ctx, js, resolver.Config().Breaker, breaker.Options{})
	if err != nil {
		return nil, err
	}
	spend, err := budget.Open(ctx, js, nil)
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Options{
		Config:   resolver.Config,
		JS:       js,
		DSN:      dsn,
		Breakers: func(provider, model string) string { return breakers.Get(provider, model).State },
		Spend:    spend.Spent,
		Logger:   log,
	})
}
