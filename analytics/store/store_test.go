package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/schemas"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func ptr(f float64) *float64 { return &f }

func TestMigrateIsIdempotent(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	applied, err := store.Migrate(ctx, db.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	v, err := store.Version(ctx, db.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := store.Migrations[len(store.Migrations)-1].Version; v != want {
		t.Fatalf("version = %d, want %d", v, want)
	}
	for _, table := range []string{"completions", "attempts", "completions_1m", "attempts_1m", "attempt_errors_1m"} {
		n, err := db.Count(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db.Name, table)
		if err != nil || n != 1 {
			t.Fatalf("table %s: n=%d err=%v", table, n, err)
		}
	}
	// Columns of DESIGN.md are all there.
	for table, cols := range map[string][]string{
		"completions": {"event_id", "job_id", "ts", "route", "provider", "model", "tenant", "tier", "task", "status", "error_type", "attempts", "fallback", "input_tokens", "output_tokens", "cost_usd", "queued_ms", "ttft_ms", "total_ms"},
		"attempts":    {"event_id", "job_id", "ts", "attempt", "provider", "model", "tenant", "status_code", "error_type", "outcome", "input_tokens", "output_tokens", "cost_usd", "duration_ms"},
	} {
		for _, c := range cols {
			n, err := db.Count(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?", db.Name, table, c)
			if err != nil || n != 1 {
				t.Errorf("%s.%s missing (err=%v)", table, c, err)
			}
		}
	}
}

func TestInsertSkipsStoredAndRepeatedEvents(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	ts := time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)
	mk := func(job string, n int, cost *float64) *schemas.Event {
		return &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, n), JobID: job, TS: ts,
			Attempt: n, Provider: "p", Model: "m", Outcome: schemas.OutcomeOK, InputTokens: 10, OutputTokens: 5, CostUSD: cost, DurationMS: 100}
	}
	first := []*schemas.Event{mk("a", 1, ptr(0.5)), mk("b", 1, nil), mk("a", 1, ptr(0.5))}
	n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, first)
	if err != nil || n != 2 {
		t.Fatalf("insert = %d, %v; want 2 rows", n, err)
	}
	again := []*schemas.Event{mk("a", 1, ptr(0.5)), mk("c", 1, ptr(1))}
	n, err = store.Insert(ctx, db.Conn, schemas.EventAttempt, again)
	if err != nil || n != 1 {
		t.Fatalf("re-insert = %d, %v; want 1 new row", n, err)
	}
	rows, _ := db.Count(ctx, "SELECT count() FROM attempts")
	calls, _ := db.Count(ctx, "SELECT countMerge(calls) FROM attempts_1m")
	unknown, _ := db.Count(ctx, "SELECT sumMerge(unknown_cost) FROM attempts_1m")
	if rows != 3 || calls != 3 || unknown != 1 {
		t.Fatalf("rows=%d rollup calls=%d unknown=%d, want 3, 3, 1", rows, calls, unknown)
	}
	var cost *float64
	if err := db.Conn.QueryRow(ctx, "SELECT cost_usd FROM attempts WHERE event_id = ?", schemas.AttemptEventID("b", 1)).Scan(&cost); err != nil {
		t.Fatal(err)
	}
	if cost != nil {
		t.Fatalf("unknown cost stored as %v, want NULL", *cost)
	}
}

func TestOptionsRefusesHTTP(t *testing.T) {
	for _, dsn := range []string{"http://127.0.0.1:8123/default", "clickhouse://127.0.0.1:9000/bad-name"} {
		if _, err := store.Options(dsn); !errors.Is(err, store.ErrDSN) {
			t.Errorf("Options(%q) = %v, want ErrDSN", dsn, err)
		}
	}
	if _, err := store.Options("clickhouse://u:secret@127.0.0.1:9000/db"); err != nil {
		t.Fatal(err)
	}
	_ = uuid.Nil
}

// TestInsertRepairsRollupsOfAnInterruptedInsert: an insert cut off after the
// base table's part but before its views' parts leaves events stored but not
// rolled up; re-sending them fills the rollups exactly once.
func TestInsertRepairsRollupsOfAnInterruptedInsert(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	ts := time.Now().UTC().Add(-5 * time.Minute)
	var evs []*schemas.Event
	for i := 0; i < 10; i++ {
		job := "job" + string(rune('a'+i))
		outcome := schemas.OutcomeOK
		if i%2 == 0 {
			outcome = schemas.OutcomeFallback
		}
		evs = append(evs, &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, 1), JobID: job,
			TS: ts.Add(time.Duration(i) * 20 * time.Second), Attempt: 1, Provider: "p", Model: "m", Outcome: outcome,
			InputTokens: 10, CostUSD: ptr(0.25), DurationMS: int64(10 * i)})
	}
	// The first half lands normally.
	if n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, evs[:5]); err != nil || n != 5 {
		t.Fatalf("insert = %d, %v", n, err)
	}
	// The second half reaches the base table only (its views detached).
	for _, v := range []string{"attempts_1m_mv", "attempt_errors_1m_mv"} {
		if err := db.Conn.Exec(ctx, "DETACH TABLE "+v); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, evs[5:]); err != nil || n != 5 {
		t.Fatalf("insert = %d, %v", n, err)
	}
	for _, v := range []string{"attempts_1m_mv", "attempt_errors_1m_mv"} {
		if err := db.Conn.Exec(ctx, "ATTACH TABLE "+v); err != nil {
			t.Fatal(err)
		}
	}
	if calls, _ := db.Count(ctx, "SELECT countMerge(calls) FROM attempts_1m"); calls != 5 {
		t.Fatalf("setup: rollup calls = %d, want 5", calls)
	}
	// The retry (the interrupted batch re-sent) writes no row, fixes the
	// rollups; re-sending everything again changes nothing.
	for round, resend := range [][]*schemas.Event{evs[5:], evs, evs[3:7]} {
		n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, resend)
		if err != nil || n != 0 {
			t.Fatalf("retry = %d, %v; want 0 rows", n, err)
		}
		rows, _ := db.Count(ctx, "SELECT count() FROM attempts")
		calls, _ := db.Count(ctx, "SELECT countMerge(calls) FROM attempts_1m")
		errs, _ := db.Count(ctx, "SELECT countMerge(calls) FROM attempt_errors_1m")
		fb, _ := db.Count(ctx, "SELECT sumMerge(fallback_calls) FROM attempts_1m")
		tokens, _ := db.Count(ctx, "SELECT sumMerge(in_tokens) FROM attempts_1m")
		if rows != 10 || calls != 10 || errs != 5 || fb != 5 || tokens != 100 {
			t.Fatalf("round %d: rows=%d calls=%d errors=%d fallbacks=%d tokens=%d; want 10 10 5 5 100", round, rows, calls, errs, fb, tokens)
		}
	}
}
