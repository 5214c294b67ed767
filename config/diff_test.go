package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
)

// TestDiff names the first difference between two configs, or none.
func TestDiff(t *testing.T) {
	load := func() *config.Config {
		c, err := config.Load("../deploy/switchboard.example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := load(), load()
	if d := config.Diff(a, b); d != "" {
		t.Fatalf("same config: %q", d)
	}
	b.Providers[0].Concurrency = a.Providers[0].Concurrency + 1
	want := fmt.Sprintf("providers[0].concurrency: %d here, %d there", a.Providers[0].Concurrency, b.Providers[0].Concurrency)
	if d := config.Diff(a, b); d != want {
		t.Errorf("changed concurrency: %q, want %q", d, want)
	}
	b = load()
	b.Routes = b.Routes[:len(b.Routes)-1]
	if d, want := config.Diff(a, b), fmt.Sprintf("routes[%d]: only here", len(b.Routes)); d != want {
		t.Errorf("removed route: %q, want %q", d, want)
	}
	b = load()
	b.Routes[0].Name = "other"
	if d, want := config.Diff(a, b), `"other" there`; !strings.HasSuffix(d, want) || !strings.HasPrefix(d, "routes[0].name: ") {
		t.Errorf("renamed route: %q", d)
	}
}
