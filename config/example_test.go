package config

import "testing"

// The shipped example config must stay valid as the schema evolves.
func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../deploy/switchboard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) != 5 || c.DefaultRoute != "chat" {
		t.Fatalf("unexpected example config: %d providers, default route %q", len(c.Providers), c.DefaultRoute)
	}
	// The README calls it the full example: every provider kind and the
	// gateway, budget and breaker sections.
	kinds := map[string]bool{}
	for _, p := range c.Providers {
		kinds[p.Kind] = true
	}
	for _, k := range []string{KindOpenAI, KindAnthropic, KindGemini, KindMock} {
		if !kinds[k] {
			t.Errorf("no provider of kind %s", k)
		}
	}
	if len(c.Gateway.APIKeys) == 0 || len(c.Budgets) == 0 {
		t.Errorf("gateway keys %d, budgets %d", len(c.Gateway.APIKeys), len(c.Budgets))
	}
}
