package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/topology"
)

// BenchmarkDispatcherThroughput measures llm.submit routing alone: 20,000
// raw jobs are stored on llm.submit first, then a dispatcher is started and
// timed until every job is routed (stored on llm.jobs.a and acked on the
// dispatcher's consumer). No pool runs, so only the dispatcher works.
// Run with -benchtime=1x; each iteration is one batch of 20,000 jobs.
func BenchmarkDispatcherThroughput(b *testing.B) {
	const jobs = 20_000
	env := testenv.Start(b, []testenv.Provider{{Name: "a"}})
	ctx := natstest.Context(b)
	raw := []byte(`{"route":"chat","request":{"messages":[{"role":"user","content":"hello from a raw producer"}]},"metadata":{"tenant":"acme"}}`)
	var total time.Duration
	for range b.N {
		// Purge first: the routed jobs of the previous batch must not count.
		s, err := env.JS.Stream(ctx, topology.StreamJobs)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Purge(ctx); err != nil {
			b.Fatal(err)
		}
		for i := range jobs {
			if _, err := env.JS.PublishAsync(topology.SubjectSubmit, raw); err != nil {
				b.Fatalf("publish %d: %v", i, err)
			}
		}
		select {
		case <-env.JS.PublishAsyncComplete():
		case <-ctx.Done():
			b.Fatal("raw jobs not stored")
		}
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- broker.NewDispatcher(env.Client, env.JS, slog.New(slog.DiscardHandler)).Run(dctx) }()
		natstest.CheckFor(b, 2*time.Minute, 5*time.Millisecond, func() error {
			if n := env.StreamCount(b, topology.StreamJobs, topology.Jobs("a")); n != jobs {
				return fmt.Errorf("%d of %d jobs routed", n, jobs)
			}
			return nil
		})
		total += time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(jobs*b.N)/total.Seconds(), "jobs/s")
}
