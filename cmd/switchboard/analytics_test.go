package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// TestAnalyticsCommands: `up`'s analytics path starts a managed ClickHouse,
// ingests telemetry; migrate and stats work against it; bad flags exit 2.
func TestAnalyticsCommands(t *testing.T) {
	chtest.RequireInstalled(t)
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx := natstest.Context(t)
	cfg := &config.Config{}
	cfg.ApplyDefaults()
	cfg.Analytics.BatchInterval = 20 * time.Millisecond
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	an, err := startAnalytics(ctx, cfg, js, "", t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(an.Close)
	if an.Server == nil || an.Ingester == nil || !strings.Contains(an.DSN, "/switchboard") {
		t.Fatalf("managed analytics = %+v", an)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- an.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	cost := 0.002
	now := time.Now().UTC()
	ev := schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: schemas.CompletionEventID("cli-job", 0, now), JobID: "cli-job",
		TS: now, Attempt: 1, Route: "chat", Provider: "p", Model: "m", Status: schemas.StatusSucceeded,
		InputTokens: 7, OutputTokens: 3, CostUSD: &cost, TotalMS: 42}
	data, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: topology.Telemetry(ev.Kind), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.EventID.String())
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if s := an.Ingester.Stats(); s.Completions != 1 {
			return fmt.Errorf("ingested %+v", s)
		}
		return nil
	})

	var out, errOut bytes.Buffer
	if code := run([]string{"migrate", "--clickhouse", an.DSN}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), fmt.Sprintf("up to date (version %d)", store.Migrations[len(store.Migrations)-1].Version)) {
		t.Fatalf("migrate: code %d, out %q, err %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"stats", "--clickhouse", an.DSN, "--by", "route", "--format", "csv", "--since", "1h"}, &out, &errOut); code != exitOK {
		t.Fatalf("stats: code %d, err %q", code, errOut.String())
	}
	want := "route,requests,success_rate,fallback_rate,p50_ms,p95_ms,p99_ms,input_tokens,output_tokens,cost_usd,unknown_cost_rows\n" +
		"chat,1,1.0000,0.0000,42.0,42.0,42.0,7,3,0.002000,0\n"
	if out.String() != want {
		t.Fatalf("stats csv:\n%s\nwant:\n%s", out.String(), want)
	}
	// stats only reads: on a database with no schema it says to migrate and
	// creates nothing (no copy and swap from a read-only command).
	fresh := strings.Replace(an.DSN, "/switchboard", "/stats_fresh", 1)
	errOut.Reset()
	if code := run([]string{"stats", "--clickhouse", fresh}, io.Discard, &errOut); code != exitFail ||
		!strings.Contains(errOut.String(), store.ErrNotMigrated.Error()) || !strings.Contains(errOut.String(), "switchboard migrate") {
		t.Fatalf("stats on an unmigrated database: exit %d, %q", code, errOut.String())
	}
	fconn, err := store.Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer fconn.Close()
	if v, err := store.Pending(ctx, fconn); err != nil || len(v) != len(store.Migrations) {
		t.Fatalf("after stats: %d of %d migrations pending (%v), want all", len(v), len(store.Migrations), err)
	}
	for _, args := range [][]string{
		{"stats", "--by", "colour"},
		{"stats", "--format", "xml"},
		{"stats", "--since", "-1h"},
		{"migrate", "--clickhouse", "http://127.0.0.1:8123/db"},
		{"ingest", "--clickhouse", "https://ch.example.com"},
	} {
		errOut.Reset()
		if code := run(args, io.Discard, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errOut.String(), exitUsage)
		}
	}
	// An unreachable ClickHouse is a failure (exit 1) that says so.
	errOut.Reset()
	if code := run([]string{"stats", "--clickhouse", "clickhouse://127.0.0.1:1/default?dial_timeout=200ms"}, io.Discard, &errOut); code != exitFail ||
		!strings.Contains(errOut.String(), store.ErrUnavailable.Error()) {
		t.Fatalf("unreachable: exit %d, %q", code, errOut.String())
	}
}

// TestAnalyticsWithoutClickHouseBuffers: with no DSN and no clickhouse-server,
// up's analytics path says telemetry is buffering in NATS and runs nothing.
func TestAnalyticsWithoutClickHouseBuffers(t *testing.T) {
	t.Setenv(chserver.BinaryEnv, "/nonexistent/clickhouse-server")
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	cfg := &config.Config{}
	cfg.ApplyDefaults()
	var logs bytes.Buffer
	an, err := startAnalytics(context.Background(), cfg, js, "", t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if an.Ingester != nil || an.DSN != "" || !strings.Contains(logs.String(), "buffering in the NATS stream TELEMETRY") {
		t.Fatalf("analytics = %+v, logs %q", an, logs.String())
	}
	if err := an.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
