package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/broker/dlq"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

func TestMain(m *testing.M) { chtest.Main(m) }

type env struct {
	t   *testing.T
	db  *chtest.DB
	nc  *nats.Conn
	js  jetstream.JetStream
	ns  *natstest.Server
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := chtest.NewDB(t)
	ns := natstest.Start(t)
	nc, js := ns.Connect(t)
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, db: db, nc: nc, js: js, ns: ns, ctx: ctx}
}

// start runs an ingester until the test ends.
func (e *env) start(durable string, opts ...func(*ingest.Config)) *ingest.Ingester {
	e.t.Helper()
	cfg := ingest.Config{
		JS: e.js, DSN: e.db.DSN, BatchRows: 50, BatchInterval: 20 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Durable: durable,
	}
	for _, o := range opts {
		o(&cfg)
	}
	in, err := ingest.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("ingester: %v", err)
		}
	})
	return in
}

func (e *env) publish(ev schemas.Event, msgID string) {
	e.t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	m := &nats.Msg{Subject: topology.Telemetry(ev.Kind), Data: data, Header: nats.Header{}}
	if msgID == "" {
		msgID = ev.EventID.String()
	}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

// publishBatch publishes events as one llm.telemetry.batch message, as the
// workers do; extra elements (raw JSON) are appended after them.
func (e *env) publishBatch(events []schemas.Event, extra ...string) {
	e.t.Helper()
	parts := make([]string, 0, len(events)+len(extra))
	for _, ev := range events {
		data, err := json.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		parts = append(parts, string(data))
	}
	parts = append(parts, extra...)
	if _, err := e.js.Publish(e.ctx, topology.TelemetryBatch, []byte("["+strings.Join(parts, ",")+"]")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(query string) uint64 {
	e.t.Helper()
	n, err := e.db.Count(e.ctx, query)
	if err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *env) waitCount(query string, want uint64) {
	e.t.Helper()
	natstest.CheckFor(e.t, 30*time.Second, 20*time.Millisecond, func() error {
		n, err := e.db.Count(e.ctx, query)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%s = %d, want %d", query, n, want)
		}
		return nil
	})
}

var prices = pricing.New(&config.Config{
	Providers: []config.Provider{{Name: "alpha", Kind: config.KindMock}, {Name: "beta", Kind: config.KindMock}},
	Models: []config.Model{
		{Provider: "alpha", Name: "a1", InputPerMTok: 2, OutputPerMTok: 8},
		{Provider: "beta", Name: "b1", InputPerMTok: 0.5, OutputPerMTok: 1.5},
	},
})

func costOf(provider, model string, in, out int64) *float64 {
	c, ok := prices.Cost(provider, model, in, out)
	if !ok {
		return nil
	}
	return &c
}

// jobEvents are the events a worker pool publishes for job i: every third
// job is rate limited on alpha and falls back to beta; every seventh is
// served by a model without a price.
func jobEvents(i int, base time.Time) []schemas.Event {
	id := fmt.Sprintf("job-%04d", i)
	ts := base.Add(time.Duration(i) * time.Millisecond)
	in, out := int64(100+i), int64(10+i%5)
	tenant := "t" + strconv.Itoa(i%2)
	var evs []schemas.Event
	n := 0
	fallback := false
	if i%3 == 0 {
		n++
		evs = append(evs, schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(id, n, ts), JobID: id, TS: ts,
			Attempt: n, Route: "chat", Provider: "alpha", Model: "a1", Tenant: tenant, StatusCode: 429, ErrorType: schemas.ErrRateLimited,
			Outcome: schemas.OutcomeFallback, CostUSD: costOf("alpha", "a1", 0, 0), DurationMS: 5})
		fallback = true
	}
	provider, model := "beta", "b1"
	if i%7 == 0 {
		model = "unpriced"
	}
	n++
	cost := costOf(provider, model, in, out)
	evs = append(evs, schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(id, n, ts), JobID: id, TS: ts,
		Attempt: n, Route: "chat", Provider: provider, Model: model, Tenant: tenant, StatusCode: 200, Outcome: schemas.OutcomeOK,
		Fallback: fallback, InputTokens: in, OutputTokens: out, CostUSD: cost, DurationMS: int64(20 + i)})
	evs = append(evs, schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: schemas.CompletionEventID(id, 0, ts), JobID: id, TS: ts,
		Attempt: n, Route: "chat", Provider: provider, Model: model, Tenant: tenant, Status: schemas.StatusSucceeded, StatusCode: 200,
		Fallback: fallback, InputTokens: in, OutputTokens: out, CostUSD: cost, TotalMS: int64(30 + i)})
	return evs
}

