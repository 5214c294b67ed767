package supervise

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunRestartsWithCappedBackoffUntilCtxEnds(t *testing.T) {
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var calls []time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunWith(ctx, log, "loop", Backoff{Base: time.Millisecond, Max: 4 * time.Millisecond, Healthy: time.Hour}, func(context.Context) error {
			calls = append(calls, time.Now())
			if len(calls) == 8 {
				cancel()
				return nil
			}
			return errors.New("boom")
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if len(calls) != 8 {
		t.Fatalf("calls = %d, want 8", len(calls))
	}
	if n := strings.Count(buf.String(), "loop stopped; restarting"); n != 7 {
		t.Errorf("logged %d restarts, want 7:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "err=boom") {
		t.Errorf("restart log lacks the error:\n%s", buf.String())
	}
	// Waits double from 1ms and are capped at 4ms (jittered in [d/2, d)):
	// the later gaps are at least 2ms.
	for i := 4; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < 2*time.Millisecond {
			t.Errorf("restart %d after %v, want >= 2ms (capped backoff)", i, gap)
		}
	}
}

func TestRunReturnsAtOnceWhenCtxEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	Run(ctx, slog.New(slog.DiscardHandler), "loop", func(context.Context) error { n++; return errors.New("x") })
	if n != 1 {
		t.Errorf("calls = %d after ctx ended, want 1", n)
	}
}
