package config

import (
	"strings"
	"testing"
	"time"
)

func TestAnalyticsDefaultsAndValidation(t *testing.T) {
	base := "providers: [{name: p, kind: mock}]\nroutes: [{name: r, targets: [{provider: p, model: m}]}]\n"
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Analytics.BatchRows != DefaultBatchRows || c.Analytics.BatchInterval != DefaultBatchInterval {
		t.Fatalf("defaults = %+v", c.Analytics)
	}
	c, err = Parse([]byte(base + "analytics: {batch_rows: 500, batch_interval: 250ms}\n"))
	if err != nil || c.Analytics.BatchRows != 500 || c.Analytics.BatchInterval != 250*time.Millisecond {
		t.Fatalf("analytics = %+v, %v", c.Analytics, err)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"analytics: {batch_rows: -1}", "analytics.batch_rows"},
		{"analytics: {batch_rows: 2000000}", "analytics.batch_rows"},
		{"analytics: {batch_interval: -1s}", "analytics.batch_interval"},
		{"analytics: {prices_file: /nonexistent/prices.json}", "analytics.prices_file"},
		{"analytics: {batch_size: 10}", "batch_size"},
	} {
		if _, err := Parse([]byte(base + tt.yaml + "\n")); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to name %s", tt.yaml, err, tt.want)
		}
	}
}
