package router

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

// TestLowestCostPricesLikeBilling: lowest-cost routing ranks targets with
// the table the workers bill with, so a price known only from the LiteLLM
// import counts in routing too, and the estimate is that table's cost.
func TestLowestCostPricesLikeBilling(t *testing.T) {
	cfg := mustConfig(t, testConfig)
	table := pricing.New(cfg)
	// c/m is priced only by the import: $0.1 in, $0.1 out per million.
	if n, err := table.ImportLiteLLM(strings.NewReader(`{"m":{"input_cost_per_token":1e-7,"output_cost_per_token":1e-7,"litellm_provider":"other"}}`)); err != nil || n != 1 {
		t.Fatalf("import: %d, %v", n, err)
	}
	resolve := func(r *Resolver) string {
		j := &schemas.Job{Route: "cheap", Request: req("hi", 4000)}
		_ = j.Prepare(time.Now())
		if err := r.Resolve(j); err != nil {
			t.Fatal(err)
		}
		return planString(j.Plan)
	}
	if got := resolve(New(cfg, Options{})); got != "b,a,c" {
		t.Errorf("config prices only: plan %s, want b,a,c (c unpriced)", got)
	}
	r := New(cfg, Options{Prices: table})
	if got := resolve(r); got != "c,b,a" {
		t.Errorf("billing prices: plan %s, want c,b,a (c priced by the import)", got)
	}
	in, out := pricing.EstimateTokens(req("hi", 4000), cfg.Routing.DefaultOutputTokens)
	for _, tg := range []schemas.Target{{Provider: "a", Model: "m"}, {Provider: "b", Model: "m"}, {Provider: "c", Model: "m"}} {
		billed, ok := table.Cost(tg.Provider, tg.Model, int64(in), int64(out))
		if est := EstimateCost(r.pricesFor(cfg), tg, in, out); !ok || est != billed {
			t.Errorf("%s: routing estimate %v, billing %v (%v)", tg.Provider, est, billed, ok)
		}
	}
	// A reload's model prices count, over the import kept from the start.
	next := mustConfig(t, strings.Replace(testConfig, "input_per_mtok: 5, output_per_mtok: 2", "input_per_mtok: 0, output_per_mtok: 0", 1))
	r.SetConfig(next)
	if got := resolve(r); got != "b,c,a" {
		t.Errorf("after reload: plan %s, want b,c,a (b now free)", got)
	}
}
