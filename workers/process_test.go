package workers_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// These tests run worker pools in separate processes (the test binary
// re-executed, see TestMain) and kill or signal them.

func TestWorkerKilledMidCall(t *testing.T) {
	t.Parallel()
	// AckWait is timeout+5s, so the killed worker's job comes back after ~6s.
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{Latency: 700 * time.Millisecond}, timeout: time.Second})
	w := e.startWorker("a", time.Second)
	id := e.submit(newJob())
	natstest.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().InFlight; n != 1 {
			return fmt.Errorf("%d calls in flight", n)
		}
		return nil
	})
	if err := w.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(t, 10*time.Second); err == nil {
		t.Fatal("killed worker exited cleanly")
	}
	if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 0 {
		t.Fatalf("%d results before redelivery: the worker was not killed mid-call", n)
	}
	e.startWorker("a", time.Second)
	res := e.result(id, 20*time.Second)
	if res.Status != schemas.StatusSucceeded {
		t.Fatalf("result %s %+v", res.Status, res.Error)
	}
	e.waitEmpty(5 * time.Second)
	if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 1 {
		t.Errorf("%d results for the job, want exactly 1", n)
	}
	if n := e.mocks["a"].Stats().Requests; n != 2 {
		t.Errorf("%d provider calls, want 2 (the killed one and the redelivery)", n)
	}
}

func TestConcurrencyCapAcrossProcesses(t *testing.T) {
	t.Parallel()
	const cap, jobs = 3, 30
	e := newEnv(t, 0, provider{name: "a", concurrency: cap, faults: mock.Faults{Latency: 40 * time.Millisecond}})
	w1 := e.startWorker("a", time.Second)
	w2 := e.startWorker("a", time.Second)
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = e.submit(newJob())
	}
	for _, id := range ids {
		if res := e.result(id, 30*time.Second); res.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %s %+v", id, res.Status, res.Error)
		}
	}
	s1, s2 := w1.Stop(t), w2.Stop(t)
	if s1.Succeeded+s2.Succeeded != jobs {
		t.Errorf("workers succeeded %d + %d jobs, want %d", s1.Succeeded, s2.Succeeded, jobs)
	}
	if s1.Succeeded == 0 || s2.Succeeded == 0 {
		t.Errorf("one worker did all the work (%d / %d): the cap was not shared", s1.Succeeded, s2.Succeeded)
	}
	// Each process runs `cap` goroutines; only the consumer's MaxAckPending
	// keeps the two together at `cap`.
	if got := e.mocks["a"].Stats().MaxInFlight; got > cap {
		t.Errorf("provider saw %d calls at once, cap is %d", got, cap)
	}
}

func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	const jobs = 40
	e := newEnv(t, 0, provider{name: "a", concurrency: 4, faults: mock.Faults{Latency: 150 * time.Millisecond}})
	// A short drain: calls still running after it are handed back.
	w1 := e.startWorker("a", 50*time.Millisecond)
	w2 := e.startWorker("a", 50*time.Millisecond)
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = e.submit(newJob())
	}
	natstest.CheckFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if n := e.count(topology.StreamResults, ">"); n < 8 {
			return fmt.Errorf("%d results so far", n)
		}
		return nil
	})
	s1 := w1.Stop(t)
	for _, id := range ids {
		if res := e.result(id, 30*time.Second); res.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %s %+v", id, res.Status, res.Error)
		}
	}
	e.waitEmpty(5 * time.Second)
	for _, id := range ids {
		if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 1 {
			t.Errorf("job %s has %d results, want exactly 1", id, n)
		}
	}
	s2 := w2.Stop(t)
	t.Logf("terminated worker: %+v; survivor: %+v", s1, s2)
	if s2.Succeeded == 0 {
		t.Error("the surviving worker finished nothing")
	}
}
