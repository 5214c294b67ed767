package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/policy/latency"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

const testConfig = `
providers:
  - {name: a, kind: mock}
  - {name: b, kind: mock}
  - {name: c, kind: mock}
models:
  - {provider: a, name: m, input_per_mtok: 1, output_per_mtok: 10}
  - {provider: b, name: m, input_per_mtok: 5, output_per_mtok: 2}
routes:
  - name: chat
    targets: [{provider: a, model: m}, {provider: b, model: m}, {provider: c, model: m}]
  - name: split
    strategy: weighted
    targets: [{provider: a, model: m, weight: 3}, {provider: b, model: m, weight: 1}, {provider: c, model: m, weight: 1}]
  - name: fast
    strategy: least-latency
    targets: [{provider: a, model: m}, {provider: b, model: m}, {provider: c, model: m}]
  - name: cheap
    strategy: lowest-cost
    targets: [{provider: c, model: m}, {provider: a, model: m}, {provider: b, model: m}]
  - name: backup
    targets: [{provider: c, model: m}]
rules:
  - {when: {tier: free, region: [eu, us]}, route: cheap}
  - {when: {tier: free}, route: backup}
  - {when: {priority: high}, route: fast}
  - {when: {team: [ml, data]}, route: split}
default_route: chat
budgets:
  - {tenant: acme, daily_usd: 1, on_exceed: {route: backup}}
  - {tenant: beta, daily_usd: 1, on_exceed: reject}
`

