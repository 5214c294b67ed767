package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// benchEnv is newEnv for benchmarks: one instant mock provider "a".
func benchEnv(b *testing.B, concurrency int) *env {
	return newEnv(b, 0, provider{name: "a", concurrency: concurrency, timeout: 5 * time.Second})
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkAddedLatency compares a sync broker.Client.Complete (JetStream
// publish, pool pull, provider call, result publish) with a direct adapter
// call to the same zero-latency mock, paced at ~200 req/s, and reports the
// latency the broker path adds at p50 and p99.
func BenchmarkAddedLatency(b *testing.B) {
	e := benchEnv(b, 64)
	e.startPool("a")
	adapter := e.adapter("a")
	req := &llm.Request{Model: "m-a", Body: json.RawMessage(chatBody)}
	ctx := context.Background()
	// Warm up connections on both paths.
	for range 20 {
		if _, err := adapter.Complete(ctx, req); err != nil {
			b.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := e.client.Complete(cctx, newJob()); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	const interval = 5 * time.Millisecond // 200 req/s
	direct := make([]time.Duration, 0, b.N)
	brokered := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing, not synchronisation
		}
		t0 := time.Now()
		if _, err := adapter.Complete(ctx, req); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 = time.Now()
		res, err := e.client.Complete(cctx, newJob())
		brokered = append(brokered, time.Since(t0))
		cancel()
		if err != nil || res.Status != schemas.StatusSucceeded {
			b.Fatalf("Complete: %v %+v", err, res)
		}
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(percentile(direct, 0.5)), "direct-p50-µs")
	b.ReportMetric(us(percentile(brokered, 0.5)), "broker-p50-µs")
	b.ReportMetric(us(percentile(brokered, 0.5)-percentile(direct, 0.5)), "added-p50-µs")
	b.ReportMetric(us(percentile(brokered, 0.99)-percentile(direct, 0.99)), "added-p99-µs")
	b.ReportMetric(0, "ns/op")
	b.Logf("n=%d direct p50/p90/p99 %s/%s/%s; broker p50/p90/p99 %s/%s/%s", len(direct),
		percentile(direct, 0.5), percentile(direct, 0.9), percentile(direct, 0.99),
		percentile(brokered, 0.5), percentile(brokered, 0.9), percentile(brokered, 0.99))
}

// BenchmarkAsyncThroughput submits b.N jobs (32 concurrent submitters) to an
// instant mock and waits for every Result, then publishes b.N messages of
// the same size straight to a JetStream stream the same way, and reports
// both rates and their ratio.
func BenchmarkAsyncThroughput(b *testing.B) {
	e := benchEnv(b, 64)
	e.startPool("a")
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	sample := newJob()
	if err := e.client.Prepare(sample); err != nil {
		b.Fatal(err)
	}
	payload, _ := json.Marshal(sample)
	const submitters = 32
	run := func(n int, f func() error) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		t0 := time.Now()
		for range submitters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if err := f(); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	// The server's message counts around the jobs: what a job costs in
	// NATS messages (JetStream API calls, deliveries, acks, confirmations).
	srv := e.te.NATS.Server
	v0, err := srv.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, mallocs0 := natstest.ProcessCPU(b), mallocs()
	t0 := time.Now()
	run(b.N, func() error {
		_, err := e.client.Submit(ctx, newJob())
		return err
	})
	// Poll the stream's message count, not per-subject totals: listing
	// b.N subjects every poll would cost more than the work measured.
	results, err := e.js.Stream(ctx, topology.StreamResults)
	if err != nil {
		b.Fatal(err)
	}
	for {
		info, err := results.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs >= uint64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling for completion
	}
	jobsElapsed := time.Since(t0)
	// Let the last acks and telemetry deliveries land before counting.
	natstest.CheckFor(b, 10*time.Second, 50*time.Millisecond, func() error {
		tel, err := e.js.Stream(ctx, topology.StreamJobs)
		if err != nil {
			return err
		}
		if n := tel.CachedInfo().State.Msgs; n > 0 {
			return fmt.Errorf("%d jobs not acked yet", n)
		}
		return nil
	})
	cpu, allocs := natstest.ProcessCPU(b)-cpu0, mallocs()-mallocs0
	v1, err := srv.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	rawElapsed := run(b.N, func() error {
		_, err := e.js.Publish(ctx, fmt.Sprintf("bench.%d", seq.Add(1)), payload)
		return err
	})
	b.StopTimer()
	jobsPerSec := float64(b.N) / jobsElapsed.Seconds()
	rawPerSec := float64(b.N) / rawElapsed.Seconds()
	b.ReportMetric(jobsPerSec, "jobs/s")
	b.ReportMetric(rawPerSec, "raw-publish/s")
	b.ReportMetric(jobsPerSec/rawPerSec, "jobs/raw")
	b.ReportMetric(float64(v1.InMsgs-v0.InMsgs)/float64(b.N), "server-in-msgs/job")
	b.ReportMetric(float64(v1.OutMsgs-v0.OutMsgs)/float64(b.N), "server-out-msgs/job")
	// Everything in this process: submitters, pool, mock provider, server.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "process-cpu-us/job")
	b.ReportMetric(float64(allocs)/float64(b.N), "process-allocs/job")
	b.ReportMetric(0, "ns/op")
}

// mallocs counts the heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}
