package config

import (
	"strings"
	"testing"
)

const gatewayBase = `
providers:
  - {name: openai, kind: openai, base_url: "http://x"}
routes:
  - {name: chat, targets: [{provider: openai, model: m}]}
`

func TestGatewayDefaultsAndKeys(t *testing.T) {
	c, err := Parse([]byte(gatewayBase + `
gateway:
  max_in_flight: 8
  api_keys:
    - {key_env: SB_KEY_TEAM_A, tenant: a, tier: enterprise}
    - {key_env: SB_KEY_TEAM_B}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.MaxInFlight != 8 || len(c.Gateway.APIKeys) != 2 || c.Gateway.APIKeys[0].Tenant != "a" || c.Gateway.APIKeys[0].Tier != "enterprise" {
		t.Errorf("gateway = %+v", c.Gateway)
	}
	t.Setenv("SB_KEY_TEAM_A", "k-a")
	if got := c.Gateway.APIKeys[0].Key(); got != "k-a" {
		t.Errorf("key = %q", got)
	}
	d, err := Parse([]byte(gatewayBase))
	if err != nil {
		t.Fatal(err)
	}
	if d.Gateway.MaxInFlight != DefaultMaxInFlight || d.Gateway.MaxBodyBytes != DefaultMaxBodyBytes ||
		d.Gateway.ReadHeaderTimeout != DefaultReadHeaderTimeout || d.Gateway.ReadBodyTimeout != DefaultReadBodyTimeout || d.Gateway.PublicMetrics {
		t.Errorf("defaults not applied: %+v", d.Gateway)
	}
}

func TestGatewayErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"negative in flight", "gateway: {max_in_flight: -1}\n", "gateway.max_in_flight: must be positive"},
		{"negative header timeout", "gateway: {read_header_timeout: -1s}\n", "gateway.read_header_timeout: must not be negative"},
		{"negative body timeout", "gateway: {read_body_timeout: -2s}\n", "gateway.read_body_timeout: must not be negative"},
		{"body timeout not a duration", "gateway: {read_body_timeout: soon}\n", "read_body_timeout"},
		{"key in file", "gateway: {api_keys: [{key_env: \"sk-secret value\"}]}\n", "gateway.api_keys[0].key_env: must name an environment variable"},
		{"missing key env", "gateway: {api_keys: [{tenant: a}]}\n", "gateway.api_keys[0].key_env: is required"},
		{"duplicate key env", "gateway: {api_keys: [{key_env: A}, {key_env: A}]}\n", `gateway.api_keys[1].key_env: duplicate "A"`},
		{"unknown key", "gateway: {api_keys: [{key: x}]}\n", "gateway.api_keys[0].key: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(gatewayBase + tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk-secret") {
				t.Errorf("error leaks a key: %v", err)
			}
		})
	}
}
