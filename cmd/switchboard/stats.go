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
	source := "--clickhouse"
	if *dsn == "" {
		*dsn, source = store.DefaultDSN, "the default; no running `switchboard up` recorded one in "+managedDSNFile(*dataDir)
		if data, err := os.ReadFile(managedDSNFile(*dataDir)); err == nil {
			*dsn, source = strings.TrimSpace(string(data)), "the one `switchboard up` recorded in "+managedDSNFile(*dataDir)
		}
	} else if !flagGiven(fs, "clickhouse") {
		source = "SWITCHBOARD_CLICKHOUSE"
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
		return unreachable(*dsn, source, err)
	}
	defer conn.Close()
	// stats only reads: a schema behind this version is the operator's to
	// migrate (migration 3 is a copy and swap of the base tables).
	if pending, err := store.Pending(ctx, conn); err != nil {
		return err
	} else if len(pending) > 0 {
		return fmt.Errorf("%w: %d migration(s) pending, from version %d (%s); run `switchboard migrate --clickhouse DSN` (or start `switchboard ingest` / `up`) first",
			store.ErrNotMigrated, len(pending), pending[0].Version, pending[0].Name)
	}
	rows, err := stats.Query(ctx, conn, opts)
	if err != nil {
		return err
	}
	return stats.Write(stdout, rows, *by, *format)
}

// unreachable explains a ClickHouse that could not be reached: which one
// (and where its address came from), why, and what to do.
func unreachable(dsn, source string, err error) error {
	addr := dsn
	if o, perr := store.Options(dsn); perr == nil && len(o.Addr) > 0 {
		addr = strings.Join(o.Addr, ",") + "/" + o.Auth.Database
	}
	return fmt.Errorf("stats reads the analytics in ClickHouse, and ClickHouse at %s (%s) did not answer: %w\n"+
		"  start `switchboard up` (it runs a local ClickHouse when clickhouse-server is installed, and stats finds it through --data-dir),\n"+
		"  or point stats at yours with --clickhouse clickhouse://host:9000/db (or SWITCHBOARD_CLICKHOUSE)", addr, source, err)
}
