package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
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
// the same size straight to a JetStream stream the same way, then runs b.N
// jobs through the bare JetStream pipeline (bareJetStreamPipeline), and
// reports the rates and their ratios.
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
	bare := bareJetStreamPipeline(b, e, payload, run)
	b.StopTimer()
	jobsPerSec := float64(b.N) / jobsElapsed.Seconds()
	rawPerSec := float64(b.N) / rawElapsed.Seconds()
	barePerSec := float64(b.N) / bare.elapsed.Seconds()
	b.ReportMetric(jobsPerSec, "jobs/s")
	b.ReportMetric(rawPerSec, "raw-publish/s")
	b.ReportMetric(jobsPerSec/rawPerSec, "jobs/raw")
	b.ReportMetric(barePerSec, "bare-jobs/s")
	b.ReportMetric(jobsPerSec/barePerSec, "jobs/bare")
	b.ReportMetric(float64(bare.cpu.Microseconds())/float64(b.N), "bare-cpu-us/job")
	b.ReportMetric(float64(bare.allocs)/float64(b.N), "bare-allocs/job")
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

// bareRun is what the bare pipeline measured.
type bareRun struct {
	elapsed time.Duration
	cpu     time.Duration
	allocs  uint64
}

// bareJetStreamPipeline is the floor a pool is measured against: the same
// job bytes, the same submitters and the same server, and per job the
// messages a job needs for durability and nothing of Switchboard around
// them. The submitters publish each job (with a dedup id) to a work-queue
// stream; 64 goroutines on one pull consumer (MaxAckPending 64, the pool's
// concurrency) call the same mock through the same adapter, publish the
// answer to a results stream (dedup id), waiting for its confirmation, and
// then ack the job. No routing, lanes, tokens, attempt loop, Result
// encoding or telemetry.
func bareJetStreamPipeline(b *testing.B, e *env, payload []byte, run func(int, func() error) time.Duration) bareRun {
	b.Helper()
	ctx := context.Background()
	jobs, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BARE_JOBS", Subjects: []string{"bare.jobs"},
		Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		b.Fatal(err)
	}
	results, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BARE_RESULTS", Subjects: []string{"bare.results.>"},
		Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	const workers = 64
	cons, err := jobs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: workers, AckWait: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(workers))
	if err != nil {
		b.Fatal(err)
	}
	adapter := e.adapter("a")
	var wg sync.WaitGroup
	var failed atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := it.Next()
				if err != nil {
					return // the iterator stopped
				}
				md, err := msg.Metadata()
				if err == nil {
					var resp *llm.Response
					if resp, err = adapter.Complete(ctx, &llm.Request{Model: "m-a", Body: json.RawMessage(chatBody)}); err == nil {
						id := strconv.FormatUint(md.Sequence.Stream, 10)
						_, err = e.js.Publish(ctx, "bare.results."+id, resp.Body, jetstream.WithMsgID(id))
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					_ = msg.Nak()
					continue
				}
				_ = msg.Ack()
			}
		}()
	}
	defer func() { it.Stop(); wg.Wait() }()
	var seq atomic.Int64
	cpu0, mallocs0 := natstest.ProcessCPU(b), mallocs()
	t0 := time.Now()
	run(b.N, func() error {
		_, err := e.js.Publish(ctx, "bare.jobs", payload, jetstream.WithMsgID(strconv.FormatInt(seq.Add(1), 10)))
		return err
	})
	natstest.CheckFor(b, 2*time.Minute, 5*time.Millisecond, func() error {
		if err, _ := failed.Load().(error); err != nil {
			b.Fatalf("bare pipeline: %v", err)
		}
		info, err := results.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(b.N) {
			return fmt.Errorf("%d of %d answers stored", info.State.Msgs, b.N)
		}
		return nil
	})
	elapsed := time.Since(t0)
	natstest.CheckFor(b, 10*time.Second, 5*time.Millisecond, func() error {
		info, err := jobs.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs > 0 {
			return fmt.Errorf("%d bare jobs not acked yet", info.State.Msgs)
		}
		return nil
	})
	return bareRun{elapsed: elapsed, cpu: natstest.ProcessCPU(b) - cpu0, allocs: mallocs() - mallocs0}
}
