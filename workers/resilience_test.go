package workers_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/keys"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/llm/openai"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// openRes opens the shared resilience state on a connection of its own, as
// a separate process would.
func (e *env) openRes() workers.Resilience {
	e.t.Helper()
	return e.te.OpenResilience(e.t)
}

func withRes(res workers.Resilience) func(*workers.PoolConfig) {
	return func(pc *workers.PoolConfig) { pc.Resilience = res }
}

// route sets the route "chat"'s fields and re-validates the config.
func (e *env) tune(f func(c *config.Config)) {
	e.t.Helper()
	f(e.cfg)
	e.cfg.ApplyDefaults()
	if err := e.cfg.Validate(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) resolveWith(opts router.Options) {
	e.client = broker.NewClient(e.nc, e.js, router.New(e.cfg, opts))
}

func TestBreakerOpensThenProbeCloses(t *testing.T) {
	e := newEnv(t, 0,
		provider{name: "a", faults: mock.Faults{ErrorRate: 1}, concurrency: 2},
		provider{name: "b", concurrency: 4})
	e.tune(func(c *config.Config) {
		c.Breaker = config.Breaker{Failures: 3, Cooldown: 300 * time.Millisecond, Probes: 1}
	})
	resA, resB := e.openRes(), e.openRes()
	e.resolveWith(router.Options{Health: resA.Breakers})
	e.startPool("a", withRes(resA))
	e.startPool("b", withRes(resB))
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, e.submit(newJob()))
	}
	for _, id := range ids {
		if res := e.result(id, 20*time.Second); res.Status != schemas.StatusSucceeded || res.Provider != "b" {
			t.Fatalf("job %s: %s via %s (%s)", id, res.Status, res.Provider, outcomes(res.Attempts))
		}
	}
	// 3 failures open the breaker; at most the calls already in flight
	// (concurrency 2) and a probe per cooldown follow.
	if n := e.mocks["a"].Stats().Requests; n > 10 {
		t.Errorf("dead provider called %d times for 40 jobs, want at most 10", n)
	}
	// The provider recovers: a probe after the cooldown closes the breaker.
	e.mocks["a"].SetFaults(mock.Faults{})
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		res := e.result(e.submit(newJob()), 10*time.Second)
		if st := resB.Breakers.Get("a", "m-a").State; st != breaker.Closed || res.Provider != "a" {
			return fmt.Errorf("breaker %s, last job via %s", st, res.Provider)
		}
		return nil
	})
}

func TestBreakerSkipsWithoutCall(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a"}, provider{name: "b"})
	e.tune(func(c *config.Config) { c.Breaker = config.Breaker{Failures: 1, Cooldown: time.Hour} })
	res := e.openRes()
	// Open a's breaker from "another process".
	other := e.openRes()
	if err := other.Breakers.Record(context.Background(), "a", "m-a", schemas.ErrServerError); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !res.Breakers.Open("a", "m-a") {
			return fmt.Errorf("not open yet")
		}
		return nil
	})
	e.startPool("a", withRes(res))
	e.startPool("b", withRes(res))
	// The plan was made before the breaker opened (a first): the pool
	// skips a without calling it.
	job := newJob()
	job.Plan = []schemas.Target{{Provider: "a", Model: "m-a"}, {Provider: "b", Model: "m-b"}}
	r := e.result(e.submit(job), 10*time.Second)
	if r.Provider != "b" || outcomes(r.Attempts) != "a:fallback:circuit_open b:ok" {
		t.Errorf("via %s: %s", r.Provider, outcomes(r.Attempts))
	}
	if n := e.mocks["a"].Stats().Requests; n != 0 {
		t.Errorf("open breaker let %d calls through", n)
	}
}

// countedMock serves a mock provider through a handler that counts the
// chat-completion calls reaching it.
type countedMock struct {
	url   string
	calls atomic.Int64
}

func startCountedMock(t *testing.T, opts mock.Options) *countedMock {
	t.Helper()
	m := &countedMock{}
	m.url = testenv.ServeMock(t, mock.New(opts), func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chat/completions") {
			m.calls.Add(1)
		}
	})
	return m
}

