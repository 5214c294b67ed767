package batch_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/batch"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Batch lines are checked against the identifier limits like every other
// entrance: an over-long custom_id is an invalid line, an over-long pinned
// model a 400 line naming the limit; the rest of the file still runs.
func TestBatchLineIdentifierLimits(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	env.StartPools(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	lines := `{"custom_id":"` + strings.Repeat("c", 600) + `","body":{"model":"chat","messages":[{"role":"user","content":"x"}]}}
{"custom_id":"long-model","body":{"model":"a/` + strings.Repeat("m", 4200) + `","messages":[{"role":"user","content":"x"}]}}
{"custom_id":"ok","body":{"model":"chat","messages":[{"role":"user","content":"x"}]}}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sum, err := batch.Run(ctx, env.Client, env.JS, batch.Options{Input: in, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Invalid != 1 || sum.Succeeded != 1 || sum.Failed != 1 {
		t.Fatalf("summary %+v", sum)
	}
	got := readOutput(t, out)
	if l := got["line-1"]; l.Error == nil || !strings.Contains(l.Error.Message, "custom_id: is 600 bytes, over the limit of 512") {
		t.Errorf("line 1: %+v", l.Error)
	}
	if l := got["long-model"]; l.Error == nil || l.Response.StatusCode != 400 || !strings.Contains(l.Error.Message, "over the limit of 256") {
		t.Errorf("long-model: %+v", l.Error)
	}
}

// A tenant over budget gets a budget_exceeded line per request (429), and
// the run completes instead of stopping at the first line.
func TestBatchOverBudgetLines(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	env.Config.Budgets = []config.Budget{{Tenant: "broke", DailyUSD: 1, OnExceed: config.OnExceed{Reject: true}}}
	ctx := natstest.Context(t)
	spend, err := budget.Open(ctx, env.JS, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spend.Add(ctx, schemas.NewJobID(), "broke", 5, time.Now()); err != nil {
		t.Fatal(err)
	}
	client := broker.NewClient(env.NC, env.JS, router.New(env.Config, router.Options{Budgets: spend}))
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(in, []byte(`{"custom_id":"r1","body":{"model":"chat","messages":[{"role":"user","content":"x"}]}}
{"custom_id":"r2","body":{"model":"chat","messages":[{"role":"user","content":"y"}]}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	sum, err := batch.Run(rctx, client, env.JS, batch.Options{Input: in, Output: out, Metadata: map[string]string{"tenant": "broke"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	for id, l := range readOutput(t, out) {
		if l.Error == nil || l.Error.Code != schemas.ErrBudgetExceeded || l.Response.StatusCode != 429 {
			t.Errorf("%s: %+v %+v", id, l.Error, l.Response)
		}
	}
}
