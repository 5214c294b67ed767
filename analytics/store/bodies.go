package store

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-llm/switchboard/schemas"
)

// bodyColumns are the completions columns that hold a job's request and
// response bodies; they stay empty unless analytics.log_bodies is on.
var bodyColumns = []string{"request_body", "response_body"}

// anyBodies reports whether any event carries a logged body (the body
// columns, last in insertColumns, are written only then).
func anyBodies(events []*schemas.Event) bool {
	for _, e := range events {
		if e.RequestBody != "" || e.ResponseBody != "" {
			return true
		}
	}
	return false
}

// addBodyColumns adds bodyColumns to completions, each only if missing
// (18.16 has no ADD COLUMN IF NOT EXISTS), so it can be re-run.
func addBodyColumns(ctx context.Context, conn driver.Conn) error {
	for _, col := range bodyColumns {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?",
			TableCompletions, col).Scan(&n); err != nil {
			return fmt.Errorf("look up column %s of %s: %w", col, TableCompletions, err)
		}
		if n > 0 {
			continue
		}
		if err := conn.Exec(ctx, "ALTER TABLE "+TableCompletions+" ADD COLUMN "+col+" String DEFAULT ''"); err != nil {
			return fmt.Errorf("add column %s to %s: %w", col, TableCompletions, err)
		}
	}
	return nil
}