func mustConfig(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func req(msg string, maxTokens int) json.RawMessage {
	b := map[string]any{"messages": []map[string]string{{"role": "user", "content": msg}}}
	if maxTokens > 0 {
		b["max_tokens"] = maxTokens
	}
	data, _ := json.Marshal(b)
	return data
}

func newJob(meta map[string]string, priority string) *schemas.Job {
	j := &schemas.Job{Request: req("hi", 0), Metadata: meta, Priority: priority}
	if err := j.Prepare(time.Now()); err != nil {
		panic(err)
	}
	return j
}

func planString(p []schemas.Target) string {
	s := make([]string, len(p))
	for i, t := range p {
		s[i] = t.Provider
	}
	return strings.Join(s, ",")
}

func TestRules(t *testing.T) {
	r := New(mustConfig(t, testConfig), Options{})
	cases := []struct {
		name     string
		meta     map[string]string
		priority string
		route    string
		want     string
	}{
		{"all keys of first rule", map[string]string{"tier": "free", "region": "eu"}, "", "", "cheap"},
		{"list value", map[string]string{"tier": "free", "region": "us"}, "", "", "cheap"},
		{"first match wins over later", map[string]string{"tier": "free", "region": "apac"}, "", "", "backup"},
		{"priority key", nil, "high", "", "fast"},
		{"any metadata key", map[string]string{"team": "data"}, "", "", "split"},
		{"default route", map[string]string{"team": "web"}, "low", "", "chat"},
		{"explicit route beats rules", map[string]string{"tier": "free"}, "", "chat", "chat"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(tc.meta, tc.priority)
			j.Route = tc.route
			if err := r.Resolve(j); err != nil {
				t.Fatal(err)
			}
			if j.Route != tc.want {
				t.Errorf("route = %q, want %q", j.Route, tc.want)
			}
			if len(j.Plan) == 0 {
				t.Error("empty plan")
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	r := New(mustConfig(t, testConfig), Options{})
	for _, tc := range []struct{ route, model, want string }{
		{"nope", "", `route: unknown route "nope"`},
		{"", "x/m", `model: unknown provider "x"`},
	} {
		j := newJob(nil, "")
		j.Route, j.Model = tc.route, tc.model
		err := r.Resolve(j)
		if err == nil || !errors.Is(err, schemas.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q, %q) = %v, want %q", tc.route, tc.model, err, tc.want)
		}
	}
	j := newJob(nil, "")
	j.Model = "b/m"
	if err := r.Resolve(j); err != nil || planString(j.Plan) != "b" {
		t.Errorf("pinned model: plan %v err %v", j.Plan, err)
	}
}

func TestWeightedShares(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	rt, _ := cfg.Route("split")
	const n = 20000
	first := map[string]int{}
	for i := 0; i < n; i++ {
		id := schemas.NewJobID()
		p := Weighted(rt, id)
		if planString(p) != planString(Weighted(rt, id)) {
			t.Fatalf("plan of %s not deterministic", id)
		}
		if len(p) != 3 {
			t.Fatalf("plan must hold every target: %v", p)
		}
		first[p[0].Provider]++
	}
	for p, want := range map[string]float64{"a": 0.6, "b": 0.2, "c": 0.2} {
		share := float64(first[p]) / n
		if math.Abs(share-want) > 0.02 {
			t.Errorf("share of %s = %.3f, want %.2f±0.02 (%v)", p, share, want, first)
		}
	}
}

type healthMap map[string]bool

func (h healthMap) Open(p, m string) bool { return h[p] }

type latMap map[string]time.Duration

func (l latMap) Latency(p, m string) (time.Duration, bool) { d, ok := l[p]; return d, ok }

func TestOpenBreakersGoLast(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	r := New(cfg, Options{Health: healthMap{"a": true}})
	j := newJob(nil, "")
	j.Route = "chat"
	if err := r.Resolve(j); err != nil {
		t.Fatal(err)
	}
	if got := planString(j.Plan); got != "b,c,a" {
		t.Errorf("plan = %s, want b,c,a", got)
	}
	r = New(cfg, Options{Health: healthMap{"a": true, "b": true, "c": true}})
	j = newJob(nil, "")
	j.Route = "chat"
	_ = r.Resolve(j)
	if got := planString(j.Plan); got != "a,b,c" {
		t.Errorf("all open: plan = %s, want a,b,c (kept, in order)", got)
	}
}

func TestLowestCost(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	r := New(cfg, Options{})
	cases := []struct {
		msg       string
		maxTokens int
		want      string
	}{
		// short prompt, long answer: b (output $2) beats a (output $10).
		{"hi", 4000, "b,a,c"},
		// long prompt, short answer: a (input $1) beats b (input $5).
		{strings.Repeat("long prompt ", 2000), 1, "a,b,c"},
	}
	for _, tc := range cases {
		j := &schemas.Job{Route: "cheap", Request: req(tc.msg, tc.maxTokens)}
		_ = j.Prepare(time.Now())
		if err := r.Resolve(j); err != nil {
			t.Fatal(err)
		}
		if got := planString(j.Plan); got != tc.want {
			t.Errorf("max_tokens=%d len=%d: plan %s, want %s (unpriced c last)", tc.maxTokens, len(tc.msg), got, tc.want)
		}
	}
	in, out := pricing.EstimateTokens(req(strings.Repeat("x", 400), 0), 256)
	if in < 100 || in > 120 || out != 256 {
		t.Errorf("estimate = %d, %d", in, out)
	}
	_, out = pricing.EstimateTokens(json.RawMessage(`{"messages":[],"max_completion_tokens":77,"max_tokens":5}`), 256)
	if out != 77 {
		t.Errorf("max_completion_tokens wins: %d", out)
	}
}

type budgetStub map[string]bool

func (b budgetStub) Exceeded(_ *config.Config, tenant string) (string, bool) {
	return "daily budget of $1.00 reached", b[tenant]
}

func TestBudgetRerouteAndReject(t *testing.T) {
	r := New(mustConfig(t, testConfig), Options{Budgets: budgetStub{"acme": true, "beta": true}})
	j := newJob(map[string]string{"tenant": "acme"}, "")
	j.Route = "chat"
	if err := r.Resolve(j); err != nil || j.Route != "backup" || planString(j.Plan) != "c" {
		t.Errorf("acme over budget: route %q plan %v err %v, want backup", j.Route, j.Plan, err)
	}
	j = newJob(map[string]string{"tenant": "acme"}, "")
	j.Model = "a/m"
	if err := r.Resolve(j); err != nil || j.Route != "backup" || j.Model != "" {
		t.Errorf("pinned model over budget: route %q model %q err %v", j.Route, j.Model, err)
	}
	j = newJob(map[string]string{"tenant": "beta"}, "")
	err := r.Resolve(j)
	if !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "tenant beta") {
		t.Errorf("beta: err = %v, want budget exceeded naming the tenant", err)
	}
	j = newJob(map[string]string{"tenant": "gamma"}, "")
	if err := r.Resolve(j); err != nil || j.Route != "chat" {
		t.Errorf("gamma under budget: %v %q", err, j.Route)
	}
}

func TestTrimForDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	plan := []schemas.Target{{Provider: "a"}, {Provider: "b"}, {Provider: "c"}}
	lat := latMap{"a": 5 * time.Second, "b": 200 * time.Millisecond}
	cases := []struct {
		left time.Duration
		want string
	}{
		{10 * time.Second, "a,b,c"},
		{time.Second, "b,c"},          // a is too slow, c unknown stays
		{100 * time.Millisecond, "c"}, // only unknown c left
	}
	for _, tc := range cases {
		if got := planString(TrimForDeadline(plan, now.Add(tc.left), now, lat)); got != tc.want {
			t.Errorf("left %v: %s, want %s", tc.left, got, tc.want)
		}
	}
	known := plan[:2]
	if got := planString(TrimForDeadline(known, now.Add(time.Millisecond), now, lat)); got != "b" {
		t.Errorf("nothing fits: %s, want the fastest (b)", got)
	}
	if got := planString(TrimForDeadline(plan, now.Add(-time.Second), now, lat)); got != "a,b,c" {
		t.Errorf("already expired: %s, want plan kept (pool fails it)", got)
	}
	r := New(mustConfig(t, testConfig), Options{Latencies: lat, Now: func() time.Time { return now }})
	j := newJob(nil, "")
	j.Route = "chat"
	d := now.Add(time.Second)
	j.Deadline = &d
	if err := r.Resolve(j); err != nil || planString(j.Plan) != "b,c" {
		t.Errorf("resolve with deadline: %v %v", j.Plan, err)
	}
}

func TestLeastLatencySharedAcrossProcesses(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	cfg := mustConfig(t, testConfig)
	rc := cfg.Routing
	rc.LatencyFlush = 0 // flush by hand
	_, jsA := srv.Connect(t)
	_, jsB := srv.Connect(t)
	worker, err := latency.Open(ctx, jsA, rc)
	if err != nil {
		t.Fatal(err)
	}
	router, err := latency.Open(ctx, jsB, rc)
	if err != nil {
		t.Fatal(err)
	}
	r := New(cfg, Options{Latencies: router})
	resolve := func() string {
		j := newJob(nil, "")
		j.Route = "fast"
		if err := r.Resolve(j); err != nil {
			t.Fatal(err)
		}
		return planString(j.Plan)
	}
	if got := resolve(); got != "a,b,c" {
		t.Errorf("no data: %s, want config order", got)
	}
	for i := 0; i < 5; i++ {
		worker.Observe("a", "m", 900*time.Millisecond)
		worker.Observe("b", "m", 100*time.Millisecond)
		worker.Observe("c", "m", 400*time.Millisecond)
	}
	if err := worker.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := resolve(); got != "b,c,a" {
			return fmt.Errorf("plan %s, want b,c,a", got)
		}
		return nil
	})
	// b slows down: the EWMA moves past c after enough slow samples.
	for i := 0; i < 10; i++ {
		worker.Observe("b", "m", 2*time.Second)
	}
	if err := worker.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := resolve(); got != "c,a,b" {
			return fmt.Errorf("plan %s, want c,a,b", got)
		}
		return nil
	})
	d, ok := router.Latency("b", "m")
	if !ok || d < 1500*time.Millisecond || d > 2*time.Second {
		t.Errorf("b EWMA = %v", d)
	}
}

