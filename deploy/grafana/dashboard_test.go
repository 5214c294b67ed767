package grafana_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/schemas"
)

func TestMain(m *testing.M) { chtest.Main(m) }

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
		} `json:"targets"`
	} `json:"panels"`
}

var timeFilter = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)

// expand substitutes the grafana-clickhouse-datasource macros the way the
// plugin does, for the window [from, to] and a 60 s interval.
func expand(sql string, from, to time.Time) string {
	f, t := from.Unix(), to.Unix()
	sql = timeFilter.ReplaceAllString(sql, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", f, t))
	sql = strings.ReplaceAll(sql, "$__interval_s", "60")
	sql = strings.ReplaceAll(sql, "$__fromTime", fmt.Sprintf("toDateTime(%d)", f))
	sql = strings.ReplaceAll(sql, "$__toTime", fmt.Sprintf("toDateTime(%d)", t))
	return sql
}

func TestEveryPanelQueryRuns(t *testing.T) {
	raw, err := os.ReadFile("dashboards/switchboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	db := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var attempts, completions []*schemas.Event
	cost := 0.01
	for i := 0; i < 20; i++ {
		job := fmt.Sprintf("job-%d", i)
		ts := now.Add(-time.Duration(i) * time.Minute)
		fallback := i%4 == 0
		if fallback {
			attempts = append(attempts, &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, 1, ts), JobID: job, TS: ts,
				Attempt: 1, Route: "chat", Provider: "alpha", Model: "a1", Tenant: "acme", StatusCode: 503, ErrorType: schemas.ErrServerError,
				Outcome: schemas.OutcomeFallback, DurationMS: 40})
		}
		attempts = append(attempts, &schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, 2, ts), JobID: job, TS: ts,
			Attempt: 2, Route: "chat", Provider: "beta", Model: "b1", Tenant: "acme", StatusCode: 200, Outcome: schemas.OutcomeOK,
			InputTokens: 100, OutputTokens: 20, CostUSD: &cost, DurationMS: int64(100 + i)})
		completions = append(completions, &schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: schemas.CompletionEventID(job, 0, ts), JobID: job, TS: ts,
			Attempt: 2, Route: "chat", Provider: "beta", Model: "b1", Tenant: []string{"acme", ""}[i%2], Status: schemas.StatusSucceeded,
			Fallback: fallback, InputTokens: 100, OutputTokens: 20, CostUSD: &cost, TotalMS: int64(120 + i)})
	}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventAttempt, attempts); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Insert(ctx, db.Conn, schemas.EventCompletion, completions); err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, p := range d.Panels {
		titles = append(titles, strings.ToLower(p.Title))
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			sql := expand(target.RawSQL, now.Add(-time.Hour), now.Add(time.Minute))
			if strings.Contains(sql, "$__") {
				t.Errorf("panel %q: unexpanded macro in %s", p.Title, sql)
				continue
			}
			rows, err := db.Conn.Query(ctx, sql)
			if err != nil {
				t.Errorf("panel %q: %v\n%s", p.Title, err, sql)
				continue
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			rows.Close()
			if n == 0 {
				t.Errorf("panel %q returned no rows over the fixture", p.Title)
			}
		}
	}
	all := strings.Join(titles, "|")
	for _, topic := range []string{"cost", "latency", "error rate", "fallback rate", "tenant"} {
		if !strings.Contains(all, topic) {
			t.Errorf("no panel about %s (panels: %s)", topic, all)
		}
	}
}
