package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/memlimit"
	"github.com/switchboard-llm/switchboard/topology"
)

// runIngest loads telemetry from JetStream into ClickHouse until stopped.
func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("ingest", stderr)
	var c commonFlags
	c.register(fs, false, true)
	metricsAddr := metricsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.clickhouse == "" {
		c.clickhouse = store.DefaultDSN
	}
	if _, err := store.Options(c.clickhouse); err != nil {
		return fmt.Errorf("%w: --clickhouse: %v", errUsage, err)
	}
	tuneGC()
	given, err := c.givenConfig(fs, stderr)
	if err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-ingest")
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = nc.Cause(err) }() // a lost connection is the failure, whatever noticed it
	cfg, err := c.sharedConfig(ctx, given, js, stderr)
	if errors.Is(err, live.ErrNoSharedConfig) {
		// No config anywhere: the ingester needs none; use the defaults.
		fmt.Fprintln(stderr, "config: none in the cluster or here; using the defaults")
		cfg = &config.Config{}
		cfg.ApplyDefaults()
	} else if err != nil {
		return err
	}
	analytics := cfg.Analytics
	log := newLogger()
	if js, err = provision(ctx, js, cfg, false, log); err != nil {
		return err
	}
	in, err := ingest.New(ingest.Config{JS: js, DSN: c.clickhouse, Logger: log}.FromConfig(analytics))
	if err != nil {
		return err
	}
	stopMetrics, err := serveMetrics(*metricsAddr, log, in.Collector())
	if err != nil {
		return err
	}
	defer stopMetrics()
	a := newApp(ctx, nc, log)
	defer a.close()
	log.Info("ingesting telemetry", "clickhouse", c.clickhouse, "batch_rows", analytics.BatchRows, "batch_interval", analytics.BatchInterval)
	a.Go(in.Run)
	return a.Wait() // a connection closed for good stops the ingester: exit 1
}

// flagGiven reports whether the named flag was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// analyticsService is what `up` runs for telemetry (see startAnalytics).
type analyticsService struct {
	// DSN is the ClickHouse being fed ("" when none: telemetry buffers in NATS).
	DSN string
	// Ingester loads TELEMETRY into ClickHouse; nil when there is no ClickHouse.
	Ingester *ingest.Ingester
	// Server is the managed local clickhouse-server, when `up` started one.
	Server *chserver.Server
}

// Run runs the ingester until ctx ends (returns at once when there is none).
func (a *analyticsService) Run(ctx context.Context) error {
	if a == nil || a.Ingester == nil {
		return nil
	}
	return a.Ingester.Run(ctx)
}

// Close stops the managed clickhouse-server, if any; call it after Run returned.
func (a *analyticsService) Close() {
	if a != nil && a.Server != nil {
		_ = a.Server.Stop()
	}
}

// tuneGC applies ingest.GCPercent unless the operator set GOGC.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(ingest.GCPercent)
	}
}

// upMemoryFloor is the soft memory limit below which `up` keeps the heap
// goal of ingest.GCPercent (3x live); above it the limit follows the live
// heap with upMemoryHeadroom (see memlimit), so the embedded nats-server's
// state (duplicate windows, block caches) is not tripled in RSS.
const upMemoryFloor = 320 << 20

// upMemoryHeadroom is the heap the limit leaves above the live heap once
// past the floor, as a fraction of it: a heap goal of 1.5x live, as GOGC=50.
const upMemoryHeadroom = 0.5

// tuneMemory keeps `up`'s memory limit following its live heap for the
// process's life (a's shared state), unless the operator set GOGC or
// GOMEMLIMIT.
func tuneMemory(a *app) {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		a.Background("memory limit", func(ctx context.Context) error {
			memlimit.Run(ctx, memlimit.Options{Floor: upMemoryFloor, Headroom: upMemoryHeadroom})
			return nil
		})
	}
}

// startAnalytics prepares the telemetry path of `up`. With a DSN it feeds
// that ClickHouse. Without one it starts a managed clickhouse-server under
// <dataDir>/clickhouse when one is installed; otherwise it says clearly that
// telemetry is buffering in NATS and returns an analyticsService whose Run is a
// no-op. Errors are only returned for a bad DSN or config.
func startAnalytics(ctx context.Context, cfg *config.Config, js jetstream.JetStream, dsn, dataDir string, log *slog.Logger) (*analyticsService, error) {
	a := &analyticsService{DSN: dsn}
	if dsn == "" {
		srv, err := chserver.Start(ctx, filepath.Join(dataDir, "clickhouse"))
		switch {
		case errors.Is(err, chserver.ErrNotInstalled):
			log.Warn("analytics: clickhouse-server is not installed; telemetry is buffering in the NATS stream "+
				topology.StreamTelemetry+" (kept for limits.telemetry_max_age); install ClickHouse or run "+
				"`switchboard ingest --clickhouse clickhouse://host:9000/db` to load it", "err", err)
			return a, nil
		case err != nil:
			log.Warn("analytics: the local clickhouse-server did not start; telemetry is buffering in NATS", "err", err)
			return a, nil
		}
		a.Server, a.DSN = srv, srv.DSNFor("switchboard")
		log.Info("analytics: started local clickhouse-server", "dsn", a.DSN, "dir", srv.Dir())
	}
	in, err := ingest.New(ingest.Config{JS: js, DSN: a.DSN, Logger: log}.FromConfig(cfg.Analytics))
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Ingester = in
	return a, nil
}
