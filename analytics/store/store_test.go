package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// The columns of the schema in analytics/README.md are all there.
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
		return &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, n, ts), JobID: job, TS: ts,
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
	if err := db.Conn.QueryRow(ctx, "SELECT cost_usd FROM attempts WHERE event_id = ?", schemas.AttemptEventID("b", 1, ts)).Scan(&cost); err != nil {
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
		evs = append(evs, &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: uuid.New(), JobID: job,
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

// TestMigrationResortsOldTables: tables made by versions 1 and 2 (sorted by
// (toDate(ts), event_id)) are rebuilt sorted by (ts, event_id) with every
// row and rollup row kept, the views feed the new tables exactly once, and
// a re-sort cut off half-way (views dropped, a half-filled copy) completes
// when run again.
func TestMigrationResortsOldTables(t *testing.T) {
	db := preV3DB(t)
	ctx := context.Background()
	sortingKey := func(table string) string {
		var key string
		if err := db.Conn.QueryRow(ctx, "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = ?", table).Scan(&key); err != nil {
			t.Fatal(err)
		}
		return key
	}
	if k := sortingKey("attempts"); k != "toDate(ts), event_id" {
		t.Fatalf("setup: attempts sorted by %q", k)
	}
	ts := time.Now().UTC().Truncate(time.Second)
	mk := func(kind, job string) *schemas.Event {
		return &schemas.Event{V: 1, Kind: kind, EventID: uuid.New(), JobID: job, TS: ts, Attempt: 1, Provider: "p", Model: "m",
			Outcome: schemas.OutcomeOK, Status: schemas.StatusSucceeded, CostUSD: ptr(0.5)}
	}
	insert := func(n int) {
		for _, kind := range []string{schemas.EventAttempt, schemas.EventCompletion} {
			var evs []*schemas.Event
			for i := 0; i < n; i++ {
				evs = append(evs, mk(kind, "j"))
			}
			if got, err := store.Insert(ctx, db.Conn, kind, evs); err != nil || got != n {
				t.Fatalf("insert %s = %d, %v", kind, got, err)
			}
		}
	}
	check := func(want uint64) {
		t.Helper()
		for _, q := range []string{"SELECT count() FROM attempts", "SELECT countMerge(calls) FROM attempts_1m",
			"SELECT count() FROM completions", "SELECT countMerge(requests) FROM completions_1m"} {
			if n, err := db.Count(ctx, q); err != nil || n != want {
				t.Fatalf("%s = %d (%v), want %d", q, n, err, want)
			}
		}
	}
	insert(7)
	// Another process holds the re-sort: refused with a clear error, nothing
	// touched.
	if err := db.Conn.Exec(ctx, "CREATE TABLE attempts__resort_lock (held_since DateTime) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, db.Conn); !errors.Is(err, store.ErrMigration) || !strings.Contains(err.Error(), "another process is re-sorting attempts") {
		t.Fatalf("migrate while locked: %v", err)
	}
	check(7)
	if err := db.Conn.Exec(ctx, "DROP TABLE attempts__resort_lock"); err != nil {
		t.Fatal(err)
	}
	// A first run cut off half-way: views dropped, a partial copy left.
	for _, stmt := range []string{"DROP TABLE attempts_1m_mv", "DROP TABLE attempt_errors_1m_mv",
		"CREATE TABLE attempts__resort AS attempts", "INSERT INTO attempts__resort SELECT * FROM attempts LIMIT 2"} {
		if err := db.Conn.Exec(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	if _, err := store.Migrate(ctx, db.Conn); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"attempts", "completions"} {
		if k := sortingKey(table); k != "ts, event_id" {
			t.Fatalf("%s sorted by %q after migrating", table, k)
		}
	}
	check(7)
	insert(3) // the views feed the rebuilt tables
	check(10)

	// Cut off after the swap, before the views were re-created.
	if err := db.Conn.Exec(ctx, "ALTER TABLE schema_migrations DELETE WHERE version >= 3"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, func() error {
		if v, err := store.Version(ctx, db.Conn); err != nil || v != 2 {
			return fmt.Errorf("version %d, %v", v, err)
		}
		return nil
	})
	for _, stmt := range []string{"DROP TABLE completions_1m_mv", "CREATE TABLE completions__presort AS completions"} {
		if err := db.Conn.Exec(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	if _, err := store.Migrate(ctx, db.Conn); err != nil {
		t.Fatal(err)
	}
	check(10)
	// Cut between the swap's two renames: the table is missing, the full
	// copy waits under its scratch name.
	if err := db.Conn.Exec(ctx, "ALTER TABLE schema_migrations DELETE WHERE version >= 3"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, func() error {
		if v, err := store.Version(ctx, db.Conn); err != nil || v != 2 {
			return fmt.Errorf("version %d, %v", v, err)
		}
		return nil
	})
	for _, stmt := range []string{"DROP TABLE attempts_1m_mv", "DROP TABLE attempt_errors_1m_mv",
		"RENAME TABLE attempts TO attempts__resort", "CREATE TABLE attempts__presort AS attempts__resort"} {
		if err := db.Conn.Exec(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	if _, err := store.Migrate(ctx, db.Conn); err != nil {
		t.Fatal(err)
	}
	check(10)
	insert(1)
	check(11)
	if n, _ := db.Count(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '%sort%'"); n != 0 {
		t.Fatalf("%d scratch tables left", n)
	}
}

// checkFor polls f until it succeeds or 10 s pass.
func checkFor(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInsertSkipsStoredStragglers: the dedup lookup reads only the seconds
// a batch's events fall in; events far apart in time (a late straggler, a
// replay of last week) are still found.
func TestInsertSkipsStoredStragglers(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var evs []*schemas.Event
	for i := 0; i < 200; i++ { // 200 distinct seconds, up to a week apart: more than the lookup's 64 ranges
		job := fmt.Sprintf("job%d", i)
		evs = append(evs, &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: uuid.New(), JobID: job,
			TS: now.Add(-time.Duration(i*i*15) * time.Second), Attempt: 1, Provider: "p", Model: "m", Outcome: schemas.OutcomeOK})
	}
	if n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, evs[:150]); err != nil || n != 150 {
		t.Fatalf("insert = %d, %v", n, err)
	}
	n, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, evs)
	if err != nil || n != 50 {
		t.Fatalf("re-insert = %d, %v; want the 50 new rows only", n, err)
	}
	if calls, _ := db.Count(ctx, "SELECT countMerge(calls) FROM attempts_1m"); calls != 200 {
		t.Fatalf("rollup calls = %d, want 200", calls)
	}
}

// TestInsertRoundTrip: every field lands in its own column (the insert
// appends whole columns, so a swapped pair of same-typed columns would show
// here).
func TestInsertRoundTrip(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	ts := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	att := &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: uuid.New(), JobID: "job-1", TS: ts, Attempt: 3,
		Route: "r", Provider: "p", Model: "m", Tenant: "t", StatusCode: 429, ErrorType: "rate_limited", Outcome: "fallback",
		InputTokens: 11, OutputTokens: 12, CostUSD: ptr(0.25), DurationMS: 13}
	comp := &schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: uuid.New(), JobID: "job-1", TS: ts, Attempt: 4,
		Route: "r", Provider: "p", Model: "m", Tenant: "t", Tier: "pro", Task: "chat", Status: "failed", StatusCode: 503,
		ErrorType: "unavailable", Fallback: true, InputTokens: 21, OutputTokens: 22, CostUSD: nil,
		QueuedMS: 23, TTFTMS: 24, ProviderMS: 25, TotalMS: 26}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, []*schemas.Event{att}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventCompletion, []*schemas.Event{comp}); err != nil {
		t.Fatal(err)
	}
	var a struct {
		id                                                 uuid.UUID
		job, route, provider, model, tenant, errType, outc string
		ts                                                 time.Time
		attempt, code                                      uint16
		in, out, dur                                       uint64
		cost                                               *float64
	}
	if err := db.Conn.QueryRow(ctx, `SELECT event_id, job_id, ts, attempt, route, provider, model, tenant, status_code,
		error_type, outcome, input_tokens, output_tokens, cost_usd, duration_ms FROM attempts`).Scan(&a.id, &a.job, &a.ts, &a.attempt,
		&a.route, &a.provider, &a.model, &a.tenant, &a.code, &a.errType, &a.outc, &a.in, &a.out, &a.cost, &a.dur); err != nil {
		t.Fatal(err)
	}
	if a.id != att.EventID || a.job != "job-1" || !a.ts.Equal(ts) || a.attempt != 3 || a.route != "r" || a.provider != "p" ||
		a.model != "m" || a.tenant != "t" || a.code != 429 || a.errType != "rate_limited" || a.outc != "fallback" ||
		a.in != 11 || a.out != 12 || a.cost == nil || *a.cost != 0.25 || a.dur != 13 {
		t.Fatalf("attempt row = %+v", a)
	}
	var c struct {
		id                                                               uuid.UUID
		job, route, provider, model, tenant, tier, task, status, errType string
		ts                                                               time.Time
		code, attempts                                                   uint16
		fallback                                                         uint8
		in, out, queued, ttft, providerMS, total                         uint64
		cost                                                             *float64
	}
	if err := db.Conn.QueryRow(ctx, `SELECT event_id, job_id, ts, route, provider, model, tenant, tier, task, status, error_type,
		status_code, attempts, fallback, input_tokens, output_tokens, cost_usd, queued_ms, ttft_ms, provider_ms, total_ms
		FROM completions`).Scan(&c.id, &c.job, &c.ts, &c.route, &c.provider, &c.model, &c.tenant, &c.tier, &c.task, &c.status,
		&c.errType, &c.code, &c.attempts, &c.fallback, &c.in, &c.out, &c.cost, &c.queued, &c.ttft, &c.providerMS, &c.total); err != nil {
		t.Fatal(err)
	}
	if c.id != comp.EventID || c.job != "job-1" || !c.ts.Equal(ts) || c.route != "r" || c.provider != "p" || c.model != "m" ||
		c.tenant != "t" || c.tier != "pro" || c.task != "chat" || c.status != "failed" || c.errType != "unavailable" ||
		c.code != 503 || c.attempts != 4 || c.fallback != 1 || c.in != 21 || c.out != 22 || c.cost != nil ||
		c.queued != 23 || c.ttft != 24 || c.providerMS != 25 || c.total != 26 {
		t.Fatalf("completion row = %+v", c)
	}
}

// preV3DB is a database as versions 1 and 2 left it before version 3: base
// tables sorted by (toDate(ts), event_id), versions 1 and 2 recorded.
func preV3DB(t *testing.T) *chtest.DB {
	t.Helper()
	db := chtest.NewDB(t)
	ctx := context.Background()
	for _, table := range []string{"completions_1m_mv", "attempts_1m_mv", "attempt_errors_1m_mv", "completions_1m",
		"attempts_1m", "attempt_errors_1m", "completions", "attempts", "schema_migrations"} {
		if err := db.Conn.Exec(ctx, "DROP TABLE "+table); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range store.Migrations[:2] {
		for _, stmt := range m.Statements {
			if err := db.Conn.Exec(ctx, strings.Replace(stmt, "ORDER BY (ts, event_id)", "ORDER BY (toDate(ts), event_id)", 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := store.Applied(ctx, db.Conn); err != nil { // creates schema_migrations
		t.Fatal(err)
	}
	rec, err := db.Conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range store.Migrations[:2] {
		if err := rec.Append(m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Send(); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestConcurrentMigrationsOfOldTables: several processes starting at once on
// tables made before version 3 (each retrying, as the ingester does) leave
// one re-sorted copy of every row.
func TestConcurrentMigrationsOfOldTables(t *testing.T) {
	db := preV3DB(t)
	ctx := context.Background()
	const rows = 20_000
	if err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO attempts (event_id, job_id, ts, provider)
SELECT generateUUIDv4(), toString(number), toDateTime(now() - (number %% 3600)), 'p' FROM system.numbers LIMIT %d`, rows)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			var err error
			for try := 0; try < 100; try++ {
				if _, err = store.Migrate(ctx, db.Conn); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			errs <- err
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	var key string
	if err := db.Conn.QueryRow(ctx, "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'attempts'").Scan(&key); err != nil || key != "ts, event_id" {
		t.Fatalf("attempts sorted by %q (%v)", key, err)
	}
	for q, want := range map[string]uint64{
		"SELECT count() FROM attempts":              rows,
		"SELECT countMerge(calls) FROM attempts_1m": rows,
		"SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '%sort%'": 0,
	} {
		if n, err := db.Count(ctx, q); err != nil || n != want {
			t.Fatalf("%s = %d (%v), want %d", q, n, err, want)
		}
	}
}
