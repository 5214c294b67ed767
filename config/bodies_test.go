package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// analytics.log_bodies is off by default with an 8 KiB cap; a cap outside
// 1..MaxLogBodyBytes is refused naming the key.
func TestLogBodiesConfig(t *testing.T) {
	base := "providers:\n  - {name: p, kind: mock, base_url: 'http://127.0.0.1:1/v1'}\nroutes:\n  - {name: chat, targets: [{provider: p, model: m}]}\n"
	load := func(extra string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(path)
	}
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Analytics.LogBodies || c.Analytics.LogBodyBytes != DefaultLogBodyBytes {
		t.Fatalf("defaults: log_bodies %v, log_body_bytes %d", c.Analytics.LogBodies, c.Analytics.LogBodyBytes)
	}
	c, err = load("analytics: {log_bodies: true, log_body_bytes: 1024}\n")
	if err != nil || !c.Analytics.LogBodies || c.Analytics.LogBodyBytes != 1024 {
		t.Fatalf("on: %+v, %v", c.Analytics, err)
	}
	for _, bad := range []string{"-1", "262145"} {
		if _, err := load("analytics: {log_bodies: true, log_body_bytes: " + bad + "}\n"); err == nil || !strings.Contains(err.Error(), "analytics.log_body_bytes") {
			t.Errorf("log_body_bytes %s: err = %v", bad, err)
		}
	}
}
