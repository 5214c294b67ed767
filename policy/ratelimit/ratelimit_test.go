package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func TestTwoProcessesHoldRPM(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	rl := config.RateLimits{Window: 200 * time.Millisecond}
	p := config.Provider{Name: "p", RPM: 3000} // 10 per 200ms window
	var lims []*Limiter
	for i := 0; i < 2; i++ {
		_, js := srv.Connect(t)
		l, err := New(ctx, js, rl, Options{})
		if err != nil {
			t.Fatal(err)
		}
		lims = append(lims, l)
	}
	if r, _ := lims[0].Limits(p); r != 10 {
		t.Fatalf("per-window requests = %d, want 10", r)
	}
	var mu sync.Mutex
	granted := map[int64]int{}
	denied := 0
	var wg sync.WaitGroup
	for _, l := range lims {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(l *Limiter) {
				defer wg.Done()
				for i := 0; i < 15; i++ {
					res, err := l.Reserve(ctx, p, 1)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if res.OK {
						granted[res.Window]++
					} else {
						denied++
						if !res.RetryAt.After(time.Unix(0, res.Window*int64(rl.Window))) {
							t.Errorf("retry at %v is not after the window start", res.RetryAt)
						}
					}
					mu.Unlock()
				}
			}(l)
		}
	}
	wg.Wait()
	total := 0
	for w, n := range granted {
		total += n
		if n > 10 {
			t.Errorf("window %d granted %d, over the limit of 10", w, n)
		}
	}
	if total+denied != 120 || denied == 0 {
		t.Errorf("granted %d denied %d of 120", total, denied)
	}
}

func TestTPM(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	l, err := New(ctx, js, config.RateLimits{Window: time.Minute}, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p := config.Provider{Name: "p", TPM: 1000}
	steps := []struct {
		tokens int
		ok     bool
	}{{600, true}, {300, true}, {200, false}, {100, true}, {1, false}}
	var first Reservation
	for i, s := range steps {
		res, err := l.Reserve(ctx, p, s.tokens)
		if err != nil || res.OK != s.ok {
			t.Fatalf("step %d: %+v %v, want ok=%v", i, res, err, s.ok)
		}
		if !s.ok && !res.RetryAt.Equal(now.Add(time.Minute)) {
			t.Errorf("retry at %v, want the next minute", res.RetryAt)
		}
		if i == 0 {
			first = res
		}
	}
	// The first call really used 100 tokens, not 600: 500 come back.
	if err := l.Commit(ctx, p, first, 100); err != nil {
		t.Fatal(err)
	}
	if _, tok, _ := l.Usage(ctx, "p", now); tok != 500 {
		t.Fatalf("after commit tokens = %d, want 500", tok)
	}
	if res, _ := l.Reserve(ctx, p, 200); !res.OK {
		t.Error("200 tokens refused after the correction")
	}
	big := config.Provider{Name: "big", TPM: 10}
	if res, _ := l.Reserve(ctx, big, 50); !res.OK {
		t.Error("an oversized request must pass in an empty window")
	}
	if res, _ := l.Reserve(ctx, config.Provider{Name: "free"}, 1e9); !res.OK {
		t.Error("no limits must always pass")
	}
}

func TestDelay(t *testing.T) {
	now := time.Unix(100, 0)
	dl := now.Add(5 * time.Second)
	cases := []struct {
		retry    time.Duration
		deadline *time.Time
		need     time.Duration
		ok       bool
	}{
		{2 * time.Second, nil, time.Hour, true},
		{2 * time.Second, &dl, time.Second, true},
		{4 * time.Second, &dl, 2 * time.Second, false},
		{-time.Second, &dl, 0, true},
	}
	for i, c := range cases {
		d, ok := Delay(now.Add(c.retry), now, c.deadline, c.need)
		if ok != c.ok || d < 0 {
			t.Errorf("case %d: %v %v, want ok=%v", i, d, ok, c.ok)
		}
	}
}

// A count stored after its window ended (a slow KV round trip under load)
// must not be granted in that window: the call would land in the next
// window on top of its full quota. It is given back and counted in the
// window that is current when the reservation is granted.
func TestReserveCountedTooLateMovesToCurrentWindow(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	const w = time.Minute
	start := time.Unix(1_800_000_000, 0) // a window boundary
	var mu sync.Mutex
	clock := []time.Time{start.Add(-time.Millisecond), start.Add(time.Millisecond)} // the update outlasts the window
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := clock[0]
		if len(clock) > 1 {
			clock = clock[1:]
		}
		return t
	}
	l, err := New(ctx, js, config.RateLimits{Window: w}, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	p := config.Provider{Name: "p", RPM: 1}
	res, err := l.Reserve(ctx, p, 10)
	if err != nil || !res.OK {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	if want := start.UnixNano() / int64(w); res.Window != want || !res.CallBy.Equal(start.Add(w)) {
		t.Errorf("granted in window %d (call by %v), want %d (call by %v)", res.Window, res.CallBy, want, start.Add(w))
	}
	if n, tok, _ := l.Usage(ctx, "p", start.Add(-time.Millisecond)); n != 0 || tok != 0 {
		t.Errorf("the ended window keeps %d requests and %d tokens, want none", n, tok)
	}
	if n, _, _ := l.Usage(ctx, "p", start); n != 1 {
		t.Errorf("the current window counts %d requests, want 1", n)
	}
	// Release gives a granted reservation back (a call that was not made).
	if err := l.Release(ctx, p, res); err != nil {
		t.Fatal(err)
	}
	if n, tok, _ := l.Usage(ctx, "p", start); n != 0 || tok != 0 {
		t.Errorf("after release: %d requests, %d tokens, want none", n, tok)
	}
}