type totals struct {
	attempts, fallbacks, unknown uint64
	cost                         float64
}

func expected(n int) totals {
	var tt totals
	for i := 0; i < n; i++ {
		for _, ev := range jobEvents(i, time.Now()) {
			if ev.Kind == schemas.EventAttempt {
				tt.attempts++
				continue
			}
			if ev.Fallback {
				tt.fallbacks++
			}
			if ev.CostUSD == nil {
				tt.unknown++
			} else {
				tt.cost += *ev.CostUSD
			}
		}
	}
	return tt
}

func (e *env) checkTotals(n int) {
	e.t.Helper()
	want := expected(n)
	e.waitCount("SELECT count() FROM completions", uint64(n))
	e.waitCount("SELECT count() FROM attempts", want.attempts)
	// A base table's part is visible a moment before its views' parts.
	e.waitCount("SELECT countMerge(requests) FROM completions_1m", uint64(n))
	e.waitCount("SELECT countMerge(calls) FROM attempts_1m", want.attempts)
	if got := e.count("SELECT sum(fallback) FROM completions FINAL"); got != want.fallbacks {
		e.t.Fatalf("fallbacks = %d, want %d", got, want.fallbacks)
	}
	if got := e.count("SELECT sumMerge(unknown_cost) FROM completions_1m"); got != want.unknown {
		e.t.Fatalf("unknown-cost completions = %d, want %d", got, want.unknown)
	}
	var cost float64
	if err := e.db.Conn.QueryRow(e.ctx, "SELECT sumMerge(cost) FROM completions_1m").Scan(&cost); err != nil {
		e.t.Fatal(err)
	}
	if math.Abs(cost-want.cost) > 1e-9 {
		e.t.Fatalf("rollup cost = %v, want %v", cost, want.cost)
	}
}

