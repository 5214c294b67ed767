package config

import "testing"

// The shipped example config must stay valid as the schema evolves.
func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../deploy/switchboard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) != 4 || c.DefaultRoute != "chat" {
		t.Fatalf("unexpected example config: %d providers, default route %q", len(c.Providers), c.DefaultRoute)
	}
}
