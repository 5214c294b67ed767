package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// bench against a stand-in "gateway" (a second mock: any OpenAI-compatible
// endpoint serves) beside the mock it starts: a JSON report with both
// targets, every request answered, and the added latency.
func TestBenchReportsBothTargets(t *testing.T) {
	gw := testenv.StartMock(t, mock.Options{Seed: 1})
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--gateway", gw.URL(), "--mock", "127.0.0.1:0", "--rate", "200", "--requests", "50", "--json"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	if rep.Mode != "paced" || len(rep.Targets) != 2 || rep.Targets[0].Name != "direct" || rep.Targets[1].Name != "gateway" || rep.Added == nil {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Targets {
		if s.Requests != 50 || s.Errors != 0 || s.P50 <= 0 {
			t.Errorf("%s: %+v, want 50 answered", s.Name, s)
		}
	}
	out.Reset()
	if code := run([]string{"bench", "--gateway", gw.URL(), "--rate", "0", "--requests", "20"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "flat out") || !strings.Contains(out.String(), "gateway") {
		t.Errorf("flat out: exit %d, %q", code, out.String())
	}
	if code := run([]string{"bench", "--rate", "-1"}, &out, &errOut); code != exitUsage {
		t.Errorf("negative rate: exit %d, want usage error", code)
	}
}
