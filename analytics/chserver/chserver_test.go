package chserver_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/internal/chtest"
)

func ping(ctx context.Context, dsn string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Ping(ctx)
}

func TestStartStopRestart(t *testing.T) {
	chtest.RequireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*chserver.StartTimeout)
	defer cancel()
	dir := t.TempDir()
	srv, err := chserver.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if err := ping(ctx, srv.DSN()); err != nil {
		t.Fatalf("ping %s: %v", srv.DSN(), err)
	}
	for _, f := range []string{"config.xml", "users.xml", "data", "log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not under the data dir: %v", f, err)
		}
	}
	if host, _, _ := net.SplitHostPort(srv.Addr()); host != "127.0.0.1" {
		t.Fatalf("listens on %s, want loopback", srv.Addr())
	}
	srv.Kill()
	if srv.Running() {
		t.Fatal("still running after Kill")
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	if err := ping(pctx, srv.DSN()); err == nil {
		t.Fatal("answers after Kill")
	}
	pcancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, srv.DSN()); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if err := srv.Stop(); err != nil || srv.Running() {
		t.Fatalf("Stop = %v, running %v", err, srv.Running())
	}
}
