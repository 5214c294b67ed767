package broker_test

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/policy/latency"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// soakJobs is how many jobs BenchmarkSoak runs, at soakRate jobs/s; it
// samples every soakEvery.
const (
	soakJobs  = 60_000
	soakEvery = 10_000
	soakRate  = 100
)

// BenchmarkSoak runs 60k priced jobs through the broker in one process, as
// `switchboard up` composes it: the embedded JetStream server, a worker pool
// with shared breakers, rate limits and latency, the budget counter (a "*"
// budget, so every job's cost is counted) and routing over them, against
// the mock provider over loopback. Every 10k jobs it logs the process RSS,
// the Go heap, the messages held by each stream and KV bucket and the
// budget counter's backlog, and it reports RSS at 20k and 60k jobs and the
// growth between them (the goal: within 20%).
//
// Per-job state is bounded by age (Results, telemetry, spend markers) or by
// the dedup window (JetStream's message ids, 2 minutes at least), so it
// levels off only once a run outlasts those windows: the soak keeps Results
// and telemetry for 2 minutes (the shortest the dedup window allows; spend
// markers 4) and paces jobs at 100/s, so 60k jobs take 10 minutes, Results,
// telemetry and message ids level off from about 12k jobs and markers from
// 24k. (Expiring messages also makes the server load old blocks: a few
// block caches of up to 8 MB each, once.) One soak per run:
// -bench Soak -benchtime 1x.
func BenchmarkSoak(b *testing.B) {
	for range b.N {
		soak(b)
	}
}

func soak(b *testing.B) {
	env := testenv.Start(b, []testenv.Provider{{Name: "a", Concurrency: 256, Timeout: 10 * time.Second, InputPerMTok: 1, OutputPerMTok: 2}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := *env.Config
	cfg.Limits.ResultsMaxAge, cfg.Limits.TelemetryMaxAge, cfg.Limits.DedupWindow = 2*time.Minute, 2*time.Minute, 2*time.Minute
	if err := topology.Ensure(ctx, env.JS, cfg.Limits); err != nil {
		b.Fatal(err)
	}
	cfg.Budgets = []config.Budget{{Tenant: "*", DailyUSD: 1e6, OnExceed: config.OnExceed{Reject: true}}}
	log := slog.New(slog.DiscardHandler)
	res, err := workers.OpenResilience(ctx, env.JS, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := cfg.Provider("a")
	_, stopPool := testenv.RunPool(b, workers.PoolConfig{Provider: p, Config: &cfg, Completer: testenv.Adapter(b, p),
		Conn: env.NC, JS: env.JS, Logger: log, Resilience: res})
	defer stopPool()
	spend, err := budget.Open(ctx, env.JS, budget.Options{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = spend.Run(ctx, env.JS) }()
	client := broker.NewClient(env.NC, env.JS, router.New(&cfg, router.Options{Budgets: spend, Health: res.Breakers, Latencies: res.Latency}))

	// Results come back on core NATS (a JetStream publish is also one); a
	// window of jobs in flight keeps JOBS from filling.
	const window = 1000
	slots := make(chan struct{}, window)
	var done atomic.Int64
	sub, err := env.NC.Subscribe("llm.results.>", func(*nats.Msg) {
		done.Add(1)
		<-slots
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}

	rss := map[int]float64{}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var submitErr atomic.Value
	var next atomic.Int64
	pace := time.NewTicker(time.Second / soakRate)
	defer pace.Stop()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= soakJobs {
				select {
				case <-pace.C:
				case <-ctx.Done():
					return
				}
				slots <- struct{}{}
				job := &schemas.Job{Route: "chat", Request: testenv.Chat("soak"), Metadata: map[string]string{"tenant": "soak"}}
				if _, err := client.Submit(ctx, job); err != nil {
					submitErr.CompareAndSwap(nil, err)
					<-slots
					return
				}
			}
		}()
	}
	b.Logf("%7s %8s %8s %9s %8s %9s %6s %9s %10s %11s %10s", "jobs", "rss_MB", "heap_MB", "results", "jobs_q", "telemetry", "dlq", "sb_spend", "sb_latency", "sb_breakers", "spend_lag")
	for mark := soakEvery; mark <= soakJobs; mark += soakEvery {
		for done.Load() < int64(mark) {
			if err, _ := submitErr.Load().(error); err != nil {
				b.Fatal(err)
			}
			if time.Since(start) > 20*time.Minute {
				b.Fatalf("only %d of %d jobs done after 20m", done.Load(), soakJobs)
			}
			time.Sleep(20 * time.Millisecond) // polling the counter
		}
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss[mark] = rssMB(b)
		count := func(stream string) uint64 {
			s, err := env.JS.Stream(ctx, stream)
			if err != nil {
				b.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			return info.State.Msgs
		}
		var lag uint64
		if c, err := env.JS.Consumer(ctx, topology.StreamResults, budget.Consumer); err == nil {
			if info, err := c.Info(ctx); err == nil {
				lag = info.NumPending + uint64(info.NumAckPending)
			}
		}
		b.Logf("%7d %8.1f %8.1f %9d %8d %9d %6d %9d %10d %11d %10d", mark, rss[mark], float64(ms.HeapInuse)/(1<<20),
			count(topology.StreamResults), count(topology.StreamJobs), count(topology.StreamTelemetry), count(topology.StreamDLQ),
			count("KV_"+budget.Bucket), count("KV_"+latency.Bucket), count("KV_"+breaker.Bucket), lag)
		b.StartTimer()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(soakJobs)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(rss[20_000], "rss-MB@20k")
	b.ReportMetric(rss[60_000], "rss-MB@60k")
	b.ReportMetric(100*(rss[60_000]-rss[20_000])/rss[20_000], "rss-growth-%-20k-60k")
}

// rssMB reads this process's resident set size from /proc/self/status.
func rssMB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
