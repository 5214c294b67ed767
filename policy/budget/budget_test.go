package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

const cfgYAML = `
providers: [{name: a, kind: mock}, {name: b, kind: mock}]
routes:
  - {name: chat, targets: [{provider: a, model: m}]}
  - {name: cheap, targets: [{provider: b, model: small}]}
budgets:
  - {tenant: acme, daily_usd: 1, on_exceed: {route: cheap}}
  - {tenant: beta, monthly_usd: 0.5, on_exceed: reject}
`

func TestAddOncePerJob(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js1 := srv.Connect(t)
	_, js2 := srv.Connect(t)
	now := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, err := Open(ctx, js1, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, js2, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		tracker *Tracker
		job     string
		usd     float64
		applied bool
	}{
		{a, "j1", 0.25, true},
		{b, "j1", 0.25, false}, // duplicate from another process
		{a, "j2", 0.5, true},
		{a, "j2", 0.5, false},
	}
	for i, s := range steps {
		got, err := s.tracker.Add(ctx, s.job, "acme", s.usd, now)
		if err != nil || got != s.applied {
			t.Fatalf("step %d: applied %v err %v, want %v", i, got, err, s.applied)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		day, month := b.Spent("acme", now)
		if math.Abs(day-0.75) > 1e-9 || math.Abs(month-0.75) > 1e-9 {
			return fmt.Errorf("spent %v/%v, want 0.75", day, month)
		}
		return nil
	})
	// The next UTC day starts at zero; the month keeps counting.
	tomorrow := now.Add(2 * time.Hour) // April 1st
	if _, err := a.Add(ctx, "j3", "acme", 0.1, tomorrow); err != nil {
		t.Fatal(err)
	}
	day, month := a.Spent("acme", tomorrow)
	if math.Abs(day-0.1) > 1e-9 || math.Abs(month-0.1) > 1e-9 {
		t.Errorf("April 1st: %v/%v, want 0.1/0.1 (new day and month)", day, month)
	}
}

func TestInterruptedCountFinishesOnce(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	now := time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)
	tr, err := Open(ctx, js, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash after the marker and the day counter, before the
	// month counter and the "done" mark.
	if _, err := tr.kv.Create(ctx, "j.jx", []byte(markerPending)); err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(counter{NanoUSD: 3e8, IDs: []string{"jx"}})
	if _, err := tr.kv.Put(ctx, dayKey("t", now), c); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Add(ctx, "jx", "t", 0.3, now); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		day, month := tr.Spent("t", now)
		if math.Abs(day-0.3) > 1e-9 || math.Abs(month-0.3) > 1e-9 {
			return fmt.Errorf("spent %v/%v, want 0.3 each", day, month)
		}
		return nil
	})
}

