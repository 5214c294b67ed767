// Package store is Switchboard's ClickHouse side: connecting over the native
// protocol, versioned migrations (tables, per-minute rollups) and
// deduplicating batch inserts of telemetry rows.
package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DefaultDSN is used when no DSN is given.
const DefaultDSN = "clickhouse://127.0.0.1:9000/default"

var dbNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Options parses a native-protocol DSN (clickhouse://user:pass@host:9000/db).
// HTTP DSNs are refused: ClickHouse 18.16 only works over the native protocol.
func Options(dsn string) (*clickhouse.Options, error) {
	if dsn == "" {
		dsn = DefaultDSN
	}
	if strings.HasPrefix(dsn, "http://") || strings.HasPrefix(dsn, "https://") {
		return nil, fmt.Errorf("%w: %q uses HTTP; use the native protocol, clickhouse://host:9000/db", ErrDSN, redact(dsn))
	}
	if !strings.Contains(dsn, "://") {
		dsn = "clickhouse://" + dsn
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDSN, err)
	}
	if opts.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("%w: only the native protocol is supported", ErrDSN)
	}
	if opts.Auth.Database == "" {
		opts.Auth.Database = "default"
	}
	if !dbNameRe.MatchString(opts.Auth.Database) {
		return nil, fmt.Errorf("%w: database name %q must match [A-Za-z_][A-Za-z0-9_]*", ErrDSN, opts.Auth.Database)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Settings == nil {
		opts.Settings = clickhouse.Settings{}
	}
	// The dedup lookup sends one IN list per batch.
	if _, ok := opts.Settings["max_query_size"]; !ok {
		opts.Settings["max_query_size"] = 64 << 20
	}
	opts.MaxOpenConns = max(opts.MaxOpenConns, 8)
	return opts, nil
}

// redact hides a password in a DSN for error messages.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	creds := dsn[scheme+3 : at]
	if i := strings.Index(creds, ":"); i >= 0 {
		return dsn[:scheme+3] + creds[:i] + ":***" + dsn[at:]
	}
	return dsn
}

// Open connects to ClickHouse, creating the DSN's database when it does not
// exist yet, and checks the connection.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := Options(dsn)
	if err != nil {
		return nil, err
	}
	db := opts.Auth.Database
	if db != "default" {
		boot := *opts
		boot.Auth.Database = "default"
		conn, err := clickhouse.Open(&boot)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		err = conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db)
		conn.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: create database %s: %v", ErrUnavailable, db, err)
		}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return conn, nil
}
