package ingest_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

// TestEndToEndThroughWorkers runs jobs through real worker pools and mock
// providers (the first rate limits its first calls, so some jobs fall back)
// and checks ClickHouse against the Results the callers got.
func TestEndToEndThroughWorkers(t *testing.T) {
	db := chtest.NewDB(t)
	env := testenv.Start(t, []testenv.Provider{
		{Name: "alpha", Faults: mock.Faults{FailFirst: 12, ErrorStatus: 429, InputTokens: 40, OutputTokens: 8}, InputPerMTok: 3, OutputPerMTok: 15},
		{Name: "beta", Faults: mock.Faults{InputTokens: 50, OutputTokens: 10}, InputPerMTok: 0.5, OutputPerMTok: 1.5},
	})
	env.StartPools(t)
	in, err := ingest.New(ingest.Config{JS: env.JS, DSN: db.DSN, BatchRows: 50, BatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const n = 30
	var mu sync.Mutex
	var results []*schemas.Result
	g, gctx := errgroup.WithContext(natstest.Context(t))
	g.SetLimit(8)
	for i := 0; i < n; i++ {
		g.Go(func() error {
			cctx, ccancel := context.WithTimeout(gctx, 30*time.Second)
			defer ccancel()
			res, err := env.Client.Complete(cctx, &schemas.Job{Route: "chat", Request: testenv.Chat("hi"),
				Metadata: map[string]string{schemas.MetaTenant: fmt.Sprintf("tenant-%d", i%3)}})
			if err != nil {
				return err
			}
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var attempts, fallbacks uint64
	var cost float64
	prices := pricing.New(env.Config)
	for _, r := range results {
		if r.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s failed: %+v", r.ID, r.Error)
		}
		attempts += uint64(len(r.Attempts))
		if r.Fallback() {
			fallbacks++
		}
		want, ok := prices.Cost(r.Provider, r.Model, r.Usage.InputTokens, r.Usage.OutputTokens)
		if !ok || r.CostUSD == nil || math.Abs(*r.CostUSD-want) > 1e-12 {
			t.Fatalf("result cost %v, want prices x tokens = %v", r.CostUSD, want)
		}
		cost += want
	}
	if fallbacks == 0 {
		t.Fatal("no job fell back; the fault injection did not bite")
	}
	waitCount := func(query string, want uint64) {
		t.Helper()
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			got, err := db.Count(context.Background(), query)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s = %d, want %d", query, got, want)
			}
			return nil
		})
	}
	waitCount("SELECT count() FROM completions FINAL", n)
	waitCount("SELECT count() FROM attempts FINAL", attempts)
	waitCount("SELECT countMerge(requests) FROM completions_1m", n)
	waitCount("SELECT countMerge(calls) FROM attempts_1m", attempts)
	waitCount("SELECT sum(fallback) FROM completions FINAL", fallbacks)
	waitCount("SELECT count() FROM attempts FINAL WHERE provider = 'alpha' AND status_code = 429", 12)
	waitCount("SELECT uniqExact(tenant) FROM completions", 3)
	var stored float64
	if err := db.Conn.QueryRow(context.Background(), "SELECT sum(cost_usd) FROM completions FINAL").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if math.Abs(stored-cost) > 1e-9 {
		t.Fatalf("stored cost %v, want %v", stored, cost)
	}
}
