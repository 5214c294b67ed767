package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migration is one versioned schema step. Every statement is idempotent
// (IF NOT EXISTS), and so is Apply, so a step interrupted half-way is safe
// to re-run.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
	// Apply, when set, runs after Statements: a step that needs to look at
	// the schema before it changes it.
	Apply func(ctx context.Context, conn driver.Conn) error
}

// The DDL runs on ClickHouse 18.16 and current releases: no LowCardinality,
// DateTime64, Map or JSON; no SimpleAggregateFunction; rollup state columns
// are named apart from source columns (18.16 resolves aliases globally).
//
// Base tables are ReplacingMergeTree sorted by (ts, event_id). Version 1
// created them sorted by (toDate(ts), event_id) until version 3 came, which
// re-sorts such tables (new databases get the new key at once, and version 3
// finds nothing to do). An event id always comes with the same ts, so a
// redelivered event that slipped past the ingester's
// dedup lookup collapses on merge, FINAL / uniqExact(event_id) queries never
// double-count, and the dedup lookup reads only the batch's time ranges.
const (
	ddlMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version UInt32,
	name String,
	applied_at DateTime
) ENGINE = ReplacingMergeTree() ORDER BY version`

	ddlCompletions = `CREATE TABLE IF NOT EXISTS completions (
	event_id UUID,
	job_id String,
	ts DateTime,
	route String,
	provider String,
	model String,
	tenant String,
	tier String,
	task String,
	status String,
	error_type String,
	status_code UInt16,
	attempts UInt16,
	fallback UInt8,
	input_tokens UInt64,
	output_tokens UInt64,
	cost_usd Nullable(Float64),
	queued_ms UInt64,
	ttft_ms UInt64,
	provider_ms UInt64,
	total_ms UInt64,
	ingested_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, event_id)`

	ddlAttempts = `CREATE TABLE IF NOT EXISTS attempts (
	event_id UUID,
	job_id String,
	ts DateTime,
	attempt UInt16,
	route String,
	provider String,
	model String,
	tenant String,
	status_code UInt16,
	error_type String,
	outcome String,
	input_tokens UInt64,
	output_tokens UInt64,
	cost_usd Nullable(Float64),
	duration_ms UInt64,
	ingested_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, event_id)`

	ddlCompletions1m = `CREATE TABLE IF NOT EXISTS completions_1m (
	minute DateTime,
	route String,
	provider String,
	model String,
	tenant String,
	status String,
	requests AggregateFunction(count),
	succeeded AggregateFunction(sum, UInt64),
	fallbacks AggregateFunction(sum, UInt64),
	in_tokens AggregateFunction(sum, UInt64),
	out_tokens AggregateFunction(sum, UInt64),
	cost AggregateFunction(sum, Float64),
	unknown_cost AggregateFunction(sum, UInt64),
	latency AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, route, provider, model, tenant, status)`

	ddlAttempts1m = `CREATE TABLE IF NOT EXISTS attempts_1m (
	minute DateTime,
	provider String,
	model String,
	route String,
	tenant String,
	calls AggregateFunction(count),
	ok_calls AggregateFunction(sum, UInt64),
	fallback_calls AggregateFunction(sum, UInt64),
	in_tokens AggregateFunction(sum, UInt64),
	out_tokens AggregateFunction(sum, UInt64),
	cost AggregateFunction(sum, Float64),
	unknown_cost AggregateFunction(sum, UInt64),
	latency AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, provider, model, route, tenant)`

	ddlErrors1m = `CREATE TABLE IF NOT EXISTS attempt_errors_1m (
	minute DateTime,
	provider String,
	model String,
	status_code UInt16,
	error_type String,
	calls AggregateFunction(count)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, provider, model, status_code, error_type)`
)

// rollup is a per-minute AggregatingMergeTree fed by a materialized view
// over a base table; Repair reuses its SELECT to add missed rows.
type rollup struct {
	table, view, source string
	// columns and groupBy of the view's SELECT; where filters source rows.
	columns, where, groupBy string
	// count is the -Merge expression counting source rows in the rollup.
	count string
}

func (r rollup) selectFrom(where string) string {
	return "SELECT\n" + r.columns + "\nFROM " + r.source + "\n" + where + "\nGROUP BY " + r.groupBy
}

func (r rollup) viewDDL() string {
	where := ""
	if r.where != "" {
		where = "WHERE " + r.where
	}
	return "CREATE MATERIALIZED VIEW IF NOT EXISTS " + r.view + " TO " + r.table + " AS\n" + r.selectFrom(where)
}

var (
	rollupCompletions = rollup{
		table: "completions_1m", view: "completions_1m_mv", source: TableCompletions,
		columns: `	toStartOfMinute(ts) AS minute,
	route, provider, model, tenant, status,
	countState() AS requests,
	sumState(toUInt64(status = 'succeeded')) AS succeeded,
	sumState(toUInt64(fallback)) AS fallbacks,
	sumState(input_tokens) AS in_tokens,
	sumState(output_tokens) AS out_tokens,
	sumState(ifNull(cost_usd, 0.)) AS cost,
	sumState(toUInt64(isNull(cost_usd))) AS unknown_cost,
	quantilesState(0.5, 0.95, 0.99)(total_ms) AS latency`,
		groupBy: "minute, route, provider, model, tenant, status",
		count:   "countMerge(requests)",
	}
	rollupAttempts = rollup{
		table: "attempts_1m", view: "attempts_1m_mv", source: TableAttempts,
		columns: `	toStartOfMinute(ts) AS minute,
	provider, model, route, tenant,
	countState() AS calls,
	sumState(toUInt64(outcome = 'ok')) AS ok_calls,
	sumState(toUInt64(outcome = 'fallback')) AS fallback_calls,
	sumState(input_tokens) AS in_tokens,
	sumState(output_tokens) AS out_tokens,
	sumState(ifNull(cost_usd, 0.)) AS cost,
	sumState(toUInt64(isNull(cost_usd))) AS unknown_cost,
	quantilesState(0.5, 0.95, 0.99)(duration_ms) AS latency`,
		groupBy: "minute, provider, model, route, tenant",
		count:   "countMerge(calls)",
	}
	rollupErrors = rollup{
		table: "attempt_errors_1m", view: "attempt_errors_1m_mv", source: TableAttempts,
		columns: `	toStartOfMinute(ts) AS minute,
	provider, model, status_code, error_type,
	countState() AS calls`,
		where:   "outcome != 'ok'",
		groupBy: "minute, provider, model, status_code, error_type",
		count:   "countMerge(calls)",
	}
	// rollupsOf lists the rollups fed by each base table.
	rollupsOf = map[string][]rollup{
		TableCompletions: {rollupCompletions},
		TableAttempts:    {rollupAttempts, rollupErrors},
	}
)

// Migrations is the ordered schema history; append, never edit (version 1's
// sorting key changed with version 3, which reconciles tables made before).
var Migrations = []Migration{
	{Version: 1, Name: "completions and attempts", Statements: []string{ddlCompletions, ddlAttempts}},
	{Version: 2, Name: "per-minute rollups", Statements: []string{
		ddlCompletions1m, rollupCompletions.viewDDL(), ddlAttempts1m, rollupAttempts.viewDDL(), ddlErrors1m, rollupErrors.viewDDL(),
	}},
	{Version: 3, Name: "base tables sorted by (ts, event_id)", Apply: func(ctx context.Context, conn driver.Conn) error {
		for _, table := range []string{TableCompletions, TableAttempts} {
			if err := resort(ctx, conn, table, "ts, event_id"); err != nil {
				return err
			}
		}
		return nil
	}},
	{Version: 4, Name: "request and response bodies of completions (analytics.log_bodies)", Apply: addBodyColumns},
}

// resort rebuilds a base table with a new sorting key, keeping its rows, its
// engine settings and its rollups' views. ClickHouse cannot change a sorting
// key in place, so it copies the rows into a new table (<table>__resort) and
// swaps the two by renaming. One process does it at a time: it holds a lock
// table (<table>__resort_lock; others fail with ErrMigration and the
// ingester retries). A lock left by a process that died stays until an
// operator drops it (the error says so): a copy may legitimately run long,
// and taking the lock over could run two copies at once. Every step can be
// re-run after a crash: the copy is redone until the swap, a swap cut
// between its two renames is completed, and the views are re-created after
// it. The views are dropped while the
// table is swapped (a view follows the renamed table on some releases and
// the name on others), so nothing else may insert meanwhile: stop ingesters
// of older versions before upgrading.
func resort(ctx context.Context, conn driver.Conn, table, sortingKey string) error {
	next, old, lock := table+"__resort", table+"__presort", table+"__resort_lock"
	exec := func(q string) error {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("re-sort %s: %s: %w", table, q, err)
		}
		return nil
	}
	key, found, err := tableSortingKey(ctx, conn, table)
	if err != nil {
		return err
	}
	if !found || key != sortingKey {
		release, err := lockResort(ctx, conn, table, lock)
		if err != nil {
			return err
		}
		defer release()
		if err := swapResorted(ctx, conn, table, next, old, sortingKey, exec); err != nil {
			return err
		}
	}
	for _, r := range rollupsOf[table] {
		if err := exec(r.viewDDL()); err != nil {
			return err
		}
	}
	if _, pending, err := tableSortingKey(ctx, conn, next); err != nil {
		return err
	} else if pending {
		return fmt.Errorf("re-sort %s: %s still exists: another process is re-sorting, or a run stopped between its renames", table, next)
	}
	return exec("DROP TABLE IF EXISTS " + old)
}

// swapResorted does resort's copy and swap under its lock.
func swapResorted(ctx context.Context, conn driver.Conn, table, next, old, sortingKey string, exec func(string) error) error {
	key, found, err := tableSortingKey(ctx, conn, table)
	if err != nil {
		return err
	}
	if !found {
		// A swap cut between its renames: the copy is complete.
		if _, ok, err := tableSortingKey(ctx, conn, next); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("re-sort %s: the table is missing and so is %s; restore it from %s if that exists", table, next, old)
		}
		return exec("RENAME TABLE " + next + " TO " + table)
	}
	if key == sortingKey {
		return nil // another process finished meanwhile
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = ?", table).Scan(&engine); err != nil {
		return fmt.Errorf("re-sort %s: read its engine: %w", table, err)
	}
	if strings.Contains(engine, "Replicated") || strings.Contains(engine, "Shared") {
		return fmt.Errorf("re-sort %s: its engine %q keeps replicas in step through a coordination path, which a copy cannot reuse; re-create it sorted by (%s) by hand", table, engine, sortingKey)
	}
	oldOrder, newOrder := "ORDER BY ("+key+")", "ORDER BY ("+sortingKey+")"
	if !strings.Contains(engine, oldOrder) {
		return fmt.Errorf("re-sort %s: cannot find %q in its engine %q; re-create it sorted by (%s)", table, oldOrder, engine, sortingKey)
	}
	for _, r := range rollupsOf[table] {
		if err := exec("DROP TABLE IF EXISTS " + r.view); err != nil {
			return err
		}
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + next,
		"CREATE TABLE " + next + " AS " + table + " ENGINE = " + strings.Replace(engine, oldOrder, newOrder, 1),
		"INSERT INTO " + next + " SELECT * FROM " + table,
		"DROP TABLE IF EXISTS " + old,
		"RENAME TABLE " + table + " TO " + old,
		"RENAME TABLE " + next + " TO " + table,
	} {
		if err := exec(q); err != nil {
			return err
		}
	}
	return nil
}

// tableSortingKey returns a table's sorting key and whether it exists.
func tableSortingKey(ctx context.Context, conn driver.Conn, table string) (string, bool, error) {
	rows, err := conn.Query(ctx, "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = ?", table)
	if err != nil {
		return "", false, fmt.Errorf("read the sorting key of %s: %w", table, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return "", false, rows.Err()
	}
	var key string
	if err := rows.Scan(&key); err != nil {
		return "", false, fmt.Errorf("read the sorting key of %s: %w", table, err)
	}
	return key, true, rows.Err()
}

// lockResort creates the lock table of a re-sort; it fails if another
// process holds it.
func lockResort(ctx context.Context, conn driver.Conn, table, lock string) (release func(), err error) {
	if err := conn.Exec(ctx, "CREATE TABLE "+lock+" (held_since DateTime) ENGINE = Memory"); err != nil {
		if _, held, qerr := tableSortingKey(ctx, conn, lock); qerr == nil && held {
			return nil, fmt.Errorf("another process is re-sorting %s (it holds %s): retry when it is done, or drop %s if no process is", table, lock, lock)
		}
		return nil, fmt.Errorf("re-sort %s: create the lock %s: %w", table, lock, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+lock)
	}, nil
}

// Applied returns the versions recorded in schema_migrations.
func Applied(ctx context.Context, conn driver.Conn) (map[uint32]bool, error) {
	if err := conn.Exec(ctx, ddlMigrations); err != nil {
		return nil, fmt.Errorf("%w: create schema_migrations: %v", ErrMigration, err)
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("%w: read schema_migrations: %v", ErrMigration, err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%w: read schema_migrations: %v", ErrMigration, err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

// Migrate applies every migration not yet recorded and returns the versions
// it applied. Running it again changes nothing.
func Migrate(ctx context.Context, conn driver.Conn) ([]uint32, error) {
	applied, err := Applied(ctx, conn)
	if err != nil {
		return nil, err
	}
	var done []uint32
	for _, m := range Migrations {
		if applied[m.Version] {
			continue
		}
		for _, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return done, fmt.Errorf("%w: version %d (%s): %v", ErrMigration, m.Version, m.Name, err)
			}
		}
		if m.Apply != nil {
			if err := m.Apply(ctx, conn); err != nil {
				return done, fmt.Errorf("%w: version %d (%s): %v", ErrMigration, m.Version, m.Name, err)
			}
		}
		if err := record(ctx, conn, m); err != nil {
			return done, fmt.Errorf("%w: record version %d: %v", ErrMigration, m.Version, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// Pending returns the migrations not yet applied, changing nothing (a
// database without schema_migrations has every migration pending). The
// read-only commands (stats) use it instead of Migrate.
func Pending(ctx context.Context, conn driver.Conn) ([]Migration, error) {
	applied := map[uint32]bool{}
	if _, ok, err := tableSortingKey(ctx, conn, "schema_migrations"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMigration, err)
	} else if ok {
		if applied, err = Applied(ctx, conn); err != nil {
			return nil, err
		}
	}
	var pending []Migration
	for _, m := range Migrations {
		if !applied[m.Version] {
			pending = append(pending, m)
		}
	}
	return pending, nil
}

// Version returns the highest applied migration version (0 when none).
func Version(ctx context.Context, conn driver.Conn) (uint32, error) {
	applied, err := Applied(ctx, conn)
	if err != nil {
		return 0, err
	}
	var v uint32
	for k := range applied {
		v = max(v, k)
	}
	return v, nil
}

// record notes an applied migration (a native batch: plain INSERT ... VALUES
// through Exec does not work against 18.16).
func record(ctx context.Context, conn driver.Conn, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	if err := batch.Append(m.Version, m.Name, time.Now().UTC().Truncate(time.Second)); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}
