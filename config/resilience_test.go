package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const resilienceBase = `
providers:
  - {name: a, kind: mock, api_key_env: SB_TEST_KEY_A, api_key_envs: [SB_TEST_KEY_B, SB_TEST_KEY_C]}
routes:
  - {name: chat, targets: [{provider: a, model: m}]}
  - {name: cheap, targets: [{provider: a, model: small}]}
`

func TestResilienceDefaults(t *testing.T) {
	c, err := Parse([]byte(resilienceBase))
	if err != nil {
		t.Fatal(err)
	}
	if c.Breaker.Failures != DefaultBreakerFailures || c.Breaker.Cooldown != DefaultBreakerCooldown ||
		c.Breaker.Probes != DefaultBreakerProbes || c.Breaker.ErrorRate != DefaultBreakerErrorRate ||
		c.Breaker.Window != DefaultBreakerWindow || c.Breaker.MinRequests != DefaultBreakerMinRequests ||
		len(c.Breaker.TripOn) != len(DefaultTripOn) {
		t.Errorf("breaker defaults = %+v", c.Breaker)
	}
	if c.RateLimits.Window != time.Minute {
		t.Errorf("rate window = %v", c.RateLimits.Window)
	}
	if c.Lanes != (Lanes{High: DefaultLaneHigh, Normal: DefaultLaneNormal, Low: DefaultLaneLow}) {
		t.Errorf("lanes = %+v", c.Lanes)
	}
	if c.Routing.EWMAAlpha != DefaultEWMAAlpha || c.Routing.DefaultOutputTokens != DefaultOutputTokens || c.Routing.LatencyFlush != DefaultLatencyFlush {
		t.Errorf("routing = %+v", c.Routing)
	}
	if c.Routes[0].Mode != ModeCancel {
		t.Errorf("mode = %q", c.Routes[0].Mode)
	}
}

func TestBudgetsParse(t *testing.T) {
	c, err := Parse([]byte(resilienceBase + `
budgets:
  - {tenant: acme, daily_usd: 5, monthly_usd: 100, on_exceed: {route: cheap}}
  - {tenant: beta, monthly_usd: 10, on_exceed: reject}
  - {tenant: "*", daily_usd: 1}
lanes: {high: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tenant string
		want   Budget
	}{
		{"acme", Budget{Tenant: "acme", DailyUSD: 5, MonthlyUSD: 100, OnExceed: OnExceed{Route: "cheap"}}},
		{"beta", Budget{Tenant: "beta", MonthlyUSD: 10, OnExceed: OnExceed{Reject: true}}},
		{"other", Budget{Tenant: "*", DailyUSD: 1, OnExceed: OnExceed{Reject: true}}},
	}
	for _, tc := range cases {
		got, ok := c.BudgetFor(tc.tenant)
		if !ok || got != tc.want {
			t.Errorf("BudgetFor(%q) = %+v, %v; want %+v", tc.tenant, got, ok, tc.want)
		}
	}
	if c.Lanes.High != 10 || c.Lanes.Low != DefaultLaneLow {
		t.Errorf("partial lanes = %+v", c.Lanes)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Setenv("SB_TEST_KEY_A", "ka")
	t.Setenv("SB_TEST_KEY_B", "")
	t.Setenv("SB_TEST_KEY_C", "kc")
	c, err := Parse([]byte(resilienceBase))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Providers[0].APIKeys()
	if strings.Join(got, ",") != "ka,kc" {
		t.Errorf("keys = %v", got)
	}
	p := c.Providers[0]
	if got := strings.Join(p.KeyEnvNames(), ","); got != "SB_TEST_KEY_A,SB_TEST_KEY_B,SB_TEST_KEY_C" {
		t.Errorf("key env names = %s", got)
	}
	// A variable holding a key an earlier one holds is skipped: one key, one adapter.
	t.Setenv("SB_TEST_KEY_C", "ka")
	if got := strings.Join(p.KeyEnvs(), ","); got != "SB_TEST_KEY_A" {
		t.Errorf("key envs with a duplicate = %s, want SB_TEST_KEY_A", got)
	}
	if got := strings.Join(p.APIKeys(), ","); got != "ka" {
		t.Errorf("keys with a duplicate = %s, want ka", got)
	}
}

func TestResilienceErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"bad mode", strings.Replace(resilienceBase, "{name: chat,", "{name: chat, mode: race,", 1), `routes[0].mode: "race" must be cancel or hedge`},
		{"key in api_key_envs", strings.Replace(resilienceBase, "SB_TEST_KEY_C", `"sk-live secret"`, 1), "providers[0].api_key_envs[1]: must name an environment variable"},
		{"budget unknown route", resilienceBase + "budgets: [{tenant: x, daily_usd: 1, on_exceed: {route: nope}}]\n", `budgets[0].on_exceed.route: unknown route "nope"`},
		{"budget bad on_exceed", resilienceBase + "budgets: [{tenant: x, daily_usd: 1, on_exceed: drop}]\n", `budgets[0].on_exceed`},
		{"budget on_exceed unknown key", resilienceBase + "budgets: [{tenant: x, daily_usd: 1, on_exceed: {rout: cheap}}]\n", `unknown key "rout"`},
		{"budget no caps", resilienceBase + "budgets: [{tenant: x}]\n", "budgets[0]: needs daily_usd or monthly_usd"},
		{"budget no tenant", resilienceBase + "budgets: [{daily_usd: 1}]\n", "budgets[0].tenant: is required"},
		{"budget duplicate", resilienceBase + "budgets: [{tenant: x, daily_usd: 1}, {tenant: x, daily_usd: 2}]\n", `budgets[1].tenant: duplicate budget for tenant "x"`},
		{"budget negative", resilienceBase + "budgets: [{tenant: x, daily_usd: -1}]\n", "budgets[0].daily_usd: must not be negative"},
		{"error rate", resilienceBase + "breaker: {error_rate: 1.5}\n", "breaker.error_rate: must be between 0 and 1"},
		{"trip on", resilienceBase + "breaker: {trip_on: [oops]}\n", `breaker.trip_on[0]: unknown error type "oops"`},
		{"breaker unknown key", resilienceBase + "breaker: {cooldwn: 1s}\n", "breaker.cooldwn: unknown key"},
		{"rate window", resilienceBase + "rate_limits: {window: 1ms}\n", "rate_limits.window: must be at least 100ms"},
		{"lanes negative", resilienceBase + "lanes: {low: -1}\n", "lanes: weights must not be negative"},
		{"alpha", resilienceBase + "routing: {ewma_alpha: 2}\n", "routing.ewma_alpha: must be in (0, 1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("expected an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk-live") {
				t.Errorf("error leaks a key: %q", err)
			}
		})
	}
}