// configurerStub records the configs it is told.
type configurerStub struct {
	budgetStub
	told []*config.Config
}

func (c *configurerStub) Configure(cfg *config.Config) { c.told = append(c.told, cfg) }

func TestLiveConfigIsReadOnEveryResolve(t *testing.T) {
	first := mustConfig(t, testConfig)
	second := mustConfig(t, strings.Replace(testConfig, "default_route: chat", "default_route: backup", 1))
	cur := first
	budgets := &configurerStub{budgetStub: budgetStub{}}
	r := New(first, Options{Live: func() *config.Config { return cur }, Budgets: budgets})
	j := newJob(nil, "")
	if err := r.Resolve(j); err != nil || j.Route != "chat" {
		t.Fatalf("before the reload: route %q, err %v", j.Route, err)
	}
	cur = second // what a live.Holder's Load returns after a reload
	j = newJob(nil, "")
	if err := r.Resolve(j); err != nil || j.Route != "backup" || planString(j.Plan) != "c" {
		t.Fatalf("after the reload: route %q plan %s, err %v", j.Route, planString(j.Plan), err)
	}
	if r.Config() != second {
		t.Error("Config() does not return the live config")
	}
	if len(budgets.told) != 2 || budgets.told[0] != first || budgets.told[1] != second {
		t.Errorf("the budgets were told %d configs, want first then second once each", len(budgets.told))
	}
}
