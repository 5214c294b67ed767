package config

import (
	"strings"
	"testing"
	"time"
)

// TestStreamLimits: the DLQ and RESULTS bounds have defaults, take the
// values set, and refuse values too small to be safe (a dead letter must
// fit; a Result must outlive its job's redelivery), naming the key.
func TestStreamLimits(t *testing.T) {
	const base = `
providers: [{name: a, kind: mock}]
routes: [{name: chat, targets: [{provider: a, model: m}]}]
`
	parse := func(limits string) (Limits, error) {
		yaml := base
		if limits != "" {
			yaml += "limits: " + limits + "\n"
		}
		cfg, err := Parse([]byte(yaml))
		if err != nil {
			return Limits{}, err
		}
		return cfg.Limits, nil
	}
	for _, c := range []struct {
		limits string
		want   Limits
	}{
		{"", Limits{DLQMaxAge: DefaultDLQMaxAge, DLQMaxBytes: DefaultDLQMaxBytes, ResultsMaxMsgs: DefaultResultsMaxMsgs, ResultsMaxBytes: DefaultResultsMaxBytes}},
		{"{dlq_max_age: 72h, dlq_max_bytes: 104857600, results_max_msgs: 5000000, results_max_bytes: 17179869184}",
			Limits{DLQMaxAge: 72 * time.Hour, DLQMaxBytes: 100 << 20, ResultsMaxMsgs: 5_000_000, ResultsMaxBytes: 16 << 30}},
	} {
		l, err := parse(c.limits)
		if err != nil {
			t.Fatalf("limits %q: %v", c.limits, err)
		}
		if l.DLQMaxAge != c.want.DLQMaxAge || l.DLQMaxBytes != c.want.DLQMaxBytes || l.ResultsMaxMsgs != c.want.ResultsMaxMsgs || l.ResultsMaxBytes != c.want.ResultsMaxBytes {
			t.Errorf("limits %q: dlq_max_age %s, dlq_max_bytes %d, results_max_msgs %d, results_max_bytes %d; want %s, %d, %d, %d", c.limits,
				l.DLQMaxAge, l.DLQMaxBytes, l.ResultsMaxMsgs, l.ResultsMaxBytes, c.want.DLQMaxAge, c.want.DLQMaxBytes, c.want.ResultsMaxMsgs, c.want.ResultsMaxBytes)
		}
	}
	for _, c := range []struct{ limits, want string }{
		{"{dlq_max_age: -1h}", "limits.dlq_max_age: must be at least 1h"},
		{"{dlq_max_age: 5m}", "limits.dlq_max_age: must be at least 1h"},
		{"{dlq_max_bytes: -5}", "limits.dlq_max_bytes: must be at least 4194304"},
		{"{dlq_max_bytes: 1000}", "limits.dlq_max_bytes: must be at least 4194304"},
		{"{max_job_bytes: 1000, dlq_max_bytes: 3999}", "limits.dlq_max_bytes: must be at least 4000"},
		{"{dlq_max_age: soon}", `limits.dlq_max_age: "soon" is not a duration`},
		{"{results_max_msgs: -1}", "limits.results_max_msgs: must be at least 10000, got -1"},
		{"{results_max_msgs: 100}", "limits.results_max_msgs: must be at least 10000, got 100"},
		{"{results_max_bytes: 1048576}", "limits.results_max_bytes: must be at least 67108864, got 1048576"},
		{"{results_max_msgs: many}", "limits.results_max_msgs"},
	} {
		if _, err := parse(c.limits); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("limits %s: %v, want %q", c.limits, err, c.want)
		}
	}
}
