package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/topology"
)

// Without clickhouse-server, `up` says so once, with what happens to the
// telemetry.
func TestOneWarningWithoutClickHouse(t *testing.T) {
	t.Setenv(chserver.BinaryEnv, "/nonexistent/clickhouse-server")
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	cfg := &config.Config{}
	cfg.ApplyDefaults()
	if err := topology.Ensure(natstest.Context(t), js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	an, err := startAnalytics(natstest.Context(t), cfg, js, "", t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "buffering in the NATS stream TELEMETRY") {
		t.Errorf("%d warnings, want one saying telemetry buffers:\n%s", n, logs.String())
	}
}

// A background loop stopped by its context (shutdown, or a start-up that
// failed elsewhere) is not an error.
func TestLogStopped(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	logStopped(log, "budget spend counter stopped", fmt.Errorf("consume: %w", context.Canceled))
	logStopped(log, "budget spend counter stopped", nil)
	if logs.Len() != 0 {
		t.Errorf("logged %q for a canceled context", logs.String())
	}
	logStopped(log, "budget spend counter stopped", errors.New("stream deleted"))
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "stream deleted") {
		t.Errorf("a real failure logged %q", logs.String())
	}
}
