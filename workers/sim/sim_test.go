package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/workers"
)

// provider is a mock provider behind a handler that records call times.
type provider struct {
	*mock.Server
	name  string
	url   string
	mu    sync.Mutex
	times []time.Time
}

func startProvider(t *testing.T, name string, f mock.Faults) *provider {
	t.Helper()
	p := &provider{Server: mock.New(mock.Options{Faults: f, Seed: 7}), name: name}
	p.url = testenv.ServeMock(t, p.Server, func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			p.mu.Lock()
			p.times = append(p.times, time.Now())
			p.mu.Unlock()
		}
	}) + "/v1"
	return p
}

func (p *provider) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.times)
}

// Every answer reports 1000 input and 1000 output tokens, so costs are exact.
func faults(f mock.Faults) mock.Faults {
	f.InputTokens, f.OutputTokens = 1000, 1000
	if f.Latency == 0 {
		f.Latency = 2 * time.Millisecond
	}
	return f
}

const (
	rateWindow   = 500 * time.Millisecond
	p3PerWindow  = 20 // p3's rpm over all its pools: 2400 = 20 per 500ms
	metered      = "metered"
	meteredCap   = 0.02 // USD per day
	phaseJobs    = 495
	meteredJobs  = 20
	chatMessages = `{"messages":[{"role":"user","content":"simulate"}]}`
)

// simYAML is the simulation's config with the given breaker cooldown.
func simYAML(ps []*provider, cooldown time.Duration) string {
	return fmt.Sprintf(`
providers:
  - {name: p1, kind: mock, base_url: %q, concurrency: 4, timeout: 5s}
  - {name: p2, kind: mock, base_url: %q, concurrency: 8, timeout: 5s}
  - {name: p3, kind: mock, base_url: %q, concurrency: 8, timeout: 5s, rpm: %d}
models:
  - {provider: p1, name: m1, input_per_mtok: 1, output_per_mtok: 2}
  - {provider: p2, name: m2, input_per_mtok: 0.5, output_per_mtok: 1}
  - {provider: p3, name: m3, input_per_mtok: 2, output_per_mtok: 4}
routes:
  - name: sim
    strategy: weighted
    targets:
      - {provider: p1, model: m1, weight: 3}
      - {provider: p2, model: m2, weight: 1}
      - {provider: p3, model: m3, weight: 1}
    retries: 1
    latency_threshold: 150ms
    mode: cancel
  - name: cheap
    targets: [{provider: p2, model: m2}]
default_route: sim
budgets:
  - {tenant: %s, daily_usd: %g, on_exceed: {route: cheap}}
breaker: {failures: 3, cooldown: %s, min_requests: 1000}
rate_limits: {window: %s}
routing: {latency_flush: 100ms}
`, ps[0].url, ps[1].url, ps[2].url, p3PerWindow*int(time.Minute/rateWindow), metered, meteredCap, cooldown, rateWindow)
}

func simConfig(t *testing.T, ps []*provider, cooldown time.Duration) *config.Config {
	t.Helper()
	return testenv.ParseConfig(t, simYAML(ps, cooldown))
}

type sim struct {
	t       *testing.T
	srv     *natstest.Server
	cfg     *config.Config
	client  *broker.Client
	tracker *budget.Tracker
	ps      map[string]*provider
	pools   []*workers.Pool
	sets    []*breaker.Set

	mu      sync.Mutex
	results map[string]*schemas.Result
	// seq numbers the jobs: ids are sim-0000, sim-0001, ... so the
	// weighted plans (a hash of the id) are the same on every run.
	seq int
}

func (s *sim) result(id string) *schemas.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.results[id]
}

