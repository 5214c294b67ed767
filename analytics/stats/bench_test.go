package stats_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/stats"
	"github.com/switchboard-llm/switchboard/internal/chtest"
)

// BenchmarkStatsFromRollups: `switchboard stats --by provider --since 24h`
// over many attempts rows (SWITCHBOARD_BENCH_ROWS, default 10M) spread over
// the last day, read from attempts_1m; side by side, the same figures
// computed from the raw attempts table.
func BenchmarkStatsFromRollups(b *testing.B) {
	rows := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("SWITCHBOARD_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	db := chtest.NewDB(b)
	ctx := context.Background()
	start := time.Now()
	// Generated server-side, through the materialized views like any insert.
	err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO attempts (event_id, job_id, ts, attempt, route, provider, model, tenant,
	status_code, error_type, outcome, input_tokens, output_tokens, cost_usd, duration_ms)
SELECT generateUUIDv4(), toString(number), toDateTime(now() - (number %% 86000)), 1, if(number %% 2 = 0, 'chat', 'cheap'),
	concat('p', toString(number %% 5)), concat('m', toString(number %% 10)), concat('t', toString(number %% 20)),
	if(number %% 17 = 0, 429, 200), if(number %% 17 = 0, 'rate_limited', ''), if(number %% 17 = 0, 'fallback', 'ok'),
	100 + number %% 50, 20 + number %% 7, if(number %% 13 = 0, NULL, 0.0001 * (number %% 10)), number %% 2000
FROM system.numbers LIMIT %d`, rows))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d attempts rows in %s", rows, time.Since(start).Round(time.Millisecond))
	opts := stats.Options{Since: 24 * time.Hour, By: stats.ByProvider}
	b.Run(fmt.Sprintf("rollup/rows=%d", rows), func(b *testing.B) {
		for b.Loop() {
			out, err := stats.Query(ctx, db.Conn, opts)
			if err != nil {
				b.Fatal(err)
			}
			var n uint64
			for _, r := range out {
				n += r.Requests
			}
			if n != uint64(rows) {
				b.Fatalf("stats counted %d requests, want %d", n, rows)
			}
		}
	})
	b.Run(fmt.Sprintf("raw-table/rows=%d", rows), func(b *testing.B) {
		for b.Loop() {
			r, err := db.Conn.Query(ctx, `SELECT provider, count(), sum(outcome = 'ok'), sum(outcome = 'fallback'),
	quantiles(0.5, 0.95, 0.99)(duration_ms), sum(input_tokens), sum(output_tokens), sum(ifNull(cost_usd, 0.)), sum(isNull(cost_usd))
FROM attempts WHERE ts >= now() - 86400 GROUP BY provider`)
			if err != nil {
				b.Fatal(err)
			}
			for r.Next() {
			}
			r.Close()
		}
	})
}