func (m *countedMock) count() int { return int(m.calls.Load()) }

func TestRateLimitTwoProcessesHoldRPM(t *testing.T) {
	const window = 500 * time.Millisecond
	const perWindow = 10 // rpm 1200 over 500ms windows
	e := newEnv(t, 1, provider{name: "a", concurrency: 8})
	tm := startCountedMock(t, mock.Options{})
	e.tune(func(c *config.Config) {
		c.Providers[0].BaseURL = tm.url + "/v1"
		c.Providers[0].RPM = perWindow * int(time.Minute/window)
		c.RateLimits.Window = window
	})
	t.Setenv(envResilience, "1")
	w1 := e.startWorker("a", 5*time.Second)
	w2 := e.startWorker("a", 5*time.Second)
	var ids []string
	for i := 0; i < 60; i++ {
		ids = append(ids, e.submit(newJob()))
	}
	var results []*schemas.Result
	for _, id := range ids {
		res := e.result(id, 30*time.Second)
		if res.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %s %v (a job over the limit must wait, not fail)", id, res.Status, res.Error)
		}
		results = append(results, res)
	}
	s1, s2 := w1.Stop(t), w2.Stop(t)
	if s1.Succeeded == 0 || s2.Succeeded == 0 {
		t.Errorf("both processes should serve: %d and %d", s1.Succeeded, s2.Succeeded)
	}
	perWin, calls := testenv.CallsPerWindow(slices.Values(results), "a", window)
	if n := tm.count(); calls != n {
		t.Fatalf("results record %d calls, the provider saw %d", calls, n)
	}
	limit := perWindow + perWindow/20 // within 5%
	for w, n := range perWin {
		if n > limit {
			t.Errorf("window %d: %d calls, over the limit of %d", w, n, perWindow)
		}
	}
}

func TestRateLimitDeadlineFallsBack(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a"}, provider{name: "b"})
	e.tune(func(c *config.Config) {
		c.Providers[0].RPM = 2 // per minute: the third job cannot wait that long
	})
	res := e.openRes()
	e.startPool("a", withRes(res))
	e.startPool("b", withRes(res))
	// The limit counts per calendar minute: start early in one, so the three
	// calls below fall in the same window.
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if s := time.Now().Second(); s >= 45 {
			return fmt.Errorf("%ds into the minute; waiting for the next one", s)
		}
		return nil
	})
	for i := 0; i < 2; i++ {
		if r := e.result(e.submit(newJob()), 10*time.Second); r.Provider != "a" {
			t.Fatalf("job %d via %s", i, r.Provider)
		}
	}
	job := newJob()
	dl := time.Now().Add(20 * time.Second)
	if time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)) < 21*time.Second {
		dl = time.Now().Add(2 * time.Second) // the window resets sooner than 20s
	}
	job.Deadline = &dl
	r := e.result(e.submit(job), 10*time.Second)
	if r.Status != schemas.StatusSucceeded || r.Provider != "b" || outcomes(r.Attempts) != "a:fallback:rate_limited b:ok" {
		t.Errorf("over the limit with a deadline: %s via %s (%s)", r.Status, r.Provider, outcomes(r.Attempts))
	}
	if n := e.mocks["a"].Stats().Requests; n != 2 {
		t.Errorf("a called %d times, want 2 (its limit)", n)
	}
}

func TestLatencyThresholdCancel(t *testing.T) {
	e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{Latency: 5 * time.Second}, timeout: 10 * time.Second}, provider{name: "b"})
	e.tune(func(c *config.Config) {
		c.Routes[0].LatencyThreshold = 100 * time.Millisecond
		c.Routes[0].Mode = config.ModeCancel
	})
	res := e.openRes()
	e.startPool("a", withRes(res))
	e.startPool("b", withRes(res))
	r := e.result(e.submit(newJob()), 10*time.Second)
	if r.Provider != "b" || outcomes(r.Attempts) != "a:fallback:timeout b:ok" {
		t.Errorf("via %s: %s", r.Provider, outcomes(r.Attempts))
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().Canceled; n != 1 {
			return fmt.Errorf("slow call not cancelled at the provider (canceled=%d)", n)
		}
		return nil
	})
}

