package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// TestNodeLossLosesNothing runs jobs through HTTP and llm.submit on a real
// 3-node JetStream cluster with R3 streams, shuts one node down mid-load,
// lets the load go on without it, and starts it again: every job has
// exactly one Result, no HTTP caller or producer saw an error, the mock
// saw at most one extra call per job in flight at the kill, and the budget
// counter counted every job's spend once; right after the kill a tenant
// over its budget is refused (budget_exceeded). The longest gap between two
// finished jobs around the kill is the stall. The node is the one leading
// JOBS (the stream and its consumers elect new leaders), the one leading
// the provider's concurrency tokens (slots-p), or the one leading the
// budget counter's consumer.
func TestNodeLossLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leaderOf func(ctx context.Context, js jetstream.JetStream) (string, error)
	}{
		{"JOBS leader", func(ctx context.Context, js jetstream.JetStream) (string, error) {
			s, err := js.Stream(ctx, topology.StreamJobs)
			if err != nil {
				return "", err
			}
			return s.CachedInfo().Cluster.Leader, nil
		}},
		{"slots leader", func(ctx context.Context, js jetstream.JetStream) (string, error) {
			c, err := js.Consumer(ctx, topology.StreamSlots, topology.SlotsConsumer("p"))
			if err != nil {
				return "", err
			}
			return c.CachedInfo().Cluster.Leader, nil
		}},
		{"budget-spend leader", func(ctx context.Context, js jetstream.JetStream) (string, error) {
			c, err := js.Consumer(ctx, topology.StreamResults, budget.Consumer)
			if err != nil {
				return "", err
			}
			return c.CachedInfo().Cluster.Leader, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { nodeLoss(t, tc.leaderOf) })
	}
}