func TestIngestJobsWithFallbacks(t *testing.T) {
	e := newEnv(t)
	in := e.start("")
	const n = 120
	base := time.Now().UTC().Add(-time.Minute)
	for i := 0; i < n; i++ {
		if i%2 == 0 { // one message per job, as the workers publish
			e.publishBatch(jobEvents(i, base))
			continue
		}
		for _, ev := range jobEvents(i, base) { // one message per event
			e.publish(ev, "")
		}
	}
	e.checkTotals(n)
	// Cost is prices x tokens, and an unknown price stays NULL.
	var cost *float64
	if err := e.db.Conn.QueryRow(e.ctx, "SELECT cost_usd FROM completions WHERE job_id = 'job-0001'").Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if want := (101*0.5 + 11*1.5) / 1e6; cost == nil || math.Abs(*cost-want) > 1e-15 {
		t.Fatalf("cost of job-0001 = %v, want %v", cost, want)
	}
	if err := e.db.Conn.QueryRow(e.ctx, "SELECT cost_usd FROM completions WHERE job_id = 'job-0007'").Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if cost != nil {
		t.Fatalf("unpriced model cost = %v, want NULL", *cost)
	}
	fb := e.count("SELECT count() FROM attempts WHERE outcome = 'fallback' AND status_code = 429 AND provider = 'alpha'")
	if fb != 40 {
		t.Fatalf("fallback attempts = %d, want 40", fb)
	}
	// Everything acked: nothing pending on the consumer.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ci, err := e.js.Consumer(e.ctx, topology.StreamTelemetry, ingest.DefaultDurable)
		if err != nil {
			return err
		}
		info, err := ci.Info(e.ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("ack pending %d, pending %d", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if s := in.Stats(); s.Completions != n || s.Duplicates != 0 {
		t.Fatalf("stats = %+v", s)
	}
	// The Prometheus collector reports the same counters and the lag.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(in.Collector())
	s := in.Stats()
	want := fmt.Sprintf(`
# HELP switchboard_ingest_rows_total Rows written to ClickHouse (after dedup), by table (attempts, completions).
# TYPE switchboard_ingest_rows_total counter
switchboard_ingest_rows_total{table="attempts"} %d
switchboard_ingest_rows_total{table="completions"} %d
# HELP switchboard_ingest_lag_messages Telemetry messages not yet delivered to the ingest consumer (NumPending), read at scrape time (absent until the consumer exists).
# TYPE switchboard_ingest_lag_messages gauge
switchboard_ingest_lag_messages 0
# HELP switchboard_ingest_batches_total Batches written to ClickHouse.
# TYPE switchboard_ingest_batches_total counter
switchboard_ingest_batches_total %d
`, s.Attempts, s.Completions, s.Batches)
	if s.Attempts == 0 || s.Batches == 0 {
		t.Fatalf("stats = %+v", s)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchboard_ingest_rows_total", "switchboard_ingest_lag_messages", "switchboard_ingest_batches_total"); err != nil {
		t.Error(err)
	}
}

func TestClickHouseDownMidIngest(t *testing.T) {
	e := newEnv(t)
	// A short AckWait: held messages must stay leased (InProgress), not be
	// redelivered, however long ClickHouse stays away.
	const ackWait = 1500 * time.Millisecond
	in := e.start("", func(c *ingest.Config) { c.AckWait = ackWait })
	srv := chtest.Server(t)
	base := time.Now().UTC().Add(-time.Minute)
	const n = 90
	for i := 0; i < n/3; i++ {
		for _, ev := range jobEvents(i, base) {
			e.publish(ev, "")
		}
	}
	e.waitCount("SELECT count() FROM completions", n/3)
	srv.Kill()
	for i := n / 3; i < n; i++ {
		for _, ev := range jobEvents(i, base) {
			e.publish(ev, "")
		}
	}
	// The ingester fails, holds its batch and acks nothing new, for longer
	// than two AckWaits (backoff capped at 200ms: 20 failures > 3s).
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if f := in.Stats().Failures; f < 20 {
			return fmt.Errorf("%d failed inserts so far", f)
		}
		return nil
	})
	ci, err := e.js.Consumer(e.ctx, topology.StreamTelemetry, ingest.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ci.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(info.NumAckPending)+info.NumPending == 0 {
		t.Fatal("events acked while ClickHouse was down")
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d held events were redelivered: leases not extended", info.NumRedelivered)
	}
	if err := srv.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.checkTotals(n)
}

func TestRedeliveredAndDuplicateEventsCountOnce(t *testing.T) {
	e := newEnv(t)
	e.start("")
	base := time.Now().UTC().Add(-time.Minute)
	const n = 60
	for i := 0; i < n; i++ {
		for _, ev := range jobEvents(i, base) {
			e.publish(ev, "")
			if i%2 == 0 { // re-sent outside JetStream's dedup (another msg id)
				e.publish(ev, ev.EventID.String()+".again")
			}
		}
	}
	e.checkTotals(n)
	// A second consumer re-reads the whole stream: every event redelivered.
	in2 := e.start("ingest-replay")
	want := expected(n)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if s := in2.Stats(); s.Duplicates < int64(want.attempts)+n {
			return fmt.Errorf("replay skipped %d duplicates so far", s.Duplicates)
		}
		return nil
	})
	if s := in2.Stats(); s.Attempts != 0 || s.Completions != 0 {
		t.Fatalf("replay wrote rows: %+v", s)
	}
	e.checkTotals(n)
}

