package main

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/dashboard"
	"github.com/switchboard-llm/switchboard/router"
)

// newDashboard builds the gateway's dashboard: history from ClickHouse at
// dsn (may be empty, or set later with SetDSN), live state, breakers and
// spend from the process's shared state (a's policies).
func newDashboard(a *app, js jetstream.JetStream, resolver *router.Resolver, dsn string) (*dashboard.Dashboard, error) {
	res, err := a.policies(js, resolver.Config())
	if err != nil {
		return nil, err
	}
	breakers := res.Breakers
	spend, err := a.budgets(js, false)
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Options{
		Config:   resolver.Config,
		JS:       js,
		DSN:      dsn,
		Breakers: func(provider, model string) string { return breakers.Get(provider, model).State },
		Spend:    spend.Spent,
		Logger:   a.log,
	})
}