// submit routes and publishes n jobs of tenant and waits for their results.
func (s *sim) run(n int, tenant string) []*schemas.Result {
	s.t.Helper()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		job := &schemas.Job{ID: fmt.Sprintf("sim-%04d", s.seq), Request: json.RawMessage(chatMessages), Metadata: map[string]string{"tenant": tenant}}
		s.seq++
		id, err := s.client.Submit(context.Background(), job)
		if err != nil {
			s.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	natstest.CheckFor(s.t, 120*time.Second, 20*time.Millisecond, func() error {
		missing := 0
		for _, id := range ids {
			if s.result(id) == nil {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d results missing", missing, n)
		}
		return nil
	})
	out := make([]*schemas.Result, n)
	for i, id := range ids {
		out[i] = s.result(id)
		if out[i].Status != schemas.StatusSucceeded {
			s.t.Errorf("job %s failed while a provider was healthy: %+v (%v)", id, out[i].Error, attempts(out[i]))
		}
	}
	return out
}

func attempts(r *schemas.Result) string {
	var parts []string
	for _, a := range r.Attempts {
		parts = append(parts, a.Provider+":"+a.Outcome+":"+a.ErrorType)
	}
	return strings.Join(parts, " ")
}

func shares(rs []*schemas.Result) map[string]float64 {
	out := map[string]float64{}
	for _, r := range rs {
		out[r.Provider] += 1 / float64(len(rs))
	}
	return out
}

func TestSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	ps := []*provider{
		startProvider(t, "p1", faults(mock.Faults{})),
		startProvider(t, "p2", faults(mock.Faults{})),
		startProvider(t, "p3", faults(mock.Faults{})),
	}
	cfg := simConfig(t, ps, time.Minute)
	env := testenv.StartConfig(t, cfg)
	srv, nc, js := env.NATS, env.NC, env.JS
	ctx := natstest.Context(t)
	s := &sim{t: t, srv: srv, cfg: cfg, results: map[string]*schemas.Result{}, ps: map[string]*provider{}}
	for _, p := range ps {
		s.ps[p.name] = p
	}
	sub, err := nc.Subscribe("llm.results.>", func(m *nats.Msg) {
		if r, err := schemas.DecodeResult(m.Data); err == nil {
			s.mu.Lock()
			s.results[r.ID] = r
			s.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// p1 breaker opening: the number of p1 calls when it happened.
	var p1OpenedAt atomic.Int64
	p1OpenedAt.Store(-1)
	openRes := func() workers.Resilience {
		_, js := env.Connect(t)
		res, err := workers.OpenResilience(ctx, js, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// This process's breakers, watched for p1 opening.
		res.Breakers, err = breaker.New(ctx, js, cfg.Breaker, breaker.Options{OnChange: func(provider, model, from, to string) {
			if provider == "p1" && to == breaker.Open {
				p1OpenedAt.CompareAndSwap(-1, int64(s.ps["p1"].calls()))
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		s.sets = append(s.sets, res.Breakers)
		return res
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	startPool := func(name string) {
		env.StartPool(t, name, testenv.Logger(log), testenv.Backoff(10*time.Millisecond, 50*time.Millisecond),
			testenv.NakDelay(100*time.Millisecond), testenv.WithResilience(openRes()))
		s.pools = append(s.pools, env.Pools[name])
	}
	startPool("p1")
	startPool("p2")
	startPool("p3")
	startPool("p3") // a second pool (own connection and state cache) shares p3's rpm

	routerRes := openRes()
	s.tracker, err = budget.Open(ctx, js, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.tracker.Run(ctx, js) }()
	resolver := router.New(cfg, router.Options{Health: routerRes.Breakers, Latencies: routerRes.Latency, Budgets: s.tracker})
	s.client = broker.NewClient(nc, js, resolver)
	holder := live.NewHolder(cfg)
	holder.OnChange(func(_, cur *config.Config) {
		resolver.SetConfig(cur)
		for _, p := range s.pools {
			p.SetConfig(cur)
		}
		for _, b := range s.sets {
			b.SetConfig(cur.Breaker)
		}
	})

	// Phase 1: all healthy. Served shares follow the weights 3:1:1. The
	// job ids are fixed, so the planned first targets are too (p1 299, p2
	// 92, p3 104 of 495: the hash's sampling error is not left to chance);
	// served shares drift only when jobs move between providers.
	rs := s.run(phaseJobs, "t")
	for p, want := range map[string]float64{"p1": 0.6, "p2": 0.2, "p3": 0.2} {
		if got := shares(rs)[p]; math.Abs(got-want) > 0.05 {
			t.Errorf("phase 1: %s served %.3f, want %.2f±0.05", p, got, want)
		}
	}

	// Budget: a metered tenant's jobs one by one; once its counted spend
	// reaches the daily cap, jobs are rerouted to "cheap" (p2 only).
	spent, rerouted := 0.0, 0
	for i := 0; i < meteredJobs; i++ {
		r := s.run(1, metered)[0]
		wantCheap := spent >= meteredCap-1e-12
		if gotCheap := r.Route == "cheap"; gotCheap != wantCheap {
			t.Errorf("metered job %d at $%.4f spent: route %s, want cheap=%v (cap $%.2f)", i, spent, r.Route, wantCheap, meteredCap)
		}
		if r.Route == "cheap" {
			rerouted++
		}
		spent += *r.CostUSD
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if d, _ := s.tracker.Spent(metered, time.Now()); math.Abs(d-spent) > 1e-9 {
				return fmt.Errorf("counted $%.4f, want $%.4f", d, spent)
			}
			return nil
		})
	}
	if rerouted == 0 || rerouted == meteredJobs {
		t.Errorf("rerouted %d of %d metered jobs; the cap should fall in between", rerouted, meteredJobs)
	}

	// Phase 2: p1 goes down. Its breaker opens within 10 calls and no
	// more calls reach it (cooldown 1m).
	p1Before := s.ps["p1"].calls()
	s.ps["p1"].SetFaults(faults(mock.Faults{ErrorRate: 1, ErrorStatus: 503}))
	s.run(phaseJobs, "t")
	if at := p1OpenedAt.Load(); at < 0 || int(at)-p1Before > 10 {
		t.Errorf("p1 breaker opened after %d calls to the dead provider (want ≤ 10)", int(at)-p1Before)
	}
	if n := s.ps["p1"].calls() - p1Before; n > 10 {
		t.Errorf("dead p1 got %d calls in phase 2, want ≤ 10", n)
	}

	// Phase 3: p2's latency spikes past the route's 150ms threshold: calls
	// are cancelled there and jobs move on (p1 still down).
	s.ps["p2"].SetFaults(faults(mock.Faults{Latency: 400 * time.Millisecond}))
	rs = s.run(phaseJobs, "t")
	slow := 0
	for _, r := range rs {
		if strings.Contains(attempts(r), "p2:fallback:timeout") {
			slow++
		}
	}
	if slow == 0 {
		t.Error("phase 3: no call was cut at the latency threshold")
	}

	// Phase 4: p1 recovers (a reload shortens the breaker cooldown so it is
	// probed), p2 is fast again, p3 goes down.
	s.ps["p1"].SetFaults(faults(mock.Faults{}))
	s.ps["p2"].SetFaults(faults(mock.Faults{}))
	s.ps["p3"].SetFaults(faults(mock.Faults{ErrorRate: 1}))
	if _, err := holder.Apply([]byte(strings.Replace(simYAML(ps, time.Minute), "cooldown: 1m0s", "cooldown: -1s", 1)), "bad edit"); err == nil {
		t.Error("an invalid reload was accepted")
	}
	if _, err := holder.Apply([]byte(simYAML(ps, 100*time.Millisecond)), "reload"); err != nil {
		t.Fatal(err)
	}
	rs = s.run(phaseJobs, "t")
	if sh := shares(rs); sh["p1"] < 0.3 {
		t.Errorf("phase 4: recovered p1 served %.2f of jobs; its breaker should have closed", sh["p1"])
	}

	// Two pools held p3's rpm together, within 5%, over the whole run.
	limit := int(math.Floor(p3PerWindow * 1.05))
	s.mu.Lock()
	perWin, p3Calls := testenv.CallsPerWindow(maps.Values(s.results), "p3", rateWindow)
	s.mu.Unlock()
	if seen := s.ps["p3"].calls(); p3Calls < seen {
		t.Errorf("results record %d calls to p3, the provider saw %d", p3Calls, seen)
	}
	for w, n := range perWin {
		if n > limit {
			t.Errorf("p3 window %d: %d calls, limit %d per window", w, n, p3PerWindow)
		}
	}
	t.Logf("calls: p1=%d p2=%d p3=%d; metered rerouted %d/%d", ps[0].calls(), ps[1].calls(), ps[2].calls(), rerouted, meteredJobs)
}
