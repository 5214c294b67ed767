package config

import (
	"strings"
	"testing"
)

// Names that become subjects, KV keys, headers or ClickHouse columns are
// held to the identifier limits of schemas (limits.go).
func TestConfigIdentifierLimits(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	cases := []struct{ name, yaml, want string }{
		{"provider too long", `
providers: [{name: ` + long("p", 65) + `, kind: mock}]
routes: [{name: chat, targets: [{provider: ` + long("p", 65) + `, model: m}]}]
`, "providers[0].name: is 65 bytes, over the limit of 64"},
		{"route with a space", gatewayBase + `  - {name: "my route", targets: [{provider: openai, model: m}]}
`, "routes[1].name: must be 1 to 128 bytes of letters, digits"},
		{"route too long", gatewayBase + `  - {name: ` + long("r", 129) + `, targets: [{provider: openai, model: m}]}
`, "routes[1].name: is 129 bytes, over the limit of 128"},
		{"target model too long", gatewayBase + `  - {name: big, targets: [{provider: openai, model: ` + long("m", 257) + `}]}
`, "routes[1].targets[0].model: is 257 bytes, over the limit of 256"},
		{"target model with a space", gatewayBase + `  - {name: sp, targets: [{provider: openai, model: "gpt 4"}]}
`, "routes[1].targets[0].model: must be 1 to 256 bytes of printable ASCII without spaces"},
		{"priced model too long", gatewayBase + "models: [{provider: openai, name: " + long("m", 300) + "}]\n",
			"models[0].name: is 300 bytes, over the limit of 256"},
		{"key tenant too long", gatewayBase + "gateway: {api_keys: [{key_env: K, tenant: " + long("t", 129) + "}]}\n",
			"gateway.api_keys[0].tenant: is 129 bytes, over the limit of 128"},
		{"budget tenant too long", gatewayBase + "budgets: [{tenant: " + long("t", 200) + ", daily_usd: 1}]\n",
			"budgets[0].tenant: is 200 bytes, over the limit of 128"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Real model ids keep working: slashes, dots, colons, @.
	ok := gatewayBase + `  - {name: "claude-3.5:latest@eu", targets: [{provider: openai, model: "accounts/fireworks/models/llama-v3p1-8b"}, {provider: openai, model: "anthropic.claude-3-sonnet-20240229-v1:0"}, {provider: openai, model: "ft:gpt-4o-mini:org:custom:id"}]}
`
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatal(err)
	}
}
