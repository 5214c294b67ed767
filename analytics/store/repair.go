package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/schemas"
)

// RepairRollups closes the one gap a retried insert leaves: ClickHouse
// commits an insert's base-table part before its materialized views' parts,
// so a crash in between (server killed, connection cut) stores events in the
// base table but not in every rollup, and the retry then skips them as
// already stored. Given such stored events, it compares, per rollup and per
// minute of the events, the rollup's count with the deduplicated base count;
// where the rollup misses exactly as many rows as there are stored events in
// that minute (the ingester's in-process retry re-sends exactly the
// interrupted batch), it adds those events from the base table. It returns
// how many source rows it added to rollups. It assumes one writer per event
// at a time (the ingester's consumer guarantees it); a gap it cannot
// attribute exactly is left alone and reported as ErrRollupDrift.
func RepairRollups(ctx context.Context, conn driver.Conn, table string, stored []*schemas.Event) (int, error) {
	if len(stored) == 0 {
		return 0, nil
	}
	minuteSet := map[int64]bool{}
	for _, e := range stored {
		minuteSet[e.TS.Unix()/60*60] = true
	}
	minutes := make([]string, 0, len(minuteSet))
	for m := range minuteSet {
		minutes = append(minutes, "toDateTime("+strconv.FormatInt(m, 10)+")")
	}
	sort.Strings(minutes)
	inMinutes := strings.Join(minutes, ", ")
	inSeconds := "(" + tsRanges(stored) + ")"
	minuteSpans := make([][2]int64, 0, len(minuteSet))
	for m := range minuteSet {
		minuteSpans = append(minuteSpans, [2]int64{m, m + 59})
	}
	inWholeMinutes := "(" + tsCondition(minuteSpans) + ")"
	ids := make([]string, 0, len(stored))
	for _, e := range stored {
		ids = append(ids, "'"+e.EventID.String()+"'")
	}
	inIDs := strings.Join(ids, ",")

	added := 0
	for _, r := range rollupsOf[table] {
		filter := ""
		if r.where != "" {
			filter = " AND " + r.where
		}
		perMinute := func(q string) (map[int64]uint64, error) {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("%w: rollup check of %s: %v", ErrUnavailable, r.table, err)
			}
			defer rows.Close()
			out := map[int64]uint64{}
			for rows.Next() {
				var m time.Time
				var n uint64
				if err := rows.Scan(&m, &n); err != nil {
					return nil, fmt.Errorf("%w: rollup check of %s: %v", ErrUnavailable, r.table, err)
				}
				out[m.Unix()] = n
			}
			return out, rows.Err()
		}
		base, err := perMinute(fmt.Sprintf("SELECT toStartOfMinute(ts) AS m, count() FROM %s FINAL WHERE %s AND m IN (%s)%s GROUP BY m",
			table, inWholeMinutes, inMinutes, filter))
		if err != nil {
			return added, err
		}
		rolled, err := perMinute(fmt.Sprintf("SELECT minute, %s FROM %s WHERE minute IN (%s) GROUP BY minute", r.count, r.table, inMinutes))
		if err != nil {
			return added, err
		}
		short := false
		for m, n := range base {
			if rolled[m] < n {
				short = true
			}
		}
		if !short {
			continue
		}
		// The stored events this rollup should count, per minute.
		want, err := perMinute(fmt.Sprintf("SELECT toStartOfMinute(ts) AS m, count() FROM %s FINAL WHERE %s AND event_id IN (%s)%s GROUP BY m",
			table, inSeconds, inIDs, filter))
		if err != nil {
			return added, err
		}
		var fix []string
		var fixed uint64
		for m, n := range base {
			switch gap := n - min(n, rolled[m]); {
			case gap == 0:
			case gap == want[m]:
				fix = append(fix, "toDateTime("+strconv.FormatInt(m, 10)+")")
				fixed += gap
			default:
				return added, fmt.Errorf("%w: rollup %s misses %d rows of minute %s but %d re-sent events fall in it; rebuild it from %s",
					ErrRollupDrift, r.table, gap, time.Unix(m, 0).UTC().Format(time.RFC3339), want[m], table)
			}
		}
		where := fmt.Sprintf("WHERE %s AND event_id IN (%s) AND toStartOfMinute(ts) IN (%s)%s", inSeconds, inIDs, strings.Join(fix, ", "), filter)
		// FINAL: each event once, even if the base table holds it twice.
		sel := strings.Replace(r.selectFrom(where), "FROM "+table, "FROM "+table+" FINAL", 1)
		if err := conn.Exec(ctx, "INSERT INTO "+r.table+" "+sel); err != nil {
			return added, fmt.Errorf("%w: repair %s: %v", ErrUnavailable, r.table, err)
		}
		added += int(fixed)
	}
	return added, nil
}

// storedEvents returns the events whose id is in stored.
func storedEvents(events []*schemas.Event, stored map[uuid.UUID]bool) []*schemas.Event {
	var out []*schemas.Event
	for _, e := range events {
		if stored[e.EventID] {
			out = append(out, e)
		}
	}
	return out
}
