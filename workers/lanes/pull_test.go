package lanes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// TestPullerSilentRequest stands in for a consumer leader that took a
// pull request and went away without answering it: the server side takes
// requests and never answers. A waiting pull asks for idle heartbeats;
// while they come it keeps waiting (and takes the message that finally
// comes), and once they stop it ends with errPullExpired long before its
// expiry, so Acquire sends a new request instead of stalling.
func TestPullerSilentRequest(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := srv.Connect(t)
	p, err := newPuller(nc, "S", "c")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	p.hb = 50 * time.Millisecond
	requests := make(chan *nats.Msg, 4)
	sub, err := nc.Subscribe(p.subject, func(m *nats.Msg) { requests <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx := natstest.Context(t)
	type answer struct {
		msg *nats.Msg
		err error
	}
	pull := func() <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			m, err := p.next(ctx, time.Minute, false)
			ch <- answer{m, err}
		}()
		return ch
	}
	wait := func(ch <-chan answer) answer {
		t.Helper()
		select {
		case a := <-ch:
			return a
		case <-time.After(20 * time.Second):
			t.Fatal("the pull is still waiting (its expiry is a minute)")
			return answer{}
		}
	}

	// Heartbeats for 20 intervals, then a message: the pull takes it.
	got := pull()
	req := <-requests
	if !strings.Contains(string(req.Data), `"idle_heartbeat":50000000`) {
		t.Fatalf("pull request %s asks for no heartbeat", req.Data)
	}
	hb := &nats.Msg{Subject: req.Reply, Header: nats.Header{"Status": {"100"}, "Description": {"Idle Heartbeat"}}}
	for range 20 {
		if err := nc.PublishMsg(hb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(p.hb / 2) // the server's pace; the pull's patience is 2 heartbeats
	}
	if err := nc.PublishMsg(&nats.Msg{Subject: req.Reply, Data: []byte("token")}); err != nil {
		t.Fatal(err)
	}
	if a := wait(got); a.err != nil || string(a.msg.Data) != "token" {
		t.Fatalf("pull kept alive by heartbeats: %v, %v; want the token", a.msg, a.err)
	}

	// No heartbeat at all: the pull ends as expired.
	got = pull()
	<-requests
	if a := wait(got); !errors.Is(a.err, errPullExpired) {
		t.Fatalf("silent pull: %v, %v; want errPullExpired", a.msg, a.err)
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