func nodeLoss(t *testing.T, leaderOf func(context.Context, jetstream.JetStream) (string, error)) {
	const (
		httpJobs, submitJobs = 1000, 1000
		concurrency          = 16
	)
	// Priced so the budget counter has spend to count.
	env := testenv.StartCluster(t, 3, 3, []testenv.Provider{{Name: "p", Concurrency: concurrency, Timeout: 5 * time.Second,
		Faults: mock.Faults{Latency: 40 * time.Millisecond}, InputPerMTok: 50_000, OutputPerMTok: 50_000}})
	env.StartPools(t)
	ctx := natstest.Context(t)
	// The budget counter's and the dispatcher's warnings (a flush given
	// up, a consumer restarted) are shown with the test's log.
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if s := logs.String(); s != "" {
			t.Logf("warnings of the budget counter and the dispatcher:\n%s", s)
		}
	})
	tr, err := budget.Open(ctx, env.JS, budget.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tr.Run(ctx, env.JS) }()
	go func() { _ = broker.NewDispatcher(env.Client, env.JS, log).Run(ctx) }()
	// Tenant "capped" has a budget any one job exceeds; "load" has none.
	cfg := *env.Config
	cfg.Budgets = []config.Budget{{Tenant: "capped", DailyUSD: 1e-6}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Config: &cfg, Resolver: router.New(&cfg, router.Options{Budgets: tr}), Conn: env.NC, JS: env.JS, Logger: log,
		Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)

	var (
		mu       sync.Mutex
		finished []time.Time // when each HTTP job answered or a submitted job's Result arrived
		errs     []string
		ids      = map[string]bool{}
		costs    = map[string]float64{} // job id -> cost of its Result
	)
	done := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if id != "" {
			ids[id] = true
		}
		finished = append(finished, time.Now())
	}
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(finished)
	}
	// Submitted jobs finish when their Result is on RESULTS.
	subResults, err := env.NC.Subscribe("llm.results.>", func(m *nats.Msg) {
		var res schemas.Result
		if err := json.Unmarshal(m.Data, &res); err != nil || res.CostUSD == nil {
			fail("result on %s without a cost (%v)", m.Subject, err)
			return
		}
		mu.Lock()
		_, seen := costs[res.ID]
		costs[res.ID] = *res.CostUSD
		mu.Unlock()
		if !seen && strings.HasPrefix(m.Subject, "llm.results.sub.") {
			done("")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = subResults.Unsubscribe() }()

	var wg sync.WaitGroup
	var next atomic.Int64
	client := &http.Client{Timeout: 60 * time.Second}
	for range concurrency {
		wg.Go(func() {
			for next.Add(1) <= httpJobs {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
					bytes.NewReader([]byte(`{"model":"chat","messages":[{"role":"user","content":"hi"}]}`)))
				if err != nil {
					fail("http: %v", err)
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Switchboard-Tenant", "load")
				resp, err := client.Do(req)
				if err != nil {
					fail("http: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail("http %d: %s", resp.StatusCode, body)
					continue
				}
				done(resp.Header.Get("X-Switchboard-Job-Id"))
			}
		})
	}
	subIDs := make([]string, submitJobs)
	wg.Go(func() {
		for i := range submitJobs {
			id := schemas.NewJobID()
			subIDs[i] = id
			msg := &nats.Msg{Subject: topology.SubjectSubmit, Header: nats.Header{}, Data: fmt.Appendf(nil,
				`{"id":%q,"batch":"sub","route":"chat","request":{"messages":[{"role":"user","content":"hi"}]},"metadata":{"tenant":"load"}}`, id)}
			msg.Header.Set(jetstream.MsgIDHeader, id)
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if _, err := env.JS.PublishMsg(pctx, msg); err != nil {
				fail("submit %s: %v", id, err)
			}
			cancel()
			time.Sleep(2 * time.Millisecond) // pace the producer over the whole run
		}
	})

	// Kill the leader a quarter in, let a quarter more finish without it,
	// then start it again.
	const total = httpJobs + submitJobs
	natstest.CheckFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		if n := count(); n < total/4 {
			return fmt.Errorf("%d of %d jobs finished", n, total)
		}
		return nil
	})
	name, err := leaderOf(ctx, env.JS)
	if err != nil {
		t.Fatal(err)
	}
	leader := env.Cluster.Index(name)
	if leader < 0 {
		t.Fatalf("leader %q is not a node", name)
	}
	before := env.Mocks["p"].Stats().Requests
	leaders := streamLeaders(ctx, env.JS, topology.StreamResults, "KV_"+budget.Bucket, topology.StreamJobs)
	clientOn := env.NC.ConnectedServerName()
	killedAt := time.Now()
	env.Cluster.Stop(leader)
	t.Logf("stopped node %s (the leader) after %d finished jobs; stream leaders were %s, the test's client on %s",
		env.Cluster.Nodes[leader].Name(), count(), leaders, clientOn)
	// Right after the loss, budgets are still enforced: tenant capped's
	// first job is counted and the next ones are refused.
	capped, maybe := overBudget(t, srv.URL)
	natstest.CheckFor(t, 90*time.Second, 10*time.Millisecond, func() error {
		if n := count(); n < total/2 {
			return fmt.Errorf("%d of %d jobs finished with a node down", n, total)
		}
		return nil
	})
	env.Cluster.Start(t, leader)
	t.Logf("restarted node %s %.1fs after the kill", env.Cluster.Nodes[leader].Name(), time.Since(killedAt).Seconds())
	wg.Wait()
	// Done when RESULTS holds a Result of every job (the subscription may
	// miss a few while its client fails over to another node).
	rs, err := env.JS.Stream(ctx, topology.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	natstest.CheckFor(t, 90*time.Second, 100*time.Millisecond, func() error {
		if info, err = rs.Info(ctx, jetstream.WithSubjectFilter("llm.results.>")); err != nil {
			return err
		}
		if n := len(info.State.Subjects); n < total+len(capped) {
			return fmt.Errorf("Results of %d of %d jobs stored", n, total+len(capped))
		}
		return nil
	})

	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d callers saw errors, first: %s", len(errs), errs[0])
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].Before(finished[j]) })
	var stall time.Duration
	for i := 1; i < len(finished); i++ {
		if finished[i].After(killedAt.Add(-time.Second)) {
			stall = max(stall, finished[i].Sub(finished[i-1]))
		}
	}
	t.Logf("stall after the node loss: %.2fs (longest gap between two finished jobs)", stall.Seconds())

	// Exactly one Result per job, on RESULTS.
	for _, id := range subIDs {
		ids[id] = true
	}
	if len(ids) != total {
		t.Fatalf("%d distinct job ids, want %d", len(ids), total)
	}
	perJob := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		if id := subj[strings.LastIndexByte(subj, '.')+1:]; !capped[id] && !maybe[id] {
			perJob[id] += n
		}
	}
	for id := range ids {
		if perJob[id] != 1 {
			t.Errorf("job %s has %d Results, want 1", id, perJob[id])
		}
	}
	if len(perJob) != total {
		t.Errorf("RESULTS holds Results of %d jobs, want %d", len(perJob), total)
	}
	calls := env.Mocks["p"].Stats().Requests
	if extra := calls - total - int64(len(capped)+len(maybe)); extra > concurrency {
		t.Errorf("mock saw %d calls for %d jobs: %d extra, more than the %d in flight at the kill (%d calls before it)", calls, total, extra, concurrency, before)
	}
	t.Logf("%d jobs, %d provider calls", total, calls)

	// The budget counter counted each job's cost once, across the election.
	var want float64
	for subj := range info.State.Subjects {
		if id := subj[strings.LastIndexByte(subj, '.')+1:]; capped[id] || maybe[id] {
			continue
		}
		c, ok := costs[subj[strings.LastIndexByte(subj, '.')+1:]]
		if !ok { // missed by the subscription: read it from the stream
			m, err := rs.GetLastMsgForSubject(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			var res schemas.Result
			if err := json.Unmarshal(m.Data, &res); err != nil || res.CostUSD == nil {
				t.Fatalf("result on %s without a cost (%v)", subj, err)
			}
			c = *res.CostUSD
		}
		want += c
	}
	spendKV, err := env.JS.KeyValue(ctx, budget.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	spendStart := time.Now()
	natstest.CheckFor(t, 120*time.Second, 50*time.Millisecond, func() error {
		if day, _ := tr.Spent("load", time.Now()); math.Abs(day-want) > 1e-6 {
			stored := "?"
			if e, err := spendKV.Get(ctx, kvstate.Key("s", "load", "d", time.Now().UTC().Format("20060102"))); err == nil {
				stored = string(e.Value())
				if len(stored) > 60 {
					stored = stored[:60]
				}
			}
			return fmt.Errorf("tenant load spent $%v (stored: %s), want $%v (the sum of the Results' costs)", day, stored, want)
		}
		return nil
	})
	t.Logf("budget counted $%v over %d jobs (%.1fs after the last Result)", want, total, time.Since(spendStart).Seconds())
}

// streamLeaders names each stream's leader ("RESULTS n1, ..."), for the log.
func streamLeaders(ctx context.Context, js jetstream.JetStream, streams ...string) string {
	var out []string
	for _, name := range streams {
		leader := "?"
		if s, err := js.Stream(ctx, name); err == nil && s.CachedInfo().Cluster != nil {
			leader = s.CachedInfo().Cluster.Leader
		}
		out = append(out, name+" "+leader)
	}
	return strings.Join(out, ", ")
}

// overBudget sends jobs of tenant "capped" (a budget any one job exceeds)
// until one is refused with 429 budget_exceeded, within 60s: the jobs let
// through meanwhile are the spend counter's lag. It returns their ids, and
// those of the few sync calls that failed with a 5xx during the election
// (they may still run and store a Result).
func overBudget(t *testing.T, url string) (passed, maybe map[string]bool) {
	t.Helper()
	passed, maybe = map[string]bool{}, map[string]bool{}
	var unavailable []string
	start := time.Now()
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Post(url+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"hi"}],"metadata":{"tenant":"capped"}}`))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			passed[resp.Header.Get("X-Switchboard-Job-Id")] = true
			return fmt.Errorf("%d jobs of tenant capped accepted, none refused yet", len(passed))
		case resp.StatusCode >= 500 && len(unavailable) < 3:
			// This probe measures enforcement, not availability (the load
			// above checks that no caller fails): a sync call caught in
			// the election may time out. A few are tolerated and logged.
			unavailable = append(unavailable, fmt.Sprintf("%d after %.1fs: %.200s", resp.StatusCode, time.Since(start).Seconds(), body))
			if id := resp.Header.Get("X-Switchboard-Job-Id"); id != "" {
				maybe[id] = true
			}
			return fmt.Errorf("tenant capped: %d", resp.StatusCode)
		case resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"budget_exceeded"`):
			t.Fatalf("tenant capped: %d %s, want 200 or 429 budget_exceeded (earlier 5xx: %v)", resp.StatusCode, body, unavailable)
		}
		return nil
	})
	if len(unavailable) > 0 {
		t.Logf("budget probe: %d sync calls failed during the election: %v", len(unavailable), unavailable)
	}
	if len(passed) == 0 {
		t.Fatal("tenant capped's first job was refused: it had spent nothing")
	}
	t.Logf("budget enforced with the node down: tenant capped refused %.1fs after its first job (%d accepted meanwhile)", time.Since(start).Seconds(), len(passed))
	return passed, maybe
}
