package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/dashboard"
	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/schemas"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// stack is a real Switchboard (in-process NATS, worker pools over mock
// providers, the ingester into a throwaway ClickHouse database, the gateway
// serving the dashboard) after known traffic.
type stack struct {
	env      *testenv.Env
	db       *chtest.DB
	url      string
	jobs     map[string]int // job id -> attempts its caller was told
	idleJob  string         // a job waiting on a provider without workers
	tracker  *budget.Tracker
	attempts uint64
}

// chatTenants are the tenants of the chat jobs, in order; "" sends none.
var chatTenants = []string{"acme", "acme", "acme", "bob", "bob", ""}

const doomedJobs = 2

func startStack(t *testing.T) *stack {
	t.Helper()
	db := chtest.NewDB(t)
	one, zero := 1, 0
	env := testenv.Start(t, []testenv.Provider{
		{Name: "alpha", Faults: mock.Faults{FailFirst: 4, ErrorStatus: 503, InputTokens: 40, OutputTokens: 8}, InputPerMTok: 3, OutputPerMTok: 15},
		{Name: "beta", Faults: mock.Faults{InputTokens: 50, OutputTokens: 10}, InputPerMTok: 0.5, OutputPerMTok: 1.5},
		{Name: "gamma", Faults: mock.Faults{FailFirst: 1 << 30, ErrorStatus: 500}},
		{Name: "idle"},
	},
		config.Route{Name: "chat", Targets: []config.RouteTarget{{Provider: "alpha", Model: "alpha-model"}, {Provider: "beta", Model: "beta-model"}}, Retries: &one},
		config.Route{Name: "doomed", Targets: []config.RouteTarget{{Provider: "gamma", Model: "gamma-model"}}, Retries: &zero},
	)
	env.Config.Budgets = []config.Budget{{Tenant: "acme", DailyUSD: 1, MonthlyUSD: 20}}
	for _, p := range []string{"alpha", "beta", "gamma"} {
		env.StartPool(t, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in, err := ingest.New(ingest.Config{JS: env.JS, DSN: db.DSN, BatchRows: 50, BatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	tracker, err := budget.Open(ctx, env.JS, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go tracker.Run(ctx, env.JS) //nolint:errcheck // ends with ctx
	t.Cleanup(func() { cancel(); <-done })

	dash, err := dashboard.New(dashboard.Options{
		Config: func() *config.Config { return env.Config }, JS: env.JS, ClickHouse: db.Conn,
		Spend: tracker.Spent, Breakers: func(string, string) string { return "closed" },
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Config: env.Config, Conn: env.NC, JS: env.JS, Dashboard: dash})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { gw.Close() })
	s := &stack{env: env, db: db, url: srv.URL, jobs: map[string]int{}, tracker: tracker}

	send := func(route, tenant string, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+route+`","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", "application/json")
		if tenant != "" {
			req.Header.Set(gateway.HeaderTenant, tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d: %s", route, resp.StatusCode, want, body)
		}
		n, _ := strconv.Atoi(resp.Header.Get(gateway.HeaderAttempts))
		s.jobs[resp.Header.Get(gateway.HeaderJobID)] = n
		s.attempts += uint64(n)
	}
	for _, tenant := range chatTenants {
		send("chat", tenant, http.StatusOK)
	}
	for range doomedJobs {
		send("doomed", "bob", http.StatusBadGateway)
	}
	id, err := env.Client.Submit(natstest.Context(t), &schemas.Job{Model: "idle/idle-model", Request: testenv.Chat("wait")})
	if err != nil {
		t.Fatal(err)
	}
	s.idleJob = id

	jobs := uint64(len(chatTenants) + doomedJobs)
	for query, want := range map[string]uint64{
		"SELECT count() FROM completions FINAL":           jobs,
		"SELECT countMerge(requests) FROM completions_1m": jobs,
		"SELECT count() FROM attempts FINAL":              s.attempts,
		"SELECT countMerge(calls) FROM attempts_1m":       s.attempts,
	} {
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			got, err := db.Count(context.Background(), query)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s = %d, want %d", query, got, want)
			}
			return nil
		})
	}
	return s
}

// get decodes a dashboard endpoint's JSON answer.
func (s *stack) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func (s *stack) count(t *testing.T, query string, args ...any) uint64 {
	t.Helper()
	n, err := s.db.Count(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (s *stack) sum(t *testing.T, query string, args ...any) float64 {
	t.Helper()
	var v float64
	if err := s.db.Conn.QueryRow(context.Background(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestDashboard(t *testing.T) {
	s := startStack(t)

	t.Run("overview", func(t *testing.T) {
		var o dashboard.Overview
		s.get(t, "/api/overview?since=1h", &o)
		if !o.Analytics.Available {
			t.Fatalf("analytics unavailable: %s", o.Analytics.Message)
		}
		tot := o.Totals
		if want := s.count(t, "SELECT count() FROM completions FINAL"); tot.Requests != want {
			t.Errorf("requests %d, want %d", tot.Requests, want)
		}
		if want := s.count(t, "SELECT count() FROM completions FINAL WHERE status = 'succeeded'"); tot.Succeeded != want || want != uint64(len(chatTenants)) {
			t.Errorf("succeeded %d, ClickHouse %d, sent %d", tot.Succeeded, want, len(chatTenants))
		}
		if tot.Failed != doomedJobs {
			t.Errorf("failed %d, want %d", tot.Failed, doomedJobs)
		}
		if want := s.count(t, "SELECT sum(fallback) FROM completions FINAL"); tot.Fallbacks != want || want == 0 {
			t.Errorf("fallbacks %d, ClickHouse %d (want > 0)", tot.Fallbacks, want)
		}
		if tot.Attempts != s.attempts {
			t.Errorf("attempts %d, want %d", tot.Attempts, s.attempts)
		}
		if want := s.sum(t, "SELECT sum(ifNull(cost_usd, 0)) FROM completions FINAL"); !near(tot.CostUSD, want) || want == 0 {
			t.Errorf("cost %v, want %v", tot.CostUSD, want)
		}
		var inSeries uint64
		for _, p := range o.Series {
			inSeries += p.Requests
		}
		if inSeries != tot.Requests || len(o.Series) < 50 || o.BucketS != 60 {
			t.Errorf("series holds %d requests in %d buckets of %ds, want %d in ~60 of 60s", inSeries, len(o.Series), o.BucketS, tot.Requests)
		}
	})

	t.Run("providers", func(t *testing.T) {
		var p dashboard.Providers
		s.get(t, "/api/providers", &p)
		calls := map[string]uint64{}
		for _, m := range p.Models {
			calls[m.Key] = m.Requests
			if m.Breaker != "closed" {
				t.Errorf("%s breaker %q, want closed", m.Key, m.Breaker)
			}
		}
		for _, pm := range []string{"alpha/alpha-model", "beta/beta-model", "gamma/gamma-model"} {
			want := s.count(t, "SELECT count() FROM attempts FINAL WHERE concat(provider, '/', model) = ?", pm)
			if calls[pm] != want || want == 0 {
				t.Errorf("%s: %d calls shown, ClickHouse %d", pm, calls[pm], want)
			}
		}
		errs := map[string]uint64{}
		for _, e := range p.Errors {
			errs[fmt.Sprintf("%s %d %s", e.Provider, e.StatusCode, e.ErrorType)] += e.Calls
		}
		if want := map[string]uint64{"alpha 503 server_error": 4, "gamma 500 server_error": doomedJobs}; fmt.Sprint(errs) != fmt.Sprint(want) {
			t.Errorf("errors %v, want %v", errs, want)
		}
	})

	t.Run("routes", func(t *testing.T) {
		var r dashboard.Routes
		s.get(t, "/api/routes", &r)
		byName := map[string]dashboard.RouteRow{}
		for _, rt := range r.Routes {
			byName[rt.Name] = rt
		}
		chat, doomed := byName["chat"], byName["doomed"]
		if chat.Requests != uint64(len(chatTenants)) || doomed.Requests != doomedJobs || doomed.SuccessRate != 0 {
			t.Fatalf("chat %d jobs, doomed %d (success %v)", chat.Requests, doomed.Requests, doomed.SuccessRate)
		}
		if chat.Strategy != "ordered" || strings.Join(chat.Targets, ",") != "alpha/alpha-model,beta/beta-model" {
			t.Errorf("chat strategy %q targets %v", chat.Strategy, chat.Targets)
		}
		served := map[string]uint64{}
		for _, sv := range chat.Served {
			served[sv.Provider] = sv.Jobs
		}
		for _, p := range []string{"alpha", "beta"} {
			if want := s.count(t, "SELECT count() FROM completions FINAL WHERE route = 'chat' AND provider = ?", p); served[p] != want || want == 0 {
				t.Errorf("chat served by %s: %d, ClickHouse %d", p, served[p], want)
			}
		}
	})

	t.Run("tenants", func(t *testing.T) {
		want := s.sum(t, "SELECT sum(ifNull(cost_usd, 0)) FROM completions FINAL WHERE tenant = 'acme'")
		var acme dashboard.TenantRow
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			var ts dashboard.Tenants
			s.get(t, "/api/tenants", &ts)
			for _, row := range ts.Tenants {
				if row.Tenant == "acme" {
					acme = row
				}
			}
			if !near(acme.SpentDayUSD, want) {
				return fmt.Errorf("acme spent today %v (budget counters), ClickHouse %v", acme.SpentDayUSD, want)
			}
			return nil
		})
		if acme.Requests != 3 || !near(acme.CostUSD, want) || acme.DailyUSD != 1 || acme.MonthlyUSD != 20 || !near(acme.SpentMonthUSD, want) {
			t.Errorf("acme: %+v, want 3 jobs costing %v against 1/20 USD", acme, want)
		}
	})

	t.Run("queue", func(t *testing.T) {
		var q dashboard.Queue
		s.get(t, "/api/queue", &q)
		if q.DLQ != doomedJobs {
			t.Errorf("DLQ %d, want %d", q.DLQ, doomedJobs)
		}
		if len(q.Lanes) != 4*3 {
			t.Fatalf("%d lanes, want 12", len(q.Lanes))
		}
		for _, l := range q.Lanes {
			switch {
			case l.Provider == "idle" && l.Lane == schemas.PriorityNormal:
				if l.Pending != 1 || l.Oldest == nil || l.Waiting != 0 {
					t.Errorf("idle lane: %+v, want 1 pending job with its age and no worker", l)
				}
			case l.Provider == "alpha" && l.Lane == schemas.PriorityNormal:
				if l.Pending != 0 || l.Oldest != nil || l.Waiting == 0 {
					t.Errorf("alpha lane: %+v, want empty with a waiting worker", l)
				}
			}
		}
		if q.Workers == 0 || q.Analytics.Buffered != 0 {
			t.Errorf("waiting pulls %d, telemetry buffered %d", q.Workers, q.Analytics.Buffered)
		}
	})

	t.Run("jobs", func(t *testing.T) {
		var all dashboard.Jobs
		s.get(t, "/api/jobs", &all)
		if len(all.Jobs) != len(s.jobs) {
			t.Fatalf("%d jobs listed, want %d", len(all.Jobs), len(s.jobs))
		}
		for _, j := range all.Jobs {
			want, ok := s.jobs[j.JobID]
			if !ok || len(j.Attempts) != want || int(j.AttemptCount) != want {
				t.Errorf("job %s: %d attempts listed (count %d), caller was told %d", j.JobID, len(j.Attempts), j.AttemptCount, want)
			}
		}
		for i := 1; i < len(all.Jobs); i++ {
			if all.Jobs[i].TS.After(all.Jobs[i-1].TS) {
				t.Fatal("jobs not newest first")
			}
		}
		var id string
		for jid, n := range s.jobs {
			if n == 3 {
				id = jid
			}
		}
		var one dashboard.Jobs
		s.get(t, "/api/jobs?job_id="+id[len(id)-12:], &one)
		if len(one.Jobs) != 1 || one.Jobs[0].JobID != id || !one.Jobs[0].Fallback {
			t.Fatalf("search by id: %+v", one.Jobs)
		}
		got := []string{}
		for _, a := range one.Jobs[0].Attempts {
			got = append(got, fmt.Sprintf("%s:%d:%s", a.Provider, a.StatusCode, a.Outcome))
		}
		if strings.Join(got, " ") != "alpha:503:retry alpha:503:fallback beta:200:ok" {
			t.Errorf("attempts of %s: %v", id, got)
		}
		for query, want := range map[string]int{"tenant=acme": 3, "status=failed": doomedJobs, "route=doomed&status=failed": doomedJobs,
			"tenant=bob&route=chat": 2, "status=succeeded&limit=2": 2, "tenant=nobody": 0} {
			var res dashboard.Jobs
			s.get(t, "/api/jobs?"+query, &res)
			if len(res.Jobs) != want {
				t.Errorf("%s: %d jobs, want %d", query, len(res.Jobs), want)
			}
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, path := range []string{"/api/overview?since=forever", "/api/jobs?limit=0", "/api/jobs?status=weird", "/api/nope"} {
			resp, err := http.Get(s.url + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := http.StatusBadRequest
			if path == "/api/nope" {
				want = http.StatusNotFound
			}
			if resp.StatusCode != want || !strings.Contains(string(body), `"message"`) {
				t.Errorf("%s: %d %s, want %d with a message", path, resp.StatusCode, body, want)
			}
		}
	})

	t.Run("browser", func(t *testing.T) { testBrowser(t, s) })
}

// TestWithoutClickHouse: with ClickHouse unreachable the history endpoints
// say analytics is buffering, and the live queue still answers.
func TestWithoutClickHouse(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "alpha"}})
	env.StartPools(t)
	if _, err := env.Client.Complete(natstest.Context(t), &schemas.Job{Route: "chat", Request: testenv.Chat("hi")}); err != nil {
		t.Fatal(err)
	}
	dash, err := dashboard.New(dashboard.Options{Config: func() *config.Config { return env.Config }, JS: env.JS,
		DSN: "clickhouse://127.0.0.1:1/nothing"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dash)
	t.Cleanup(srv.Close)
	s := &stack{url: srv.URL}
	// The job's telemetry is stored by the time the job is acked, which
	// can be a little after its answer.
	var o dashboard.Overview
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s.get(t, "/api/overview", &o)
		if o.Analytics.Available || !strings.Contains(o.Analytics.Message, "analytics is buffering") || o.Analytics.Buffered < 1 {
			return fmt.Errorf("analytics %+v, want unavailable, buffering, with the job's telemetry counted", o.Analytics)
		}
		return nil
	})
	var q dashboard.Queue
	s.get(t, "/api/queue", &q)
	if len(q.Lanes) != 3 || q.Workers == 0 || q.Analytics.Available {
		t.Errorf("queue %+v, want 3 lanes with waiting workers and analytics unavailable", q)
	}
	var j dashboard.Jobs
	s.get(t, "/api/jobs", &j)
	if j.Analytics.Available || len(j.Jobs) != 0 {
		t.Errorf("jobs %+v", j)
	}
}
