package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/supervise"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/workers"
)

// app is the one lifecycle of a long-running command (up, gateway,
// worker). Components run in one errgroup and stop together when ctx ends
// (SIGINT/SIGTERM), when one of them fails, or when the NATS connection is
// lost for good. Shared state (config watches, the budget counter, the KV
// caches behind breakers and latency) lives on stateCtx, which ends only
// after every component has returned, so a draining pool still reads its
// breakers and records latency.
type app struct {
	log       *slog.Logger
	nc        *natsconn.Conn
	comps     *errgroup.Group
	ctx       context.Context // the components' context
	state     errgroup.Group
	stateCtx  context.Context
	stopComps context.CancelFunc
	stopState context.CancelFunc

	// The process's shared-state policies, opened once on first use
	// (policies.go).
	mu     sync.Mutex
	res    *workers.Resilience
	spend  *budget.Tracker
	counts bool // spend counts Results (the budget-spend consumer runs)
}

// newApp starts the lifecycle of a command connected through nc. Defer
// close: a command that fails while starting stops what it started.
func newApp(ctx context.Context, nc *natsconn.Conn, log *slog.Logger) *app {
	a := &app{log: log, nc: nc}
	a.stateCtx, a.stopState = context.WithCancel(context.WithoutCancel(ctx))
	ctx, a.stopComps = context.WithCancel(ctx)
	a.comps, a.ctx = errgroup.WithContext(ctx)
	a.comps.Go(func() error { return nc.Watch(a.ctx) }) // a connection closed for good stops the process: exit 1
	return a
}

// Go runs a component until the process stops.
func (a *app) Go(f func(ctx context.Context) error) {
	a.comps.Go(func() error { return f(a.ctx) })
}

// Background runs a shared-state loop until every component has stopped.
// Such loops restart themselves (internal/supervise); an end before
// shutdown is logged, not fatal.
func (a *app) Background(name string, f func(ctx context.Context) error) {
	a.state.Go(func() error {
		logStopped(a.log, name+" stopped", f(a.stateCtx))
		return nil
	})
}

// WatchConfig keeps holder current: from the file at path on SIGHUP (when
// path is set) and from the cluster's config in KV sb_config (restarted
// after a NATS outage like every watch). Each reload also reaches the
// process's shared breakers and rate limiter (policies.go), whichever
// component reads them.
func (a *app) WatchConfig(js jetstream.JetStream, holder *live.Holder, path string) {
	holder.OnChange(func(_, cur *config.Config) {
		a.mu.Lock()
		res := a.res
		a.mu.Unlock()
		if res != nil {
			res.Breakers.SetConfig(cur.Breaker)
			res.Limiter.SetConfig(cur.RateLimits)
		}
	})
	if path != "" {
		a.Background("config file watch", func(ctx context.Context) error {
			holder.WatchSignals(ctx, path, a.log)
			return nil
		})
	}
	a.Background("shared config watch", func(ctx context.Context) error {
		supervise.Run(ctx, a.log, "shared config watch", func(ctx context.Context) error {
			return holder.WatchKV(ctx, js, a.log, nil)
		})
		return nil
	})
}

// close stops the components and the shared state without waiting (for a
// start-up that failed; after Wait it does nothing more).
func (a *app) close() {
	a.stopComps()
	a.stopState()
}

// Wait waits for the components, then stops the shared state and waits for
// it. It returns the lost connection when there was one, else the first
// component's error, and nil for a clean stop.
func (a *app) Wait() error {
	err := a.nc.Cause(a.comps.Wait())
	a.stopState()
	_ = a.state.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