// openBreaker opens target's breaker from "another process" and waits
// until res sees it open.
func (e *env) openBreaker(res workers.Resilience, provider, model string) {
	e.t.Helper()
	other := e.openRes()
	if err := other.Breakers.Record(context.Background(), provider, model, schemas.ErrServerError); err != nil {
		e.t.Fatal(err)
	}
	natstest.CheckFor(e.t, 5*time.Second, 10*time.Millisecond, func() error {
		if !res.Breakers.Open(provider, model) {
			return fmt.Errorf("breaker of %s/%s not open yet", provider, model)
		}
		return nil
	})
}

// A slow call is not cut at the latency threshold when every later target's
// breaker is open: cutting it would move the job off the one target that
// answers onto one that refuses it, where it waited in the queue for a
// probe (a cooldown, here an hour) and was never answered meanwhile.
func TestLatencyThresholdKeepsCallWhenLaterTargetsOpen(t *testing.T) {
	e := newEnv(t, 1, provider{name: "a", faults: mock.Faults{Latency: 300 * time.Millisecond}, timeout: 5 * time.Second}, provider{name: "b"})
	e.tune(func(c *config.Config) {
		c.Routes[0].LatencyThreshold = 50 * time.Millisecond
		c.Routes[0].Mode = config.ModeCancel
		c.Breaker = config.Breaker{Failures: 1, Cooldown: time.Hour}
	})
	res := e.openRes()
	e.openBreaker(res, "b", "m-b")
	e.startPool("a", withRes(res))
	e.startPool("b", withRes(res))
	job := newJob()
	job.Plan = []schemas.Target{{Provider: "a", Model: "m-a"}, {Provider: "b", Model: "m-b"}}
	r := e.result(e.submit(job), 15*time.Second)
	if r.Status != schemas.StatusSucceeded || r.Provider != "a" || outcomes(r.Attempts) != "a:ok" {
		t.Errorf("%s via %s: %s", r.Status, r.Provider, outcomes(r.Attempts))
	}
	if n := e.mocks["b"].Stats().Requests; n != 0 {
		t.Errorf("open breaker let %d calls through", n)
	}
}

// A retry refused because the last target's breaker opened (on this very
// failure) fails the job with the call's error, as a retry waiting past
// MaxRetryWait does. Handing it back to the queue instead restarted its
// retries on the next delivery, so while the target stayed down the job
// took one failed probe per cooldown and was never answered.
func TestRetryRefusedByOpenBreakerFails(t *testing.T) {
	e := newEnv(t, 1, provider{name: "a", faults: mock.Faults{ErrorRate: 1}})
	e.tune(func(c *config.Config) { c.Breaker = config.Breaker{Failures: 1, Cooldown: time.Hour} })
	res := e.openRes()
	e.startPool("a", withRes(res))
	id := e.submit(newJob())
	r := e.result(id, 15*time.Second)
	if r.Status != schemas.StatusFailed || r.Error == nil || r.Error.Type != schemas.ErrServerError || outcomes(r.Attempts) != "a:fatal:server_error" {
		t.Errorf("%s (%+v): %s", r.Status, r.Error, outcomes(r.Attempts))
	}
	if n := e.mocks["a"].Stats().Requests; n != 1 {
		t.Errorf("%d calls, want 1 (the breaker opened on the first)", n)
	}
	// The dead letter is published beside the Result, so it may be stored
	// just after the Result arrives.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.count(topology.StreamDLQ, topology.DLQ(topology.DLQExhausted)); n != 1 {
			return fmt.Errorf("%d dead letters, want 1 (a provider-side failure)", n)
		}
		return nil
	})
	e.waitEmpty(10 * time.Second)
}

