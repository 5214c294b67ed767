package memlimit

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name        string
		live, other uint64
		o           Options
		want        uint64
	}{
		{"small heap: the floor", 50 * mib, 20 * mib, Options{Floor: 320 * mib}, 320 * mib},
		{"large heap: twice live plus non-heap", 200 * mib, 20 * mib, Options{Floor: 320 * mib}, 420 * mib},
		{"headroom 0.5", 200 * mib, 20 * mib, Options{Floor: 10 * mib, Headroom: 0.5}, 320 * mib},
		{"no floor", 0, 0, Options{}, 0},
	} {
		if got := Limit(c.live, c.other, c.o); got != c.want {
			t.Errorf("%s: Limit(%d, %d) = %d, want %d", c.name, c.live, c.other, got, c.want)
		}
	}
}

// waitLimit polls the process's memory limit until ok accepts it.
func waitLimit(t *testing.T, ok func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := debug.SetMemoryLimit(-1)
		if ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d not reached", l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunFollowsLiveHeapAndRestores(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	const live = 64 << 20
	ballast := make([]byte, live)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	runtime.GC()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{Floor: 1 << 20, Interval: 5 * time.Millisecond}); close(done) }()
	// Above the floor the limit leaves the live heap its headroom: never
	// below twice the ballast, or the collector would run back to back.
	got := waitLimit(t, func(l int64) bool { return l != before })
	if got < 2*live {
		t.Errorf("limit %d with %d live, want at least %d", got, live, 2*live)
	}
	if got > 8*live {
		t.Errorf("limit %d with %d live: not following the heap", got, live)
	}
	runtime.KeepAlive(ballast)
	cancel()
	<-done
	if l := debug.SetMemoryLimit(-1); l != before {
		t.Errorf("limit after Run = %d, want the previous %d", l, before)
	}
}

func TestRunKeepsFloor(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	const floor = 1 << 40
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, Options{Floor: floor, Interval: 5 * time.Millisecond}); close(done) }()
	waitLimit(t, func(l int64) bool { return l == floor })
	cancel()
	<-done
	if l := debug.SetMemoryLimit(-1); l != before {
		t.Errorf("limit after Run = %d, want the previous %d", l, before)
	}
}
