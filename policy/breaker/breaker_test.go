package breaker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func testCfg() config.Breaker {
	return config.Breaker{
		Failures: 3, ErrorRate: 0.5, MinRequests: 10, Window: time.Minute,
		Cooldown: 150 * time.Millisecond, Probes: 1, TripOn: config.DefaultTripOn,
	}
}

// sets opens n breaker sets on separate connections, like n worker processes.
func sets(t *testing.T, n int, cfg config.Breaker) []*Set {
	t.Helper()
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	out := make([]*Set, n)
	for i := range out {
		_, js := srv.Connect(t)
		s, err := New(ctx, js, cfg, Options{FlushEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func waitState(t *testing.T, s *Set, want string) {
	t.Helper()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := s.Get("p", "m").State; got != want {
			return fmt.Errorf("state %s, want %s", got, want)
		}
		return nil
	})
}

func TestConsecutiveFailuresOpenAcrossProcesses(t *testing.T) {
	ss := sets(t, 2, testCfg())
	a, b := ss[0], ss[1]
	ctx := context.Background()
	must(t, a.Record(ctx, "p", "m", "server_error"))
	must(t, b.Record(ctx, "p", "m", "timeout"))
	waitState(t, a, Closed)
	// A rate limit is neither success nor failure: the streak goes on.
	must(t, a.Record(ctx, "p", "m", "rate_limited"))
	if a.Open("p", "m") {
		t.Fatal("open after 2 failures")
	}
	must(t, a.Record(ctx, "p", "m", "connection"))
	waitState(t, b, Open)
	if !b.Open("p", "m") {
		t.Error("b does not report open")
	}
	d, err := b.Allow(ctx, "p", "m")
	if err != nil || d.Allowed || d.RetryAt.IsZero() {
		t.Errorf("allow while open = %+v, %v", d, err)
	}
	if d, _ := a.Allow(ctx, "p", "other-model"); !d.Allowed {
		t.Error("breakers are per provider+model")
	}
}

func TestSuccessResetsStreak(t *testing.T) {
	ss := sets(t, 1, testCfg())
	s, ctx := ss[0], context.Background()
	for i := 0; i < 5; i++ {
		must(t, s.Record(ctx, "p", "m", "server_error"))
		must(t, s.Record(ctx, "p", "m", "server_error"))
		for j := 0; j < 6; j++ {
			must(t, s.Record(ctx, "p", "m", ""))
		}
	}
	// 10 failures in 40 calls: under the 50% rate, and no streak of 3.
	if st := s.Get("p", "m"); st.State != Closed || st.Consecutive != 0 {
		t.Errorf("state = %+v, want closed with streak reset", st)
	}
}

func TestErrorRateOpens(t *testing.T) {
	cfg := testCfg()
	cfg.Failures = 1000
	ss := sets(t, 2, cfg)
	a, b, ctx := ss[0], ss[1], context.Background()
	// 60% failures over 10 calls from two processes; successes batch locally
	// and ride along with the next failure.
	pattern := []string{"", "server_error", "", "server_error", "server_error", "", "server_error", "", "server_error", "server_error"}
	for i, e := range pattern {
		s := a
		if i%2 == 1 {
			s = b
		}
		if s.Open("p", "m") {
			t.Fatalf("opened early at call %d", i)
		}
		must(t, s.Record(ctx, "p", "m", e))
	}
	waitState(t, a, Open)
}

func TestHalfOpenProbeCloses(t *testing.T) {
	ss := sets(t, 2, testCfg())
	a, b, ctx := ss[0], ss[1], context.Background()
	for i := 0; i < 3; i++ {
		must(t, a.Record(ctx, "p", "m", "server_error"))
	}
	waitState(t, b, Open)
	var probe Decision
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		d, err := b.Allow(ctx, "p", "m")
		if err != nil {
			return err
		}
		if !d.Allowed {
			return fmt.Errorf("still refused until %v", d.RetryAt)
		}
		probe = d
		return nil
	})
	if !probe.Probe {
		t.Error("call after cooldown is not a probe")
	}
	waitState(t, a, HalfOpen)
	if d, _ := a.Allow(ctx, "p", "m"); d.Allowed {
		t.Error("second probe granted while the first is in flight (probes: 1)")
	}
	must(t, b.Record(ctx, "p", "m", ""))
	waitState(t, a, Closed)
	if d, _ := a.Allow(ctx, "p", "m"); !d.Allowed {
		t.Error("closed breaker refuses")
	}
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	ss := sets(t, 1, testCfg())
	s, ctx := ss[0], context.Background()
	for i := 0; i < 3; i++ {
		must(t, s.Record(ctx, "p", "m", "timeout"))
	}
	opened := s.Get("p", "m").OpenedAt
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, _ := s.Allow(ctx, "p", "m"); !d.Allowed {
			return fmt.Errorf("refused")
		}
		return nil
	})
	must(t, s.Record(ctx, "p", "m", "server_error"))
	st := s.Get("p", "m")
	if st.State != Open || !st.OpenedAt.After(opened) {
		t.Errorf("after failed probe: %+v, want re-opened later than %v", st, opened)
	}
}

func TestConcurrentRecordsLoseNothing(t *testing.T) {
	cfg := testCfg()
	cfg.Failures, cfg.ErrorRate = 100000, 1
	cfg.MinRequests = 100000
	ss := sets(t, 4, cfg)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func(s *Set) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := s.Record(ctx, "p", "m", "server_error"); err != nil {
					t.Error(err)
				}
			}
		}(s)
	}
	wg.Wait()
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := ss[0].Get("p", "m"); st.Failures != 100 || st.Consecutive != 100 {
			return fmt.Errorf("failures %d consecutive %d, want 100", st.Failures, st.Consecutive)
		}
		return nil
	})
}

func TestDisabled(t *testing.T) {
	cfg := testCfg()
	cfg.Disabled = true
	ss := sets(t, 1, cfg)
	s, ctx := ss[0], context.Background()
	for i := 0; i < 10; i++ {
		must(t, s.Record(ctx, "p", "m", "server_error"))
	}
	if d, _ := s.Allow(ctx, "p", "m"); !d.Allowed || s.Open("p", "m") {
		t.Error("disabled breaker refuses")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Successes counted since the last flush are pushed when the set stops:
// another process sees them.
func TestStopFlushesCountedSuccesses(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, js := srv.Connect(t)
	a, err := New(ctx, js, testCfg(), Options{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, js2 := srv.Connect(t)
	b, err := New(natstest.Context(t), js2, testCfg(), Options{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		must(t, a.Record(context.Background(), "p", "m", ""))
	}
	cancel()
	<-a.Done()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := b.Get("p", "m").Calls; got != 4 {
			return fmt.Errorf("the other process sees %d calls, want the 4 successes", got)
		}
		return nil
	})
}
