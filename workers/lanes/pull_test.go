package lanes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/topology"
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

// twoProcesses is one provider's tokens as two processes see them: two
// Slots over their own connections to one server.
func twoProcesses(t *testing.T, concurrency int) (a, b *Slots, cons jetstream.Consumer, srv *natstest.Server) {
	t.Helper()
	srv = natstest.Start(t)
	_, jsA := srv.Connect(t)
	_, jsB := srv.Connect(t)
	ctx := context.Background()
	if err := topology.Ensure(ctx, jsA, config.Limits{}); err != nil {
		t.Fatal(err)
	}
	p := config.Provider{Name: "p", Concurrency: concurrency, Timeout: time.Second}
	a, err := EnsureSlots(ctx, jsA, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if b, err = OpenSlots(ctx, jsB, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if cons, err = jsA.Consumer(ctx, topology.StreamSlots, topology.SlotsConsumer("p")); err != nil {
		t.Fatal(err)
	}
	return a, b, cons, srv
}

// delivered is how many times the consumer has delivered a token.
func delivered(t *testing.T, cons jetstream.Consumer) uint64 {
	t.Helper()
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer
}

// TestSlotsKeepTokensWhileUncontended: one process takes and releases a
// token 200 times; with nobody else waiting it keeps the token, so the
// server delivers it once, not per call. Close gives it back: the other
// process can take both tokens at once (without Close, one would be held
// until AckWait).
func TestSlotsKeepTokensWhileUncontended(t *testing.T) {
	a, b, cons, _ := twoProcesses(t, 2)
	ctx := natstest.Context(t)
	before := delivered(t, cons)
	for range 200 {
		sl, err := a.Acquire(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sl.Release()
	}
	if n := delivered(t, cons) - before; n > 2 {
		t.Errorf("200 acquires with no other process waiting: the server delivered %d tokens, want at most 2", n)
	}
	a.Close() // returns once the server confirmed the token back
	for range 2 {
		if sl := b.TryAcquire(ctx); sl == nil {
			t.Fatal("the other process cannot take a token after Close")
		}
	}
}

// TestSlotsGiveBackWhenAnotherWaits: process a uses the only token without
// pause, so it never idles out; process b asks for it, and a gives it back
// when it sees b waiting, so b gets it while a is still busy.
func TestSlotsGiveBackWhenAnotherWaits(t *testing.T) {
	a, b, _, _ := twoProcesses(t, 1)
	ctx := natstest.Context(t)
	uses, stop := useTokens(t, a, 0, 0, 10)
	bctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	sl, err := b.Acquire(bctx, nil)
	if err != nil {
		t.Fatalf("process b waited for the token a keeps using: %v", err)
	}
	usesWhileHeld := uses.Load()
	sl.Release()
	stop()
	if usesWhileHeld < 10 {
		t.Fatalf("a used the token %d times", usesWhileHeld)
	}
}

// useTokens has process s take a token and give it back over and over,
// holding each for hold and pausing between, until the returned stop (also
// run at the test's end); it returns once s has used a token minUses
// times. uses counts them.
func useTokens(t *testing.T, s *Slots, hold, pause time.Duration, minUses int64) (uses *atomic.Int64, stop func()) {
	t.Helper()
	busy, cancel := context.WithCancel(natstest.Context(t))
	uses = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for busy.Err() == nil {
			sl, err := s.Acquire(busy, nil)
			if err != nil {
				return
			}
			uses.Add(1)
			time.Sleep(hold) // the call
			sl.Release()
			time.Sleep(pause)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := uses.Load(); n < minUses {
			return fmt.Errorf("the process has used a token %d times, want %d first", n, minUses)
		}
		return nil
	})
	return uses, stop
}

// TestSlotsKeepTokensUnderLocalContention: three goroutines of one
// process share two tokens. A token released while another goroutine
// waits goes to it directly; the waiter's pull request stays open at the
// server, and is counted as this process's own, not as another process
// waiting, so the tokens stay kept.
func TestSlotsKeepTokensUnderLocalContention(t *testing.T) {
	a, _, cons, _ := twoProcesses(t, 2)
	ctx := natstest.Context(t)
	before := delivered(t, cons)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 100 {
				sl, err := a.Acquire(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond) // the call
				sl.Release()
			}
		})
	}
	wg.Wait()
	if n := delivered(t, cons) - before; n > 30 {
		t.Errorf("300 acquires of one process: the server delivered %d tokens, want at most 30", n)
	}
}

// TestSlotsHedgeGetsKeptToken: process a keeps its only token and uses
// it a tenth of the time; process b only ever tries without waiting (a
// hedge). b's failed tries leave a request waiting for a moment, so a
// sees another process wait and gives the token back, and one of b's
// tries gets it.
func TestSlotsHedgeGetsKeptToken(t *testing.T) {
	a, b, _, _ := twoProcesses(t, 1)
	ctx := natstest.Context(t)
	useTokens(t, a, 10*time.Millisecond, 90*time.Millisecond, 3)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		sl := b.TryAcquire(ctx)
		if sl == nil {
			return errors.New("the hedge found no token free")
		}
		sl.Release()
		return nil
	})
}

// TestSlotsTokensAcrossOutage keeps a free token through a server outage
// (the client reconnects). After an outage long enough for the token to
// have expired (and maybe gone to another process) it is not used again:
// the next Acquire gets a token the server delivers anew, after the old
// one's AckWait. After a short one the token is still this process's, and
// is used again without a new delivery.
func TestSlotsTokensAcrossOutage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration
	}{{"long", 2 * time.Second}, {"short", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, cons, srv := twoProcesses(t, 1)
			ctx := natstest.Context(t)
			sl, err := a.Acquire(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			sl.Release() // kept: a's free list
			before := delivered(t, cons)
			reconnects := a.nc.Stats().Reconnects
			down := time.Now()
			srv.Shutdown()
			srv.WaitForShutdown()
			natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if time.Since(down) < tc.outage {
					return errors.New("outage not over")
				}
				return nil
			})
			srv.Restart(t)
			natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				if a.nc.Stats().Reconnects == reconnects || !a.nc.IsConnected() {
					return errors.New("not reconnected yet")
				}
				return nil
			})
			outage := time.Since(down)
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			sl, err = a.Acquire(actx, nil)
			if err != nil {
				t.Fatalf("acquire after the outage: %v", err)
			}
			defer sl.Release()
			n := delivered(t, cons) - before
			switch {
			case tc.outage > 0 && n != 1:
				t.Errorf("after a %v outage the server delivered %d tokens, want 1 (the kept one must not be reused)", outage, n)
			case tc.outage == 0 && outage < time.Second && n != 0:
				t.Errorf("after a %v outage the server delivered %d tokens, want 0 (the kept one is still valid)", outage, n)
			case tc.outage == 0 && outage >= time.Second:
				t.Logf("the restart took %v, too long to tell a short outage", outage)
			}
		})
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
