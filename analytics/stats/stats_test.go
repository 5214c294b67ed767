package stats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/stats"
	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/schemas"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func usd(v float64) *float64 { return &v }

// fixture stores a small, hand-checkable set of telemetry and returns "now".
func fixture(t *testing.T, db *chtest.DB) time.Time {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	ts := now.Add(-10 * time.Minute)
	old := now.Add(-3 * time.Hour) // outside --since 1h
	comp := func(job, route, tenant, status string, fallback bool, total, in, out int64, cost *float64, at time.Time) *schemas.Event {
		return &schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: schemas.CompletionEventID(job, 0, at), JobID: job, TS: at,
			Route: route, Provider: "beta", Model: "b1", Tenant: tenant, Status: status, Fallback: fallback,
			InputTokens: in, OutputTokens: out, CostUSD: cost, TotalMS: total}
	}
	att := func(job string, n int, provider, model, outcome string, code int, dur, in, out int64, cost *float64, at time.Time) *schemas.Event {
		return &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, n, at), JobID: job, TS: at, Attempt: n,
			Route: "chat", Provider: provider, Model: model, Tenant: "acme", StatusCode: code, Outcome: outcome,
			InputTokens: in, OutputTokens: out, CostUSD: cost, DurationMS: dur}
	}
	completions := []*schemas.Event{
		comp("j1", "chat", "acme", schemas.StatusSucceeded, false, 100, 10, 1, usd(0.1), ts),
		comp("j2", "chat", "acme", schemas.StatusSucceeded, true, 200, 20, 2, usd(0.2), ts.Add(time.Minute)),
		comp("j3", "chat", "acme", schemas.StatusFailed, false, 300, 30, 3, nil, ts),
		comp("j4", "chat", "acme", schemas.StatusSucceeded, false, 400, 40, 4, usd(0.4), ts.Add(2*time.Minute)),
		comp("j5", "cheap", "", schemas.StatusSucceeded, false, 50, 5, 5, usd(0.05), ts),
		comp("old", "chat", "acme", schemas.StatusSucceeded, false, 9999, 999, 999, usd(99), old),
	}
	attempts := []*schemas.Event{
		att("j2", 1, "alpha", "a1", schemas.OutcomeFallback, 429, 10, 0, 0, usd(0), ts),
		att("j2", 2, "beta", "b1", schemas.OutcomeOK, 200, 30, 20, 2, usd(0.2), ts),
		att("j1", 1, "beta", "b1", schemas.OutcomeOK, 200, 50, 10, 1, usd(0.1), ts),
		att("j3", 1, "alpha", "a1", schemas.OutcomeRetry, 500, 20, 0, 0, nil, ts),
		att("old", 1, "alpha", "a1", schemas.OutcomeOK, 200, 9999, 9, 9, usd(9), old),
	}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventCompletion, completions); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, attempts); err != nil {
		t.Fatal(err)
	}
	return now
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestQueryMatchesHandComputedValues(t *testing.T) {
	db := chtest.NewDB(t)
	now := fixture(t, db)
	ctx := context.Background()
	query := func(by string) map[string]stats.Row {
		rows, err := stats.Query(ctx, db.Conn, stats.Options{Since: time.Hour, By: by, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]stats.Row{}
		for _, r := range rows {
			m[r.Key] = r
		}
		return m
	}
	// Latency percentiles interpolate linearly between sorted samples:
	// [100 200 300 400] -> p50 250, p95 385, p99 397.
	routes := query(stats.ByRoute)
	chat := routes["chat"]
	if len(routes) != 2 || chat.Requests != 4 || chat.Succeeded != 3 || !near(chat.SuccessRate, 0.75) ||
		!near(chat.FallbackRate, 0.25) || !near(chat.P50MS, 250) || !near(chat.P95MS, 385) || !near(chat.P99MS, 397) ||
		chat.InputTokens != 100 || chat.OutputTokens != 10 || !near(chat.CostUSD, 0.7) || chat.UnknownCost != 1 {
		t.Fatalf("route chat = %+v", chat)
	}
	if cheap := routes["cheap"]; cheap.Requests != 1 || !near(cheap.P99MS, 50) || !near(cheap.CostUSD, 0.05) {
		t.Fatalf("route cheap = %+v", cheap)
	}
	tenants := query(stats.ByTenant)
	if tenants["acme"].Requests != 4 || tenants[""].Requests != 1 {
		t.Fatalf("tenants = %+v", tenants)
	}
	statuses := query(stats.ByStatus)
	if statuses["succeeded"].Requests != 4 || statuses["failed"].Requests != 1 || statuses["failed"].UnknownCost != 1 {
		t.Fatalf("statuses = %+v", statuses)
	}
	// By provider a request is a call: alpha had a fallback and a retry.
	providers := query(stats.ByProvider)
	alpha, beta := providers["alpha"], providers["beta"]
	if alpha.Requests != 2 || alpha.Succeeded != 0 || !near(alpha.FallbackRate, 0.5) || !near(alpha.P50MS, 15) ||
		alpha.UnknownCost != 1 || !near(alpha.CostUSD, 0) {
		t.Fatalf("provider alpha = %+v", alpha)
	}
	if beta.Requests != 2 || !near(beta.SuccessRate, 1) || !near(beta.P50MS, 40) || !near(beta.CostUSD, 0.3) || beta.InputTokens != 30 {
		t.Fatalf("provider beta = %+v", beta)
	}
	models := query(stats.ByModel)
	if models["beta/b1"].Requests != 2 || models["alpha/a1"].Requests != 2 {
		t.Fatalf("models = %+v", models)
	}
	// A longer window includes the old job.
	rows, err := stats.Query(ctx, db.Conn, stats.Options{Since: 24 * time.Hour, By: stats.ByRoute, Now: now})
	if err != nil || rows[0].Key != "chat" || rows[0].Requests != 5 {
		t.Fatalf("24h rows = %+v, %v", rows, err)
	}
}

func TestWriteFormats(t *testing.T) {
	rows := []stats.Row{{Key: "chat", Requests: 4, Succeeded: 3, SuccessRate: 0.75, Fallbacks: 1, FallbackRate: 0.25,
		P50MS: 250, P95MS: 385, P99MS: 397, InputTokens: 100, OutputTokens: 10, CostUSD: 0.7, UnknownCost: 1}}
	var csvOut bytes.Buffer
	if err := stats.Write(&csvOut, rows, stats.ByRoute, stats.FormatCSV); err != nil {
		t.Fatal(err)
	}
	want := "route,requests,success_rate,fallback_rate,p50_ms,p95_ms,p99_ms,input_tokens,output_tokens,cost_usd,unknown_cost_rows\n" +
		"chat,4,0.7500,0.2500,250.0,385.0,397.0,100,10,0.700000,1\n"
	if csvOut.String() != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", csvOut.String(), want)
	}
	var js bytes.Buffer
	if err := stats.Write(&js, rows, stats.ByRoute, stats.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var back []stats.Row
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != 1 || back[0] != rows[0] {
		t.Fatalf("json round trip = %+v, %v", back, err)
	}
	var table bytes.Buffer
	if err := stats.Write(&table, rows, stats.ByRoute, stats.FormatTable); err != nil {
		t.Fatal(err)
	}
	if s := table.String(); !strings.Contains(s, "75.0%") || !strings.Contains(s, "0.700000*") || !strings.Contains(s, "1 rows have no known price") {
		t.Fatalf("table:\n%s", s)
	}
	if err := stats.Write(&table, rows, stats.ByRoute, "xml"); !errors.Is(err, stats.ErrInvalid) {
		t.Fatalf("xml format: %v", err)
	}
	if err := (stats.Options{Since: time.Hour, By: "colour"}).Validate(); !errors.Is(err, stats.ErrInvalid) {
		t.Fatalf("bad --by: %v", err)
	}
}

// TestReadmeSQLRuns runs every SQL block of analytics/README.md (the
// analysts' ready queries) against the fixture.
func TestReadmeSQLRuns(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) < 5 {
		t.Fatalf("README has %d SQL blocks, want at least 5", len(blocks))
	}
	db := chtest.NewDB(t)
	fixture(t, db)
	for _, b := range blocks {
		rows, err := db.Conn.Query(context.Background(), b[1])
		if err != nil {
			t.Errorf("%v\n%s", err, b[1])
			continue
		}
		rows.Close()
	}
}
