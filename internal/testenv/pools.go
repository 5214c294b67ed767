package testenv

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/providers"
	"github.com/switchboard-llm/switchboard/workers"
)

// PoolOption changes the config of a pool before it is built. Any
// func(*workers.PoolConfig) is one.
type PoolOption = func(*workers.PoolConfig)

// OnConn runs the pool on the given connection instead of one of its own.
func OnConn(nc *nats.Conn, js jetstream.JetStream) PoolOption {
	return func(pc *workers.PoolConfig) { pc.Conn, pc.JS = nc, js }
}

// Backoff sets the pool's retry backoff base and cap.
func Backoff(base, max time.Duration) PoolOption {
	return func(pc *workers.PoolConfig) { pc.BackoffBase, pc.BackoffMax = base, max }
}

// Drain sets how long in-flight jobs may finish when the pool stops.
func Drain(d time.Duration) PoolOption {
	return func(pc *workers.PoolConfig) { pc.DrainTimeout = d }
}

// NakDelay sets the redelivery delay of a job whose publishes failed.
func NakDelay(d time.Duration) PoolOption {
	return func(pc *workers.PoolConfig) { pc.NakDelay = d }
}

// Logger sets the pool's logger.
func Logger(l *slog.Logger) PoolOption {
	return func(pc *workers.PoolConfig) { pc.Logger = l }
}

// WithResilience gives the pool shared breakers, rate limits and latency.
func WithResilience(res workers.Resilience) PoolOption {
	return func(pc *workers.PoolConfig) { pc.Resilience = res }
}

// Adapter builds the standard adapter of a configured provider
// (providers.New with the shared HTTP client).
func Adapter(t testing.TB, p config.Provider) llm.Completer {
	t.Helper()
	c, err := providers.New(p, providers.NewHTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartPools starts an in-process worker pool for every provider, each
// with the options.
func (e *Env) StartPools(t testing.TB, opts ...PoolOption) {
	t.Helper()
	for _, p := range e.Config.Providers {
		e.StartPool(t, p.Name, opts...)
	}
}

// StartPool starts the worker pool of one provider and returns a function
// that stops it (SIGTERM semantics: drain, hand back); the test's cleanup
// stops it too. By default the pool has the standard adapter (an option may
// wrap pc.Completer), a connection of its own, backoff 5ms to 50ms, a 5s
// drain and warnings logged to the test; opts change that. Pools[name] is
// the pool.
func (e *Env) StartPool(t testing.TB, name string, opts ...PoolOption) (stop func()) {
	t.Helper()
	p, ok := e.Config.Provider(name)
	if !ok {
		t.Fatalf("no provider %q", name)
	}
	pc := workers.PoolConfig{
		Provider: p, Config: e.Config, Completer: Adapter(t, p),
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&pc)
	}
	if pc.Conn == nil {
		pc.Conn, pc.JS = e.connect(t)
	}
	pool, stop := RunPool(t, pc)
	if e.Pools == nil {
		e.Pools = map[string]*workers.Pool{}
	}
	e.Pools[name] = pool
	return stop
}

// RunPool builds a pool from pc and runs it until the returned stop is
// called or the test ends; stop waits for Run to return, and a Run error
// other than the cancellation fails the test.
func RunPool(t testing.TB, pc workers.PoolConfig) (*workers.Pool, func()) {
	t.Helper()
	pool, err := workers.NewPool(pc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("pool %s: Run: %v", pc.Provider.Name, err)
			}
		})
	}
	t.Cleanup(stop)
	return pool, stop
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
