package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
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
	var total, cpu time.Duration
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
			if i%1000 == 999 { // stay under the client's limit of pending publishes
				select {
				case <-env.JS.PublishAsyncComplete():
				case <-ctx.Done():
					b.Fatal("raw jobs not stored")
				}
			}
		}
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start, cpuStart := time.Now(), cpuTime(b)
		go func() { done <- broker.NewDispatcher(env.Client, env.JS, slog.New(slog.DiscardHandler)).Run(dctx) }()
		natstest.CheckFor(b, 2*time.Minute, 5*time.Millisecond, func() error {
			if n := env.StreamCount(b, topology.StreamJobs, topology.Jobs("a")); n != jobs {
				return fmt.Errorf("%d of %d jobs routed", n, jobs)
			}
			return nil
		})
		total += time.Since(start)
		cpu += cpuTime(b) - cpuStart
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(jobs*b.N)/total.Seconds(), "jobs/s")
	// CPU time of the whole process (dispatcher and the in-process NATS
	// server) per job: steadier than jobs/s on a machine shared with others.
	b.ReportMetric(float64(cpu.Microseconds())/float64(jobs*b.N), "cpu-µs/job")
}

// cpuTime is the user+system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
