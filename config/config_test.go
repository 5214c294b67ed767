package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const valid = `
providers:
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY, concurrency: 64, timeout: 30s}
  - {name: anthropic, kind: anthropic, api_key_env: ANTHROPIC_API_KEY}
models:
  - {provider: openai, name: gpt-4o-mini, input_per_mtok: 0.15, output_per_mtok: 0.60}
routes:
  - name: chat
    targets:
      - {provider: openai, model: gpt-4o-mini, weight: 3}
      - {provider: anthropic, model: claude-3-5-haiku-latest}
    retries: 1
    fallback_on: [rate_limited, server_error]
    latency_threshold: 3s
  - name: cheap
    targets: [{provider: anthropic, model: claude-3-5-haiku-latest}]
rules:
  - {when: {tier: free}, route: cheap}
  - {when: {task: [summarize, classify]}, route: cheap}
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Providers[0].Timeout; got != 30*time.Second {
		t.Errorf("timeout = %v", got)
	}
	if got := c.Providers[1].Concurrency; got != DefaultConcurrency {
		t.Errorf("default concurrency = %d", got)
	}
	if got := c.Providers[1].Timeout; got != DefaultTimeout {
		t.Errorf("default timeout = %v", got)
	}
	r, _ := c.Route("chat")
	if *r.Retries != 1 || r.LatencyThreshold != 3*time.Second || r.Strategy != StrategyOrdered {
		t.Errorf("route = %+v", r)
	}
	if r.Targets[1].Weight != 1 {
		t.Errorf("default weight = %d", r.Targets[1].Weight)
	}
	cheap, _ := c.Route("cheap")
	if *cheap.Retries != DefaultRetries || len(cheap.FallbackOn) != len(DefaultFallbackOn) {
		t.Errorf("defaults not applied: %+v", cheap)
	}
	if c.DefaultRoute != "chat" {
		t.Errorf("default route = %q", c.DefaultRoute)
	}
	if !c.Rules[1].When["task"].Matches("classify") || c.Rules[1].When["task"].Matches("chat") {
		t.Errorf("list match wrong: %v", c.Rules[1].When)
	}
	if c.Limits.DedupWindow < 2*time.Minute {
		t.Errorf("dedup window = %v", c.Limits.DedupWindow)
	}
}

func TestParseErrors(t *testing.T) {
	base := `
providers:
  - {name: openai, kind: openai, base_url: "http://x"}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top key", base + "extra: 1\n", "extra: unknown key"},
		{"unknown nested key", `
providers:
  - {name: openai, kind: openai, base_url: "http://x", concurrncy: 3}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`, "providers[0].concurrncy: unknown key"},
		{"bad duration", `
providers:
  - {name: openai, kind: openai, base_url: "http://x", timeout: soon}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`, "providers[0].timeout: \"soon\" is not a duration"},
		{"bad int", `
providers:
  - {name: openai, kind: openai, base_url: "http://x", concurrency: lots}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`, "providers[0].concurrency:"},
		{"unknown provider in route", `
providers:
  - {name: openai, kind: openai, base_url: "http://x"}
routes:
  - {name: chat, targets: [{provider: nope, model: m}]}
`, `routes[0].targets[0].provider: unknown provider "nope"`},
		{"bad kind", `
providers:
  - {name: openai, kind: azure}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`, `providers[0].kind: "azure" must be`},
		{"bad name", `
providers:
  - {name: Open.AI, kind: mock}
routes:
  - {name: chat, targets: [{provider: Open.AI, model: m}]}
`, `providers[0].name: "Open.AI" must match`},
		{"bad strategy", `
providers:
  - {name: openai, kind: openai, base_url: "http://x"}
routes:
  - {name: chat, strategy: random, targets: [{provider: openai, model: m}]}
`, `routes[0].strategy: "random" must be`},
		{"rule to unknown route", base + "rules:\n  - {when: {tier: free}, route: gone}\n", `rules[0].route: unknown route "gone"`},
		{"unknown fallback type", `
providers:
  - {name: openai, kind: openai, base_url: "http://x"}
routes:
  - {name: chat, targets: [{provider: openai, model: m}], fallback_on: [oops]}
`, `routes[0].fallback_on[0]: unknown error type "oops"`},
		{"duplicate provider", `
providers:
  - {name: a, kind: mock}
  - {name: a, kind: mock}
routes:
  - {name: chat, targets: [{provider: a, model: m}]}
`, `providers[1].name: duplicate provider "a"`},
		{"no providers", "routes: []\n", "providers: at least one provider is required"},
		{"key in file", `
providers:
  - {name: openai, kind: openai, base_url: "http://x", api_key_env: "sk-abc123 secret"}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`, "providers[0].api_key_env: must name an environment variable"},
		{"short dedup window", base + "limits: {dedup_window: 10s}\n", "limits.dedup_window: must be at least 2m"},
		{"broken yaml", "providers: [\n", "invalid YAML"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("expected an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk-abc123") {
				t.Errorf("error leaks the value of a key: %q", err)
			}
		})
	}
}
