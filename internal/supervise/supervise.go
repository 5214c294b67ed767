// Package supervise keeps a long-running loop (a consumer of a stream, a KV
// watch) alive through transient NATS errors and node outages: it runs the
// loop until its context ends, and restarts it with capped, jittered
// exponential backoff each time it returns early, logging every restart.
package supervise

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard-llm/switchboard/internal/backoff"
)

// Backoff bounds the wait between restarts.
type Backoff struct {
	// Base is the first wait (default 100ms); each restart doubles it.
	Base time.Duration
	// Max caps the wait (default 10s).
	Max time.Duration
	// Healthy is how long a run must last for the next restart to start
	// again from Base (default 1m).
	Healthy time.Duration
}

// DefaultBackoff is what Run uses.
var DefaultBackoff = Backoff{Base: 100 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Minute}

// Run calls f until ctx ends and returns then. Whenever f returns while ctx
// is still live (with an error or not), the restart is logged as a warning
// on log (slog.Default() if nil) under name, and f is called again after a
// backoff. f must return promptly once its context ends.
func Run(ctx context.Context, log *slog.Logger, name string, f func(ctx context.Context) error) {
	RunWith(ctx, log, name, DefaultBackoff, f)
}

// RunWith is Run with its own backoff.
func RunWith(ctx context.Context, log *slog.Logger, name string, b Backoff, f func(ctx context.Context) error) {
	if log == nil {
		log = slog.Default()
	}
	if b.Base <= 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max < b.Base {
		b.Max = max(DefaultBackoff.Max, b.Base)
	}
	if b.Healthy <= 0 {
		b.Healthy = DefaultBackoff.Healthy
	}
	try := 0 // restarts since the last healthy run
	for restarts := 1; ; restarts++ {
		started := time.Now()
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= b.Healthy {
			try = 0
		}
		// Equal jitter in [wait/2, wait] for wait = Base·2^try capped at
		// Max: processes restarting together after one outage do not hit
		// the server in lockstep.
		d := backoff.Equal(b.Base, b.Max, try)
		log.Warn(name+" stopped; restarting", "err", err, "restart", restarts, "in", d.Round(time.Millisecond))
		if !Sleep(ctx, d) {
			return
		}
		try++
	}
}

// Sleep waits d or until ctx ends, and reports whether the full d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
