package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/schemas"
)

// BenchmarkDedupLookup: the ingester's insert-time lookup (store.Existing)
// of a 25000-event batch of live events, in an attempts table holding a
// day of rows (10M, spread over the last 24 hours) and, side by side, in an
// empty one. The lookup reads only the batch's seconds, so the two stay
// close however large the table grows.
func BenchmarkDedupLookup(b *testing.B) {
	const rows, batch = 10_000_000, 25_000
	ctx := context.Background()
	now := time.Now().UTC()
	events := make([]*schemas.Event, batch)
	for i := range events {
		events[i] = &schemas.Event{EventID: uuid.New(), TS: now.Add(-time.Duration(i%3000) * time.Millisecond)}
	}
	for _, full := range []bool{false, true} {
		db := chtest.NewDB(b)
		if full {
			if err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO attempts (event_id, job_id, ts, provider)
SELECT generateUUIDv4(), toString(number), toDateTime(now() - (number %% 86400)), 'p' FROM system.numbers LIMIT %d`, rows)); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("table_rows=%d", map[bool]int{false: 0, true: rows}[full]), func(b *testing.B) {
			for b.Loop() {
				found, err := store.Existing(ctx, db.Conn, store.TableAttempts, events)
				if err != nil || len(found) != 0 {
					b.Fatalf("lookup: %d found, %v", len(found), err)
				}
			}
		})
	}
}
