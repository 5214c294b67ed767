package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/stats"
	"github.com/switchboard-llm/switchboard/analytics/store"
)

// runStats prints requests, success and fallback rates, latency
// percentiles, tokens and cost from the ClickHouse rollups.
func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", stderr)
	dsn := fs.String("clickhouse", os.Getenv("SWITCHBOARD_CLICKHOUSE"), "ClickHouse native DSN (clickhouse://host:9000/db); default: the one a running `up --data-dir` manages, else "+store.DefaultDSN)
	dataDir := fs.String("data-dir", ".switchboard", "data directory of a running `switchboard up` (finds its managed ClickHouse)")
	since := fs.Duration("since", 24*time.Hour, "how far back to look (e.g. 1h, 24h, 168h)")
	by := fs.String("by", stats.ByProvider, "group by provider|model|route|tenant|status")
	format := fs.String("format", stats.FormatTable, "output format table|json|csv")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dsn == "" {
		*dsn = store.DefaultDSN
		if data, err := os.ReadFile(managedDSNFile(*dataDir)); err == nil {
			*dsn = strings.TrimSpace(string(data))
		}
	}
	opts := stats.Options{Since: *since, By: *by}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch *format {
	case stats.FormatTable, stats.FormatJSON, stats.FormatCSV:
	default:
		return fmt.Errorf("%w: --format %q must be table, json or csv", errUsage, *format)
	}
	if _, err := store.Options(*dsn); err != nil {
		return fmt.Errorf("%w: --clickhouse: %v", errUsage, err)
	}
	conn, err := store.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := store.Migrate(ctx, conn); err != nil {
		return err
	}
	rows, err := stats.Query(ctx, conn, opts)
	if err != nil {
		return err
	}
	return stats.Write(stdout, rows, *by, *format)
}
