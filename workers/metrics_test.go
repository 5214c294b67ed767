package workers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// The pool's Prometheus collector reports what Stats counts, per provider.
func TestPoolCollectorExportsStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, provider{name: "a", faults: mock.Faults{ErrorRate: 1, ErrorStatus: 503}}, provider{name: "b"})
	e.startPool("a")
	e.startPool("b")
	e.result(e.submit(newJob()), 10*time.Second)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.pools["a"].Collector(), e.pools["b"].Collector())
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.pools["b"].Stats().Succeeded; n != 1 {
			return fmt.Errorf("b succeeded %d", n)
		}
		// a counts its fallback after the job's ack is confirmed, which may
		// be after b has answered it.
		if n := e.pools["a"].Stats().FellBack; n != 1 {
			return fmt.Errorf("a fell back %d", n)
		}
		return nil
	})
	want := `
# HELP switchboard_worker_calls_total Provider calls made by this worker process.
# TYPE switchboard_worker_calls_total counter
switchboard_worker_calls_total{provider="a"} 2
switchboard_worker_calls_total{provider="b"} 1
# HELP switchboard_worker_in_flight Jobs this worker process is processing now.
# TYPE switchboard_worker_in_flight gauge
switchboard_worker_in_flight{provider="a"} 0
switchboard_worker_in_flight{provider="b"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchboard_worker_calls_total", "switchboard_worker_in_flight"); err != nil {
		t.Error(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_worker_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetValue())
			}
			got[strings.Join(l, " ")] = m.GetCounter().GetValue()
		}
	}
	// Labels sorted by name: outcome, provider.
	if got["fell_back a"] != 1 || got["succeeded b"] != 1 || got["succeeded a"] != 0 || got["failed b"] != 0 || len(got) != 14 {
		t.Errorf("switchboard_worker_jobs_total = %v", got)
	}
}