func TestRunCountsResultsAndRoutingReacts(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tr.Run(ctx, js) }()
	r := router.New(cfg, router.Options{Budgets: tr})
	resolve := func(tenant string) (*schemas.Job, error) {
		j := &schemas.Job{Request: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`), Metadata: map[string]string{"tenant": tenant}}
		if err := j.Prepare(time.Now()); err != nil {
			t.Fatal(err)
		}
		return j, r.Resolve(j)
	}
	pub := func(id, tenant string, usd float64, msgID string) {
		res := schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &usd, Metadata: map[string]string{"tenant": tenant}}
		data, _ := json.Marshal(res)
		msg := &nats.Msg{Subject: topology.Result("", id), Data: data, Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", msgID)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// acme: 0.6 + 0.3 (the second one published twice with distinct msg ids,
	// as after a worker crash) = 0.9 < 1: still on its router.
	pub("r1", "acme", 0.6, "r1.result")
	pub("r2", "acme", 0.3, "r2.result")
	pub("r2", "acme", 0.3, "r2.result.again")
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, _ := tr.Spent("acme", time.Now()); math.Abs(d-0.9) > 1e-9 {
			return fmt.Errorf("acme spent %v, want 0.9", d)
		}
		return nil
	})
	if j, err := resolve("acme"); err != nil || j.Route != "chat" {
		t.Fatalf("under budget: %q %v", j.Route, err)
	}
	pub("r3", "acme", 0.1, "r3.result")
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		j, err := resolve("acme")
		if err != nil || j.Route != "cheap" {
			return fmt.Errorf("at $1.00: route %q err %v, want reroute to cheap", j.Route, err)
		}
		return nil
	})
	pub("r4", "beta", 0.5, "r4.result")
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := resolve("beta")
		if !errors.Is(err, router.ErrBudgetExceeded) {
			return fmt.Errorf("beta: %v, want budget exceeded", err)
		}
		return nil
	})
	if _, err := resolve("gamma"); err != nil {
		t.Errorf("tenant without budget: %v", err)
	}
}

// A Result carrying a 4,200-byte tenant (stored before the entrances were
// checked, or published by anyone with access to RESULTS) is counted under a
// hashed key: the spend counter's connection stays up and counting goes on.
// Before, the key went over the server's 4 KiB control line, the server
// closed the connection, and the redelivered Result did it again on restart.
func TestPoisonTenantResultKeepsTheCounterConnected(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	nc, js := srv.Connect(t)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tr.Run(ctx, js) }()
	long := strings.Repeat("t", 4200)
	for i, tenant := range []string{long, "acme"} {
		usd := 0.25
		id := fmt.Sprintf("r%d", i)
		data, _ := json.Marshal(schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &usd, Metadata: map[string]string{"tenant": tenant}})
		if _, err := js.Publish(ctx, topology.Result("", id), data); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, _ := tr.Spent(long, time.Now()); d != 0.25 {
			return fmt.Errorf("long tenant spent %v", d)
		}
		if d, _ := tr.Spent("acme", time.Now()); d != 0.25 {
			return fmt.Errorf("acme spent %v", d)
		}
		return nil
	})
	if st := nc.Status(); st != nats.CONNECTED {
		t.Fatalf("connection %v", st)
	}
}

// Without a budget in the config the counter does no JetStream work per
// Result: its consumer is neither created nor read. Adding a budget counts
// the Results stored meanwhile; removing the last one stops reading again.
func TestCountsOnlyWhileABudgetIsConfigured(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	withBudgets, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	none, err := config.Parse([]byte("providers: [{name: a, kind: mock}]\nroutes: [{name: chat, targets: [{provider: a, model: m}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, withBudgets.Limits); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(none, router.Options{Budgets: tr}) // tells tr the config
	go func() { _ = tr.Run(ctx, js) }()
	pub := func(id string, usd float64) {
		data, _ := json.Marshal(schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &usd, Metadata: map[string]string{"tenant": "acme"}})
		if _, err := js.Publish(ctx, topology.Result("", id), data); err != nil {
			t.Fatal(err)
		}
	}
	pub("r1", 0.6)
	if _, err := js.Consumer(ctx, topology.StreamResults, Consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("no budget configured: consumer lookup %v, want not found", err)
	}
	r.SetConfig(withBudgets)
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, _ := tr.Spent("acme", time.Now()); math.Abs(d-0.6) > 1e-9 {
			return fmt.Errorf("acme spent %v, want 0.6 (the Result stored before the budget)", d)
		}
		return nil
	})
	r.SetConfig(none)
	cons, err := js.Consumer(ctx, topology.StreamResults, Consumer)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		info, err := cons.Info(ctx)
		if err != nil || info.NumWaiting != 0 {
			return fmt.Errorf("after the last budget went: %d pull requests waiting (%v), want none", info.NumWaiting, err)
		}
		return nil
	})
	pub("r2", 0.3)
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 1 {
			return fmt.Errorf("r2 pending %v (%v), want 1 (not read)", info.NumPending, err)
		}
		return nil
	})
	if d, _ := tr.Spent("acme", time.Now()); math.Abs(d-0.6) > 1e-9 {
		t.Errorf("acme spent %v with no budget configured, want 0.6 still", d)
	}
}

// Results counted in flushes: many jobs of several tenants, duplicates
// (the same job's Result published again, as after a worker crash) and a
// count interrupted half-way (its flush listed in the day counter only) add
// up exactly, each job once.
func TestFlushesCountEachResultOnce(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The interrupted count: job jx's marker names flush fX, which reached
	// the day counter (0.5 in it) but not the month's.
	now := time.Now()
	if _, err := tr.kv.Create(ctx, "j.jx", []byte("p/fX")); err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(counter{NanoUSD: 5e8, IDs: []string{"fX"}})
	if _, err := tr.kv.Put(ctx, dayKey("acme", now), c); err != nil {
		t.Fatal(err)
	}
	pub := func(id, tenant string, usd float64, msgID string) {
		data, _ := json.Marshal(schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &usd, Metadata: map[string]string{"tenant": tenant}})
		msg := &nats.Msg{Subject: topology.Result("", id), Data: data, Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", msgID)
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatal(err)
		}
	}
	tenants := []string{"acme", "beta", ""}
	const jobs = 900
	for i := range jobs {
		id := fmt.Sprintf("job-%d", i)
		pub(id, tenants[i%3], 0.001, id)
		if i%10 == 0 {
			pub(id, tenants[i%3], 0.001, id+".again")
		}
	}
	pub("jx", "acme", 0.5, "jx")
	<-js.PublishAsyncComplete()
	go func() { _ = tr.Run(ctx, js) }()
	want := map[string][2]float64{"acme": {0.3 + 0.5, 0.3 + 0.5}, "beta": {0.3, 0.3}, "": {0.3, 0.3}}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for tenant, w := range want {
			day, month := tr.Spent(tenant, now)
			if toNano(day) != toNano(w[0]) || toNano(month) != toNano(w[1]) {
				return fmt.Errorf("tenant %q spent %v/%v, want %v/%v", tenant, day, month, w[0], w[1])
			}
		}
		// The markers are set done after the counters are written: the
		// spend can show a moment before the last flush's markers do.
		for _, id := range []string{"jx", "job-0", "job-899"} {
			e, err := tr.kv.Get(ctx, kvstate.Key("j", id))
			if err != nil || string(e.Value()) != markerDone {
				return fmt.Errorf("marker of %s: %v, want done", id, err)
			}
		}
		return nil
	})
}

// publishCosts stores the Results of jobs job-0 … job-<n-1> of tenant acme,
// each costing usd.
func publishCosts(t *testing.T, js jetstream.JetStream, n int, usd float64) {
	t.Helper()
	ctx := natstest.Context(t)
	for i := range n {
		cost := usd
		id := fmt.Sprintf("job-%d", i)
		data, _ := json.Marshal(schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &cost,
			Metadata: map[string]string{"tenant": "acme"}})
		if _, err := js.Publish(ctx, topology.Result("", id), data); err != nil {
			t.Fatal(err)
		}
	}
}

// A flush whose marker writes are never answered (the spend bucket lost its
// quorum, as in a leader election after a node loss) gives up after one
// wait for the whole step, not one per Result, so the counter is not held
// back for minutes; its Results, counted again once the bucket is back (a
// redelivery), add up exactly, each once.
func TestFlushThroughBucketOutage(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	ctx := natstest.Context(t)
	_, js := cl.Nodes[0].Connect(t) // the node that stays up
	js = topology.Replicated(js, 3)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	tr, err := Open(ctx, js, Options{Log: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const jobs, usd = 20, 0.01
	publishCosts(t, js, jobs, usd)
	cons, err := js.CreateOrUpdateConsumer(ctx, topology.StreamResults, jetstream.ConsumerConfig{Durable: "outage", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	// The new replicated consumer answers once its leader is elected
	// (before that a pull gets "no responders").
	var msgs []jetstream.Msg
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		batch, err := cons.Fetch(jobs-len(msgs), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) < jobs {
			return fmt.Errorf("fetched %d of %d results (%v)", len(msgs), jobs, batch.Error())
		}
		return nil
	})

	cl.Stop(1)
	cl.Stop(2)
	flushed := make(chan struct{})
	start := time.Now()
	go func() { tr.flush(ctx, msgs); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(time.Minute):
		t.Fatalf("a flush of %d results still waiting a minute after the spend bucket lost its quorum", jobs)
	}
	t.Logf("flush gave up after %.1fs", time.Since(start).Seconds())
	if !strings.Contains(log.String(), "not confirmed") {
		t.Errorf("no warning logged for the unconfirmed markers; log:\n%s", log)
	}
	if day, _ := tr.Spent("acme", time.Now()); day != 0 {
		t.Errorf("spent $%v while the bucket was down, want nothing counted yet", day)
	}

	cl.Start(t, 1)
	cl.Start(t, 2)
	cl.WaitReady(t)
	natstest.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		tr.flush(ctx, msgs) // the redelivery
		if day, month := tr.Spent("acme", time.Now()); toNano(day) != toNano(jobs*usd) || toNano(month) != toNano(jobs*usd) {
			return fmt.Errorf("spent $%v today and $%v this month, want $%v", day, month, jobs*usd)
		}
		for i := range jobs {
			e, err := tr.kv.Get(ctx, kvstate.Key("j", fmt.Sprintf("job-%d", i)))
			if err != nil || string(e.Value()) != markerDone {
				return fmt.Errorf("marker of job-%d: %v, want done", i, err)
			}
		}
		return nil
	})
	// Once more: counted, nothing changes.
	tr.flush(ctx, msgs)
	if day, _ := tr.Spent("acme", time.Now()); toNano(day) != toNano(jobs*usd) {
		t.Errorf("spent $%v after a further redelivery, want $%v", day, jobs*usd)
	}
}

// resentWrites is JetStream whose counter writes are each sent twice, as
// topology.Replicated sends a publish again when its confirmation was lost
// in a leader change although the first copy was stored: the caller sees
// the second copy's answer (a wrong-last-sequence refusal).
type resentWrites struct {
	jetstream.JetStream
	resent int
}

func (r *resentWrites) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := r.JetStream.PublishMsg(ctx, msg, opts...)
	if err != nil || !strings.HasPrefix(msg.Subject, "$KV."+Bucket+".s.") {
		return ack, err
	}
	r.resent++
	return r.JetStream.PublishMsg(ctx, msg, opts...)
}

// A counter write that was stored although its caller saw it refused is
// not added again when the compare-and-set loop reads the key back.
func TestCounterWriteStoredButRefusedCountsOnce(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, plain := srv.Connect(t)
	cfg, err := config.Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := topology.Ensure(ctx, plain, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	js := &resentWrites{JetStream: plain}
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The counters exist ($1 spent before), so the flush updates them (a
	// first write is a KV create, not a publish of ours).
	keys := []string{dayKey("acme", time.Now()), monthKey("acme", time.Now())}
	before, _ := json.Marshal(counter{NanoUSD: 1e9})
	for _, key := range keys {
		if _, err := tr.kv.Put(ctx, key, before); err != nil {
			t.Fatal(err)
		}
	}
	const jobs, usd = 5, 0.25
	publishCosts(t, plain, jobs, usd)
	cons, err := plain.CreateOrUpdateConsumer(ctx, topology.StreamResults, jetstream.ConsumerConfig{Durable: "resent", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(jobs, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != jobs {
		t.Fatalf("fetched %d of %d results", len(msgs), jobs)
	}
	tr.flush(ctx, msgs)
	tr.flush(ctx, msgs) // and a redelivery
	if js.resent == 0 {
		t.Fatal("no counter write was sent twice: the test did not test anything")
	}
	for _, key := range keys {
		v, err := tr.kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if c := decodeCounter(v.Value(), true); c.NanoUSD != toNano(1+jobs*usd) {
			t.Errorf("%s holds $%v, want $%v (each job once)", key, float64(c.NanoUSD)/1e9, 1+jobs*usd)
		}
	}
}
