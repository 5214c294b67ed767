package lanes

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func slotsFor(t testing.TB, concurrency int) *Slots {
	t.Helper()
	js := provisioned(t)
	s, err := EnsureSlots(context.Background(), js, config.Provider{Name: "p", Concurrency: concurrency, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestSlotsOneInboxForAllPulls takes and gives back tokens many times over
// the Slots' one subscription: the cap holds (a third Acquire with both
// tokens held waits), a released token is at once acquirable again, and a
// pull that gave up before its token arrived hands that token back (no
// AckWait wait): after many short pulls that ended empty, both tokens are
// still free.
func TestSlotsOneInboxForAllPulls(t *testing.T) {
	s := slotsFor(t, 2)
	ctx := natstest.Context(t)
	a, err := s.Acquire(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Acquire(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sl := s.TryAcquire(ctx); sl != nil {
		t.Fatal("took a third token of two")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := s.Acquire(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with both tokens held: %v, want a deadline error", err)
	}
	cancel()
	a.Release()
	b.Release()
	// Pulls that end before a token is delivered (ctx cancelled at once)
	// must not keep the tokens they were sent.
	for range 50 {
		c, cancel := context.WithCancel(ctx)
		go cancel()
		if sl, err := s.Acquire(c, nil); err == nil {
			sl.Release()
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		x := s.TryAcquire(ctx)
		if x == nil {
			return errors.New("first token not free")
		}
		defer x.Release()
		y := s.TryAcquire(ctx)
		if y == nil {
			return errors.New("second token not free")
		}
		y.Release()
		return nil
	})
	s.pull.mu.Lock()
	waiting := len(s.pull.queue) + len(s.pull.byReply)
	s.pull.mu.Unlock()
	if waiting != 0 {
		t.Errorf("%d pull requests still registered", waiting)
	}
}

// BenchmarkSlotsAcquireRelease is one worker's token round trip per job:
// Acquire and Release of one of 8 tokens, from 8 goroutines.
func BenchmarkSlotsAcquireRelease(b *testing.B) {
	s := slotsFor(b, 8)
	ctx := context.Background()
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sl, err := s.Acquire(ctx, nil)
			if err != nil {
				b.Error(err)
				return
			}
			sl.Release()
		}
	})
}