func TestHedgeFirstAnswerWins(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{Latency: 5 * time.Second}, timeout: 10 * time.Second}, provider{name: "b"})
	e.tune(func(c *config.Config) {
		c.Routes[0].LatencyThreshold = 100 * time.Millisecond
		c.Routes[0].Mode = config.ModeHedge
	})
	res := e.openRes()
	res.Completers = func(p string) llm.Completer { return e.adapter(p) }
	e.startPool("a", withRes(res))
	id := e.submit(newJob())
	r := e.result(id, 10*time.Second)
	// b answered first on a's worker; a's call was cancelled; both recorded.
	if r.Provider != "b" || outcomes(r.Attempts) != "a:fallback:canceled b:ok" {
		t.Errorf("via %s: %s", r.Provider, outcomes(r.Attempts))
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().Canceled; n != 1 {
			return fmt.Errorf("loser not cancelled at the provider (canceled=%d)", n)
		}
		atts, _ := e.events(id)
		if len(atts) != 2 {
			return fmt.Errorf("%d attempt events, want 2", len(atts))
		}
		return nil
	})
	// A fast primary answers before the threshold: no hedge call.
	e.mocks["a"].SetFaults(mock.Faults{})
	before := e.mocks["b"].Stats().Requests
	if r := e.result(e.submit(newJob()), 10*time.Second); r.Provider != "a" || len(r.Attempts) != 1 {
		t.Errorf("fast primary: via %s (%s)", r.Provider, outcomes(r.Attempts))
	}
	if n := e.mocks["b"].Stats().Requests; n != before {
		t.Errorf("hedge started although the primary was fast")
	}
}

// A hedge counts against the next provider's concurrency cap: four slow
// jobs on a reach their latency threshold together, but b (concurrency 1)
// has one token, so one is hedged and the others finish on a. The token
// comes back after the hedge.
func TestHedgeTakesTheTargetsToken(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{Latency: 2 * time.Second}, timeout: 10 * time.Second},
		provider{name: "b", faults: mock.Faults{Latency: 500 * time.Millisecond}, concurrency: 1, timeout: 5 * time.Second})
	e.tune(func(c *config.Config) {
		c.Routes[0].LatencyThreshold = 50 * time.Millisecond
		c.Routes[0].Mode = config.ModeHedge
	})
	res := e.openRes()
	res.Completers = func(p string) llm.Completer { return e.adapter(p) }
	e.startPool("a", withRes(res))
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = e.submit(newJob())
	}
	viaB := 0
	for _, id := range ids {
		r := e.result(id, 15*time.Second)
		if r.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %s (%+v)", id, r.Status, r.Error)
		}
		if r.Provider == "b" {
			viaB++
		}
	}
	if st := e.mocks["b"].Stats(); st.MaxInFlight > 1 || viaB == 0 {
		t.Fatalf("b (concurrency 1): %d calls at most in flight, %d calls, %d jobs answered by b; want at most 1 in flight and a hedge",
			st.MaxInFlight, st.Requests, viaB)
	}
	// The hedge gave b's token back: the next slow job is hedged again.
	if r := e.result(e.submit(newJob()), 15*time.Second); r.Provider != "b" {
		t.Errorf("after the hedges: via %s (%s), want b (its token back)", r.Provider, outcomes(r.Attempts))
	}
}

func TestDeadlineSkipsSlowTarget(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a"}, provider{name: "b"})
	res := e.openRes()
	for i := 0; i < 5; i++ {
		res.Latency.Observe("a", "m-a", 5*time.Second)
	}
	if err := res.Latency.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.startPool("a", withRes(res))
	e.startPool("b", withRes(res))
	// The plan predates the latency data (a first): the pool skips a.
	job := newJob()
	job.Plan = []schemas.Target{{Provider: "a", Model: "m-a"}, {Provider: "b", Model: "m-b"}}
	dl := time.Now().Add(2 * time.Second)
	job.Deadline = &dl
	r := e.result(e.submit(job), 10*time.Second)
	if r.Provider != "b" || outcomes(r.Attempts) != "a:fallback:deadline_exceeded b:ok" {
		t.Errorf("via %s: %s", r.Provider, outcomes(r.Attempts))
	}
	if n := e.mocks["a"].Stats().Requests; n != 0 {
		t.Errorf("slow target called %d times", n)
	}
	// Routing drops it up front, too.
	e.resolveWith(router.Options{Latencies: res.Latency})
	job = newJob()
	dl = time.Now().Add(2 * time.Second)
	job.Deadline = &dl
	e.submit(job)
	if len(job.Plan) != 1 || job.Plan[0].Provider != "b" {
		t.Errorf("plan %v, want only b", job.Plan)
	}
}

