package main

import (
	"context"
	"fmt"
	"io"

	"github.com/switchboard-llm/switchboard/analytics/store"
)

// runMigrate creates or upgrades the ClickHouse schema (idempotent).
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	dsn := fs.String("clickhouse", envOr("SWITCHBOARD_CLICKHOUSE", store.DefaultDSN), "ClickHouse native DSN (clickhouse://host:9000/db)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := store.Options(*dsn); err != nil {
		return fmt.Errorf("%w: --clickhouse: %v", errUsage, err)
	}
	conn, err := store.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := store.Migrate(ctx, conn)
	if err != nil {
		return err
	}
	v, err := store.Version(ctx, conn)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema is up to date (version %d)\n", v)
		return nil
	}
	for _, m := range store.Migrations {
		for _, a := range applied {
			if m.Version == a {
				fmt.Fprintf(stdout, "applied %d: %s\n", m.Version, m.Name)
			}
		}
	}
	fmt.Fprintf(stdout, "schema at version %d\n", v)
	return nil
}
