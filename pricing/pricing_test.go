package pricing_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/workers"
)

var _ workers.Pricer = (*pricing.Table)(nil)

const litellmJSON = `{
  "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers", "max_tokens": "LEGACY parameter"},
  "gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, "litellm_provider": "openai", "mode": "chat"},
  "claude-3-5-haiku-latest": {"input_cost_per_token": 8e-07, "output_cost_per_token": 4e-06, "litellm_provider": "anthropic"},
  "gemini/gemini-1.5-flash": {"input_cost_per_token": 7.5e-08, "output_cost_per_token": 3e-07, "litellm_provider": "gemini"},
  "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"}
}`

func testConfig() *config.Config {
	return &config.Config{
		Providers: []config.Provider{
			{Name: "oai", Kind: config.KindOpenAI},
			{Name: "claude", Kind: config.KindAnthropic},
			{Name: "gem", Kind: config.KindGemini},
			{Name: "mock", Kind: config.KindMock},
		},
		Models: []config.Model{
			{Provider: "oai", Name: "gpt-4o-mini", InputPerMTok: 1, OutputPerMTok: 2}, // overrides LiteLLM
			{Provider: "mock", Name: "m1", InputPerMTok: 0.5, OutputPerMTok: 1.5},
		},
	}
}

func TestCost(t *testing.T) {
	tab := pricing.New(testConfig())
	n, err := tab.ImportLiteLLM(strings.NewReader(litellmJSON))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("imported %d prices, want 3 (sample_spec and image models skipped)", n)
	}
	tests := []struct {
		name            string
		provider, model string
		in, out         int64
		want            float64
		ok              bool
	}{
		{"config wins over litellm", "oai", "gpt-4o-mini", 1_000_000, 500_000, 1 + 1, true},
		{"config only", "mock", "m1", 2000, 1000, (2000*0.5 + 1000*1.5) / 1e6, true},
		{"litellm by provider kind", "claude", "claude-3-5-haiku-latest", 1000, 1000, 1000*8e-07 + 1000*4e-06, true},
		{"litellm provider-prefixed key", "gem", "gemini-1.5-flash", 1_000_000, 0, 0.075, true},
		{"unknown model", "oai", "gpt-9", 10, 10, 0, false},
		{"unknown provider and model", "nope", "nothing", 10, 10, 0, false},
		{"zero tokens still known", "mock", "m1", 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tab.Cost(tt.provider, tt.model, tt.in, tt.out)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("Cost = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLoadPricesFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "prices.json")
	if err := os.WriteFile(good, []byte(litellmJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Analytics.PricesFile = good
	tab, err := pricing.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.Cost("claude", "claude-3-5-haiku-latest", 1, 1); !ok {
		t.Fatal("imported price missing")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`[1,2`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Analytics.PricesFile = bad
	if _, err := pricing.Load(cfg); !errors.Is(err, pricing.ErrPrices) || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("err = %v, want ErrPrices naming the file", err)
	}
	cfg.Analytics.PricesFile = filepath.Join(dir, "missing.json")
	if _, err := pricing.Load(cfg); !errors.Is(err, pricing.ErrPrices) {
		t.Fatalf("err = %v, want ErrPrices", err)
	}
}
