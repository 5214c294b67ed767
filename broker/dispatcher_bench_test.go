package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// BenchmarkDispatcherThroughput measures llm.submit routing alone: 20,000
// raw jobs are stored on llm.submit first, then a dispatcher is started and
// timed until every job is routed (stored on llm.jobs.a). No pool runs, so
// only the dispatcher works. Each iteration routes one batch with the
// watermill Router dispatcher and one with a plain pull loop doing the same
// decode, Admit, publish and ack with the same concurrency (the dispatcher
// as it was before the Router), in alternating order, so the two are
// measured side by side on a shared, noisy machine. Run with -benchtime=Nx.
func BenchmarkDispatcherThroughput(b *testing.B) {
	const jobs = 20_000
	env := testenv.Start(b, []testenv.Provider{{Name: "a"}})
	ctx := natstest.Context(b)
	raw := []byte(`{"route":"chat","request":{"messages":[{"role":"user","content":"hello from a raw producer"}]},"metadata":{"tenant":"acme"}}`)
	workers := broker.NewDispatcher(env.Client, env.JS, nil).Workers
	variants := map[string]func(ctx context.Context) error{
		"router": func(ctx context.Context) error {
			return broker.NewDispatcher(env.Client, env.JS, slog.New(slog.DiscardHandler)).Run(ctx)
		},
		"loop": func(ctx context.Context) error { return pullLoop(ctx, env, workers) },
	}
	wall := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	for i := range b.N {
		order := []string{"router", "loop"}
		if i%2 == 1 {
			order = []string{"loop", "router"}
		}
		for _, name := range order {
			storeRaw(b, ctx, env, raw, jobs)
			dctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			start, cpuStart := time.Now(), natstest.ProcessCPU(b)
			go func() { done <- variants[name](dctx) }()
			natstest.CheckFor(b, 2*time.Minute, 5*time.Millisecond, func() error {
				if n := env.StreamCount(b, topology.StreamJobs, topology.Jobs("a")); n != jobs {
					return fmt.Errorf("%s: %d of %d jobs routed", name, n, jobs)
				}
				return nil
			})
			wall[name] += time.Since(start)
			cpu[name] += natstest.ProcessCPU(b) - cpuStart
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(jobs * b.N)
	b.ReportMetric(n/wall["router"].Seconds(), "router-jobs/s")
	b.ReportMetric(n/wall["loop"].Seconds(), "loop-jobs/s")
	b.ReportMetric(wall["loop"].Seconds()/wall["router"].Seconds(), "router/loop")
	// CPU time of the whole process (dispatcher and the in-process NATS
	// server) per job: steadier than jobs/s on a machine shared with others.
	b.ReportMetric(float64(cpu["router"].Microseconds())/n, "router-cpu-µs/job")
	b.ReportMetric(float64(cpu["loop"].Microseconds())/n, "loop-cpu-µs/job")
}

// storeRaw empties JOBS (the routed jobs of the previous batch must not
// count) and stores n raw jobs on llm.submit.
func storeRaw(b *testing.B, ctx context.Context, env *testenv.Env, raw []byte, n int) {
	s, err := env.JS.Stream(ctx, topology.StreamJobs)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := env.JS.PublishAsync(topology.SubjectSubmit, raw); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
		if i%1000 == 999 || i == n-1 { // stay under the client's limit of pending publishes
			select {
			case <-env.JS.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("raw jobs not stored")
			}
		}
	}
}

// pullLoop is the baseline: one pull iterator, up to workers dispatches at
// once, each decoding, admitting and publishing its job and acking the raw
// one (valid jobs only: the benchmark sends no others).
func pullLoop(ctx context.Context, env *testenv.Env, workers int) error {
	cons, err := topology.EnsureDispatcherConsumer(ctx, env.JS)
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(workers*2), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return err
	}
	defer iter.Stop()
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	g := new(errgroup.Group)
	g.SetLimit(workers)
	for {
		msg, err := iter.Next()
		if err != nil {
			break
		}
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), broker.PublishTimeout)
			defer cancel()
			job, err := schemas.DecodeJob(msg.Data(), 0)
			if err != nil {
				return err
			}
			if err := env.Client.Admit(job); err != nil {
				return err
			}
			if err := topology.PublishJob(pctx, env.JS, job); err != nil {
				_ = msg.NakWithDelay(time.Second)
				return nil
			}
			_ = msg.Ack()
			return nil
		})
	}
	return g.Wait()
}
