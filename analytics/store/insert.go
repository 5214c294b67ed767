package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Table names.
const (
	TableCompletions = "completions"
	TableAttempts    = "attempts"
)

// TableFor returns the table of an event kind.
func TableFor(kind string) (string, bool) {
	switch kind {
	case schemas.EventCompletion:
		return TableCompletions, true
	case schemas.EventAttempt:
		return TableAttempts, true
	}
	return "", false
}

// Insert writes events of one kind (schemas.EventAttempt or
// schemas.EventCompletion) as one native batch. It skips events whose id is
// already stored (an earlier try that landed although its ack did not) or
// repeated within events, so rollups never double-count, and repairs the
// rollups of such stored events when the earlier try was cut off between the
// base table and its views (RepairRollups). It returns how many rows it
// wrote; on error nothing may be acked and the call may be repeated, except
// for ErrRollupDrift, a warning returned with the rows written.
func Insert(ctx context.Context, conn driver.Conn, kind string, events []*schemas.Event) (int, error) {
	table, ok := TableFor(kind)
	if !ok {
		return 0, fmt.Errorf("unknown event kind %q", kind)
	}
	fresh := uniqueEvents(events)
	if len(fresh) == 0 {
		return 0, nil
	}
	var drift error
	stored, err := Existing(ctx, conn, table, fresh)
	if err != nil {
		return 0, err
	}
	if len(stored) > 0 {
		// Already stored: an earlier try landed. Make sure its rollup rows
		// did too (see RepairRollups).
		if _, err := RepairRollups(ctx, conn, table, storedEvents(fresh, stored)); err != nil {
			if !errors.Is(err, ErrRollupDrift) {
				return 0, err
			}
			drift = err
		}
		kept := fresh[:0]
		for _, e := range fresh {
			if !stored[e.EventID] {
				kept = append(kept, e)
			}
		}
		fresh = kept
	}
	if len(fresh) == 0 {
		return 0, drift
	}
	columns := insertColumns[table]
	if table == TableCompletions && !anyBodies(fresh) {
		// Metadata only: the insert does not depend on migration 4.
		columns = columns[:len(columns)-len(bodyColumns)]
	}
	batch, err := conn.PrepareBatch(ctx, insertQuery(table, columns))
	if err != nil {
		return 0, fmt.Errorf("%w: prepare insert into %s: %v", ErrUnavailable, table, err)
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	// Whole columns at once: the driver copies typed slices instead of
	// converting every value of every row.
	for i, c := range columns {
		if err := batch.Column(i).Append(c.values(fresh)); err != nil {
			return 0, fmt.Errorf("append column %s of %s: %w", c.name, table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return 0, fmt.Errorf("%w: insert %d rows into %s: %v", ErrUnavailable, len(fresh), table, err)
	}
	return len(fresh), drift
}

// insertColumn is one column of a base table's insert and how the events
// fill it.
type insertColumn struct {
	name   string
	values func(events []*schemas.Event) any
}

// column is the column name, filled with one field of every event, in order.
func column[T any](name string, field func(*schemas.Event) T) insertColumn {
	return insertColumn{name: name, values: func(events []*schemas.Event) any {
		out := make([]T, len(events))
		for i, e := range events {
			out[i] = field(e)
		}
		return out
	}}
}

// insertQuery is the INSERT of columns into table, in their order.
func insertQuery(table string, columns []insertColumn) string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")"
}

// insertColumns are the columns the ingester writes, per base table.
var insertColumns = map[string][]insertColumn{
	TableAttempts: {
		column("event_id", func(e *schemas.Event) uuid.UUID { return e.EventID }),
		column("job_id", func(e *schemas.Event) string { return e.JobID }),
		column("ts", func(e *schemas.Event) time.Time { return e.TS.UTC() }),
		column("attempt", func(e *schemas.Event) uint16 { return u16(int64(e.Attempt)) }),
		column("route", func(e *schemas.Event) string { return e.Route }),
		column("provider", func(e *schemas.Event) string { return e.Provider }),
		column("model", func(e *schemas.Event) string { return e.Model }),
		column("tenant", func(e *schemas.Event) string { return e.Tenant }),
		column("status_code", func(e *schemas.Event) uint16 { return u16(int64(e.StatusCode)) }),
		column("error_type", func(e *schemas.Event) string { return e.ErrorType }),
		column("outcome", func(e *schemas.Event) string { return e.Outcome }),
		column("input_tokens", func(e *schemas.Event) uint64 { return u64(e.InputTokens) }),
		column("output_tokens", func(e *schemas.Event) uint64 { return u64(e.OutputTokens) }),
		column("cost_usd", func(e *schemas.Event) *float64 { return e.CostUSD }),
		column("duration_ms", func(e *schemas.Event) uint64 { return u64(e.DurationMS) }),
	},
	TableCompletions: {
		column("event_id", func(e *schemas.Event) uuid.UUID { return e.EventID }),
		column("job_id", func(e *schemas.Event) string { return e.JobID }),
		column("ts", func(e *schemas.Event) time.Time { return e.TS.UTC() }),
		column("route", func(e *schemas.Event) string { return e.Route }),
		column("provider", func(e *schemas.Event) string { return e.Provider }),
		column("model", func(e *schemas.Event) string { return e.Model }),
		column("tenant", func(e *schemas.Event) string { return e.Tenant }),
		column("tier", func(e *schemas.Event) string { return e.Tier }),
		column("task", func(e *schemas.Event) string { return e.Task }),
		column("status", func(e *schemas.Event) string { return e.Status }),
		column("error_type", func(e *schemas.Event) string { return e.ErrorType }),
		column("status_code", func(e *schemas.Event) uint16 { return u16(int64(e.StatusCode)) }),
		column("attempts", func(e *schemas.Event) uint16 { return u16(int64(e.Attempt)) }),
		column("fallback", func(e *schemas.Event) uint8 { return b8(e.Fallback) }),
		column("input_tokens", func(e *schemas.Event) uint64 { return u64(e.InputTokens) }),
		column("output_tokens", func(e *schemas.Event) uint64 { return u64(e.OutputTokens) }),
		column("cost_usd", func(e *schemas.Event) *float64 { return e.CostUSD }),
		column("queued_ms", func(e *schemas.Event) uint64 { return u64(e.QueuedMS) }),
		column("ttft_ms", func(e *schemas.Event) uint64 { return u64(e.TTFTMS) }),
		column("provider_ms", func(e *schemas.Event) uint64 { return u64(e.ProviderMS) }),
		column("total_ms", func(e *schemas.Event) uint64 { return u64(e.TotalMS) }),
		column("request_body", func(e *schemas.Event) string { return e.RequestBody }),
		column("response_body", func(e *schemas.Event) string { return e.ResponseBody }),
	},
}

// uniqueEvents drops repeated event ids, keeping the first.
func uniqueEvents(events []*schemas.Event) []*schemas.Event {
	seen := make(map[uuid.UUID]struct{}, len(events))
	out := make([]*schemas.Event, 0, len(events))
	for _, e := range events {
		if _, dup := seen[e.EventID]; dup {
			continue
		}
		seen[e.EventID] = struct{}{}
		out = append(out, e)
	}
	return out
}

// Existing returns which of the events' ids are already stored in table. An
// event id always comes with the same ts (schemas.AttemptEventID,
// schemas.CompletionEventID), which leads the sorting key, so the lookup reads
// only the granules of the seconds the events fall in (tsRanges), however
// large the table grows.
func Existing(ctx context.Context, conn driver.Conn, table string, events []*schemas.Event) (map[uuid.UUID]bool, error) {
	if len(events) == 0 {
		return nil, nil
	}
	// The ids travel as an external table (a native data block), not as a
	// SQL IN list that the server would have to parse.
	ids, err := ext.NewTable("batch_ids", ext.Column("id", "UUID"))
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := ids.Append(e.EventID); err != nil {
			return nil, fmt.Errorf("dedup lookup in %s: %w", table, err)
		}
	}
	query := fmt.Sprintf("SELECT event_id FROM %s WHERE (%s) AND event_id IN batch_ids", table, tsRanges(events))
	ctx = clickhouse.Context(ctx, clickhouse.WithExternalTable(ids))
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%w: dedup lookup in %s: %v", ErrUnavailable, table, err)
	}
	defer rows.Close()
	found := map[uuid.UUID]bool{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%w: dedup lookup in %s: %v", ErrUnavailable, table, err)
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: dedup lookup in %s: %v", ErrUnavailable, table, err)
	}
	return found, nil
}