func TestPriorityLanesUnderSaturation(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a", concurrency: 1, faults: mock.Faults{Latency: 30 * time.Millisecond}})
	prios := map[string]string{}
	for i := 0; i < 20; i++ {
		for _, p := range []string{schemas.PriorityLow, schemas.PriorityNormal, schemas.PriorityHigh} {
			job := newJob()
			job.Priority = p
			job.Request = []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":"%s-%d"}]}`, p, i))
			e.submit(job)
			prios[fmt.Sprintf("%s-%d", p, i)] = p
		}
	}
	e.startPool("a")
	e.waitEmpty(30 * time.Second)
	reqs := e.mocks["a"].Requests()
	if len(reqs) != 60 {
		t.Fatalf("%d calls, want 60", len(reqs))
	}
	var order []string
	for _, r := range reqs {
		order = append(order, prios[r.Prompt][:1])
	}
	t.Logf("order: %s", strings.Join(order, ""))
	count := map[string]int{}
	for _, r := range reqs[:20] {
		count[prios[r.Prompt]]++
	}
	// Weights 6/3/1: high dominates the first 20 calls, low still gets some.
	if count["high"] < 10 || count["low"] < 1 || count["high"] <= count["normal"] {
		t.Errorf("first 20 calls by priority: %v", count)
	}
}

func TestKeyRotationInPool(t *testing.T) {
	e := newEnv(t, 2, provider{name: "a"})
	srv := testenv.StartMock(t, mock.Options{APIKey: "sk-good"})
	t.Setenv("SB_TEST_KEY_1", "sk-revoked")
	t.Setenv("SB_TEST_KEY_2", "sk-good")
	p := e.cfg.Providers[0]
	p.APIKeyEnvs = []string{"SB_TEST_KEY_1", "SB_TEST_KEY_2"}
	c, err := keys.Build(p, func(q config.Provider) (llm.Completer, error) {
		return openai.New(openai.Config{Name: "a", BaseURL: srv.URL() + "/v1", APIKey: q.APIKey()}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.startPool("a", func(pc *workers.PoolConfig) { pc.Completer = c })
	first := e.result(e.submit(newJob()), 10*time.Second)
	if first.Status != schemas.StatusSucceeded || outcomes(first.Attempts) != "a:retry:auth a:ok" {
		t.Errorf("first job: %s (%s)", first.Status, outcomes(first.Attempts))
	}
	for i := 0; i < 5; i++ {
		if r := e.result(e.submit(newJob()), 10*time.Second); len(r.Attempts) != 1 {
			t.Errorf("job %d: %s", i, outcomes(r.Attempts))
		}
	}
	if n := srv.Stats().Unauthorized; n != 1 {
		t.Errorf("revoked key used %d times, want once", n)
	}
	for _, a := range first.Attempts {
		if strings.Contains(a.ErrorMessage, "sk-") {
			t.Errorf("attempt leaks a key: %q", a.ErrorMessage)
		}
	}
}

func TestBudgetRerouteEndToEnd(t *testing.T) {
	// a costs 1000 in + 1000 out tokens at $1/$2 per Mtok = $0.003 a job.
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{InputTokens: 1000, OutputTokens: 1000}}, provider{name: "b"})
	e.tune(func(c *config.Config) {
		c.Routes = append(c.Routes, config.Route{Name: "cheap", Targets: []config.RouteTarget{{Provider: "b", Model: "m-b"}}})
		c.Routes[0].Targets = c.Routes[0].Targets[:1]
		c.Budgets = []config.Budget{{Tenant: "acme", DailyUSD: 0.01, OnExceed: config.OnExceed{Route: "cheap"}}}
	})
	ctx := natstest.Context(t)
	tr, err := budget.Open(ctx, e.js, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tr.Run(ctx, e.js) }()
	e.resolveWith(router.Options{Budgets: tr})
	e.startPool("a")
	e.startPool("b")
	var via []string
	for i := 0; i < 6; i++ {
		r := e.result(e.submit(newJob()), 10*time.Second)
		via = append(via, r.Provider)
		want := 0.003 * float64(min(i+1, 4))
		natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if d, _ := tr.Spent("acme", time.Now()); d < want-1e-9 {
				return fmt.Errorf("spent %.4f, want %.4f", d, want)
			}
			return nil
		})
	}
	// $0.009 after three jobs (under $0.01): the fourth still goes to a;
	// $0.012 after four: the fifth and sixth are rerouted to cheap (b).
	if got := strings.Join(via, ","); got != "a,a,a,a,b,b" {
		t.Errorf("providers %s, want a,a,a,a,b,b", got)
	}
}

