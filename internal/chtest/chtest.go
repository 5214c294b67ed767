// Package chtest shares one throwaway clickhouse-server per test package
// (started from TestMain under a temp dir, via analytics/chserver) and hands
// each test a fresh, migrated database.
package chtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/analytics/store"
)

var (
	shared   *chserver.Server
	startErr error
	dbSeq    atomic.Int64
)

// Main runs a package's tests with one shared clickhouse-server; call it
// from TestMain: func TestMain(m *testing.M) { chtest.Main(m) }. When
// clickhouse-server is not installed, tests that need it are skipped (they
// fail under CI=true).
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chtest-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if chserver.Installed() {
		ctx, cancel := context.WithTimeout(context.Background(), chserver.StartTimeout)
		shared, startErr = chserver.Start(ctx, dir)
		cancel()
		if startErr == nil {
			defer shared.Stop() //nolint:errcheck
		}
	} else {
		startErr = chserver.ErrNotInstalled
	}
	return m.Run()
}

// NotInstalled is the skip reason of tests that need clickhouse-server.
const NotInstalled = "clickhouse-server not installed (apt-get install clickhouse-server)"

// RequireInstalled skips the test when clickhouse-server is not installed,
// or fails it when CI=true: in CI a missing dependency is a failure.
func RequireInstalled(t testing.TB) {
	t.Helper()
	if chserver.Installed() {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(NotInstalled + "; CI=true requires it")
	}
	t.Skip(NotInstalled)
}

// Server returns the package's shared server, skipping the test when
// clickhouse-server is not installed (failing it under CI=true) and failing
// it when it did not start.
func Server(t testing.TB) *chserver.Server {
	t.Helper()
	switch {
	case startErr == chserver.ErrNotInstalled:
		RequireInstalled(t)
		t.Skip(NotInstalled)
	case startErr != nil:
		t.Fatalf("clickhouse-server: %v", startErr)
	case shared == nil:
		t.Fatal("chtest: call chtest.Main(m) from TestMain")
	}
	if !shared.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), chserver.StartTimeout)
		defer cancel()
		if err := shared.Restart(ctx); err != nil {
			t.Fatalf("restart clickhouse-server: %v", err)
		}
	}
	return shared
}

// DB is one test's database on the shared server.
type DB struct {
	Name string
	DSN  string
	Conn driver.Conn
}

// NewDB creates a fresh database named after the test, runs the migrations
// and returns a connection closed (and the database dropped) with the test.
func NewDB(t testing.TB) *DB {
	t.Helper()
	srv := Server(t)
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), sanitize(t.Name()))
	dsn := srv.DSNFor(name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	if _, err := store.Migrate(ctx, conn); err != nil {
		conn.Close()
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if srv.Running() && os.Getenv("CHTEST_KEEP") == "" {
			_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
		}
		conn.Close()
	})
	return &DB{Name: name, DSN: dsn, Conn: conn}
}

// Count returns the result of a single-number query such as
// "SELECT count() FROM completions FINAL".
func (db *DB) Count(ctx context.Context, query string, args ...any) (uint64, error) {
	var n uint64
	if err := db.Conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