func TestBadTelemetryGoesToDLQ(t *testing.T) {
	e := newEnv(t)
	in := e.start("")
	pub := func(subject string, data string) {
		if _, err := e.js.Publish(e.ctx, subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().UTC()
	pub(topology.Telemetry(schemas.EventAttempt), `{"v":1,"kind":"attempt",`)
	future := jobEvents(1, base)[0]
	future.V = 2
	data, _ := json.Marshal(future)
	pub(topology.Telemetry(schemas.EventAttempt), string(data))
	pub(topology.Telemetry(schemas.EventCompletion), `{"v":1,"kind":"completion","job_id":"x","ts":"2025-01-01T00:00:00Z"}`)
	pub(topology.TelemetryBatch, `{"v":1}`)
	// A batch with one bad element: the element alone is dead-lettered,
	// the job's good events are stored.
	e.publishBatch(jobEvents(10, base), `{"v":1,"kind":"attempt","event_id":"nope"}`)
	for i := 0; i < 10; i++ {
		for _, ev := range jobEvents(i, base) {
			e.publish(ev, "")
		}
	}
	e.checkTotals(11)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if d := in.Stats().DeadLettered; d != 5 {
			return fmt.Errorf("dead-lettered %d, want 5", d)
		}
		return nil
	})
	stream, err := e.js.Stream(e.ctx, topology.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	wantDead := []struct{ reason, payload string }{
		{"invalid JSON", `{"v":1,"kind":"attempt",`},
		{"unsupported version v=2", string(data)},
		{"event_id is required", ""},
		{"must be a JSON array", `{"v":1}`},
		{"event[", `{"v":1,"kind":"attempt","event_id":"nope"}`},
	}
	for i, want := range wantDead {
		m, err := stream.GetMsg(e.ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != topology.DLQ(topology.DLQTelemetry) {
			t.Fatalf("dead letter on %s", m.Subject)
		}
		reason := m.Header.Get(topology.HeaderError)
		if !strings.Contains(reason, want.reason) {
			t.Fatalf("dead letter %d reason %q, want it to mention %q", i+1, reason, want.reason)
		}
		if want.payload != "" && string(m.Data) != want.payload {
			t.Fatalf("dead letter %d payload %s, want %s", i+1, m.Data, want.payload)
		}
	}
}

func TestStartsWhileClickHouseIsDown(t *testing.T) {
	e := newEnv(t)
	srv := chtest.Server(t)
	srv.Kill()
	in := e.start("")
	base := time.Now().UTC().Add(-time.Minute)
	for i := 0; i < 10; i++ {
		for _, ev := range jobEvents(i, base) {
			e.publish(ev, "")
		}
	}
	select {
	case <-in.Ready():
		t.Fatal("ready without ClickHouse")
	default:
	}
	if err := srv.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.checkTotals(10)
}

// TestReplayTelemetryDeadLetters: telemetry dead-lettered by an ingester
// that could not read it (an older one meeting llm.telemetry.batch, say) is
// stored once replayed; a replayed letter that is still bad comes back to
// the DLQ with its reason.
func TestReplayTelemetryDeadLetters(t *testing.T) {
	e := newEnv(t)
	in := e.start("")
	base := time.Now().UTC()
	job := jobEvents(1, base)
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	// As an older ingester dead-lettered the batch: readable now.
	if _, err := e.js.PublishMsg(e.ctx, topology.DeadLetterMsg(topology.DLQTelemetry, topology.TelemetryBatch,
		"bad telemetry event: invalid JSON: not an object", "old.1", data)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(e.ctx, topology.Telemetry(schemas.EventAttempt), []byte(`{"v":7}`)); err != nil {
		t.Fatal(err)
	}
	// One bad element of a batch: dead-lettered alone, replayed as a batch
	// of one, still bad for the same reason.
	e.publishBatch(nil, `{"v":8}`)
	var entries []dlq.Entry
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if entries, err = dlq.List(e.ctx, e.js, 0, 0); err != nil || len(entries) != 3 {
			return fmt.Errorf("%d dead letters (%v)", len(entries), err)
		}
		return nil
	})
	for _, en := range entries {
		done, err := dlq.Replay(e.ctx, e.js, nil, en.Seq)
		if err != nil || done.Subject != en.Source {
			t.Fatalf("replay %+v: %+v, %v", en, done, err)
		}
	}
	e.waitCount("SELECT count() FROM completions", 1)
	e.waitCount("SELECT count() FROM attempts", uint64(len(job)-1))
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		entries, err = dlq.List(e.ctx, e.js, 0, 0)
		if err != nil || len(entries) != 2 || in.Stats().DeadLettered != 4 {
			return fmt.Errorf("dead letters after replay: %+v (%v), dead-lettered %d", entries, err, in.Stats().DeadLettered)
		}
		return nil
	})
	reasons := entries[0].Reason + " | " + entries[1].Reason
	if !strings.Contains(reasons, "unsupported version v=7") || !strings.Contains(reasons, "event[0]: bad telemetry event: unsupported version v=8") {
		t.Fatalf("reasons after replay: %s", reasons)
	}
}