func TestReloadKeepsJobs(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{Latency: 5 * time.Millisecond}}, provider{name: "b"})
	// The resolver and the pools read the holder themselves (Live): no
	// reload is pushed to them.
	holder := live.NewHolder(e.cfg)
	resolver := router.New(e.cfg, router.Options{Live: holder.Load})
	e.client = broker.NewClient(e.nc, e.js, resolver)
	for _, name := range []string{"a", "b"} {
		e.startPool(name, func(pc *workers.PoolConfig) { pc.Live = holder.Load })
	}
	var ids []string
	for i := 0; i < 30; i++ {
		ids = append(ids, e.submit(newJob()))
	}
	// New config: the route now prefers b. Applied while jobs run.
	newYAML := fmt.Sprintf(`
providers:
  - {name: a, kind: mock, base_url: %q}
  - {name: b, kind: mock, base_url: %q}
routes:
  - {name: chat, targets: [{provider: b, model: m-b}, {provider: a, model: m-a}]}
`, e.cfg.Providers[0].BaseURL, e.cfg.Providers[1].BaseURL)
	if _, err := holder.Apply([]byte("routes: [{name: chat}]"), "bad"); err == nil {
		t.Fatal("invalid config accepted")
	}
	if _, err := holder.Apply([]byte(newYAML), "new"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		ids = append(ids, e.submit(newJob()))
	}
	lastVia := ""
	for _, id := range ids {
		r := e.result(id, 20*time.Second)
		if r.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s lost across the reload: %s", id, r.Status)
		}
		lastVia = r.Provider
	}
	if lastVia != "b" {
		t.Errorf("after the reload jobs go to %s, want b", lastVia)
	}
}

// A pool with PoolConfig.Live reads a reload itself: the route's retries go
// from 0 to 2 with no SetConfig call.
func TestPoolReadsTheLiveConfig(t *testing.T) {
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{ErrorRate: 1, ErrorStatus: 500}})
	holder := live.NewHolder(e.cfg)
	e.startPool("a", func(pc *workers.PoolConfig) {
		pc.Live = holder.Load
		pc.BackoffBase, pc.BackoffMax = time.Millisecond, 2*time.Millisecond
	})
	if r := e.result(e.submit(newJob()), 10*time.Second); r.Status != schemas.StatusFailed || len(r.Attempts) != 1 {
		t.Fatalf("retries 0: %s after %d attempts, want failed after 1", r.Status, len(r.Attempts))
	}
	reloaded := fmt.Sprintf(`
providers:
  - {name: a, kind: mock, base_url: %q, concurrency: 4, timeout: 1s}
routes:
  - {name: chat, retries: 2, targets: [{provider: a, model: m-a}]}
`, e.cfg.Providers[0].BaseURL)
	if _, err := holder.Apply([]byte(reloaded), "test"); err != nil {
		t.Fatal(err)
	}
	if r := e.result(e.submit(newJob()), 10*time.Second); r.Status != schemas.StatusFailed || len(r.Attempts) != 3 {
		t.Fatalf("retries 2 after the reload: %s after %d attempts, want failed after 3", r.Status, len(r.Attempts))
	}
}
