package store

import "errors"

// Sentinel errors of the ClickHouse store.
var (
	// ErrDSN means the ClickHouse DSN could not be parsed.
	ErrDSN = errors.New("invalid clickhouse dsn")
	// ErrUnavailable wraps failures to reach or write to ClickHouse; the
	// ingester retries them.
	ErrUnavailable = errors.New("clickhouse unavailable")
	// ErrRollupDrift means a rollup does not match its base table in a way
	// RepairRollups cannot fix exactly.
	ErrRollupDrift = errors.New("rollup drift")
	// ErrMigration wraps a failed schema migration.
	ErrMigration = errors.New("clickhouse migration failed")
	// ErrNotMigrated means the schema lacks migrations a read-only command
	// (stats) will not apply itself.
	ErrNotMigrated = errors.New("analytics schema not migrated")
)
