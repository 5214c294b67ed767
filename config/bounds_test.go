package config

import (
	"strings"
	"testing"
	"time"
)

// TestResultsLimits: RESULTS is bounded by count and bytes as well as age,
// with defaults, and caps too small to outlive a job's redelivery refused.
func TestResultsLimits(t *testing.T) {
	base := `
providers: [{name: a, kind: mock}]
routes: [{name: chat, targets: [{provider: a, model: m}]}]
`
	cfg, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.ResultsMaxMsgs != DefaultResultsMaxMsgs || l.ResultsMaxBytes != DefaultResultsMaxBytes {
		t.Errorf("defaults: results_max_msgs %d, results_max_bytes %d", l.ResultsMaxMsgs, l.ResultsMaxBytes)
	}
	cfg, err = Parse([]byte(base + "limits: {results_max_msgs: 5000000, results_max_bytes: 17179869184}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.ResultsMaxMsgs != 5_000_000 || l.ResultsMaxBytes != 16<<30 {
		t.Errorf("set: results_max_msgs %d, results_max_bytes %d", l.ResultsMaxMsgs, l.ResultsMaxBytes)
	}
	for _, c := range []struct{ limits, want string }{
		{"{results_max_msgs: -1}", "limits.results_max_msgs: must be at least 10000, got -1"},
		{"{results_max_msgs: 100}", "limits.results_max_msgs: must be at least 10000, got 100"},
		{"{results_max_bytes: 1048576}", "limits.results_max_bytes: must be at least 67108864, got 1048576"},
		{"{results_max_msgs: many}", "limits.results_max_msgs"},
	} {
		_, err := Parse([]byte(base + "limits: " + c.limits + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("limits %s: %v, want %q", c.limits, err, c.want)
		}
	}
}

func TestDLQLimits(t *testing.T) {
	base := `
providers: [{name: a, kind: mock}]
routes: [{name: chat, targets: [{provider: a, model: m}]}]
`
	cfg, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.DLQMaxAge != DefaultDLQMaxAge || cfg.Limits.DLQMaxBytes != DefaultDLQMaxBytes {
		t.Errorf("defaults: dlq_max_age %s, dlq_max_bytes %d", cfg.Limits.DLQMaxAge, cfg.Limits.DLQMaxBytes)
	}
	cfg, err = Parse([]byte(base + "limits: {dlq_max_age: 72h, dlq_max_bytes: 104857600}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.DLQMaxAge != 72*time.Hour || cfg.Limits.DLQMaxBytes != 100<<20 {
		t.Errorf("set: dlq_max_age %s, dlq_max_bytes %d", cfg.Limits.DLQMaxAge, cfg.Limits.DLQMaxBytes)
	}
	for _, c := range []struct{ limits, want string }{
		{"{dlq_max_age: -1h}", "limits.dlq_max_age: must be at least 1h"},
		{"{dlq_max_age: 5m}", "limits.dlq_max_age: must be at least 1h"},
		{"{dlq_max_bytes: -5}", "limits.dlq_max_bytes: must be at least 4194304"},
		{"{dlq_max_bytes: 1000}", "limits.dlq_max_bytes: must be at least 4194304"},
		{"{max_job_bytes: 1000, dlq_max_bytes: 3999}", "limits.dlq_max_bytes: must be at least 4000"},
		{"{dlq_max_age: soon}", `limits.dlq_max_age: "soon" is not a duration`},
	} {
		_, err := Parse([]byte(base + "limits: " + c.limits + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("limits %s: %v, want %q", c.limits, err, c.want)
		}
	}
}
