package workers_test

import (
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Jobs finishing together share telemetry messages, and every job's
// attempt and completion events are stored once each.
func TestTelemetrySharedMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a", concurrency: 32})
	e.startPool("a")
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.submit(newJob())
	}
	for _, id := range ids {
		if res := e.result(id, 30*time.Second); res.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %+v", id, res)
		}
	}
	e.waitEmpty(10 * time.Second) // acked, so its telemetry is stored
	msgs := e.count(topology.StreamTelemetry, topology.TelemetryBatch)
	if msgs >= n {
		t.Errorf("%d telemetry messages for %d jobs finishing together, want them shared", msgs, n)
	}
	attempts, completions := e.eventsByJob()
	for _, id := range ids {
		if attempts[id] != 1 || completions[id] != 1 {
			t.Errorf("job %s: %d attempt and %d completion events, want 1 each", id, attempts[id], completions[id])
		}
	}
	t.Logf("%d jobs, %d telemetry messages", n, msgs)
}