func u64(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func u16(v int64) uint16 {
	switch {
	case v < 0:
		return 0
	case v > 65535:
		return 65535
	}
	return uint16(v)
}

func b8(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// maxTSRanges bounds the ranges of a tsCondition.
const maxTSRanges = 64

// tsRanges is a condition on ts matching every second the events fall in
// (ts is stored to the second).
func tsRanges(events []*schemas.Event) string {
	spans := make([][2]int64, 0, len(events))
	for _, e := range events {
		spans = append(spans, [2]int64{e.TS.Unix(), e.TS.Unix()})
	}
	return tsCondition(spans)
}

// tsCondition is a condition on ts matching the given spans of seconds
// (inclusive): spans no more than gap apart merge into one range, the gap
// doubling until there are at most maxTSRanges. A batch of live events is
// one short range plus a few for late stragglers.
func tsCondition(spans [][2]int64) string {
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var ranges [][2]int64
	for gap := int64(2); ; gap *= 2 {
		ranges = ranges[:0]
		for _, s := range spans {
			if n := len(ranges); n > 0 && s[0]-ranges[n-1][1] <= gap {
				ranges[n-1][1] = max(ranges[n-1][1], s[1])
				continue
			}
			ranges = append(ranges, s)
		}
		if len(ranges) <= maxTSRanges {
			break
		}
	}
	var b strings.Builder
	for i, r := range ranges {
		if i > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "ts >= toDateTime(%d) AND ts <= toDateTime(%d)", r[0], r[1])
	}
	return b.String()
}
