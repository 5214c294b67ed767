package lanes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/topology"
)

// Slots is a provider's in-flight cap over every lane and every worker
// process: a semaphore of `concurrency` tokens, one message per token on
// stream SLOTS (llm.slots.<provider>.<i>), handed out by the durable
// consumer slots-<provider> whose MaxAckPending is the concurrency. A
// worker holds a token (the message, unacked, with InProgress heartbeats)
// while its call runs and gives it back with Nak, which makes it
// deliverable again at once. A token whose holder crashed, or whose
// release or delivery was lost with a consumer leader that went away,
// comes back after the consumer's AckWait (SlotsAckWait).
//
// Tokens are pulled over one inbox subscription that lives as long as the
// Slots (pull.go). While no other process waits for a token (the
// consumer's waiting pull requests beyond this Slots' own open ones,
// checked every slotsWatch), a released token stays here for the next
// call instead of going back and being pulled again (a pull request, its
// delivery, a Nak and its confirmation per job); free tokens go back
// after idling freeIdle, and all of them as soon as another process waits.
// A TryAcquire that finds no token free leaves a request waiting for a
// moment, so that a process keeping free tokens sees it. Held tokens,
// free or in use, are kept alive every AckWait/4; one held across an
// outage long enough for it to have expired is dropped when done
// (pull.go); a shorter outage keeps every token.
type Slots struct {
	pull *puller
	cons jetstream.Consumer
	nc   *nats.Conn
	hb   time.Duration // keep-alive interval
	// ackWait is the consumer's: a token not kept alive that long may
	// have gone to another process.
	ackWait time.Duration
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the keep-alive loop has ended
	once    sync.Once
}

// How often Slots checks whether another process waits for a token, and
// how long a free token stays unused before it goes back.
const (
	slotsWatch = 200 * time.Millisecond
	freeIdle   = time.Second
)

// outageMargin is how far short of a token's possible expiry an outage
// must end for the token to be kept (the server's and our clocks, the
// time to notice the reconnect).
const outageMargin = 500 * time.Millisecond

// wantWait is how long a TryAcquire that found no free token leaves a
// request waiting (puller.want): longer than slotsWatch, so a process
// keeping free tokens sees it.
const wantWait = 500 * time.Millisecond

// SlotsAckWait is the ack deadline of a token. A held token is kept alive
// every SlotsAckWait/4 (InProgress, which a replicated consumer also
// replicates), so it survives three lost keep-alives; a lost one stalls
// the provider's capacity for at most this long.
const SlotsAckWait = 4 * time.Second

// SlotsConsumerConfig is the durable consumer of p's tokens.
func SlotsConsumerConfig(p config.Provider) jetstream.ConsumerConfig {
	w := topology.WorkerConsumerConfig(p)
	return jetstream.ConsumerConfig{
		Durable:       topology.SlotsConsumer(p.Name),
		Description:   "concurrency tokens of provider " + p.Name,
		FilterSubject: topology.Slots(p.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       SlotsAckWait,
		MaxAckPending: w.MaxAckPending,
		MaxDeliver:    -1,
		MaxWaiting:    4096,
	}
}

// EnsureSlots creates p's tokens that do not exist yet (never replacing
// one: a held token stays held) and its consumer.
func EnsureSlots(ctx context.Context, js jetstream.JetStream, p config.Provider) (*Slots, error) {
	cfg := SlotsConsumerConfig(p)
	for i := range cfg.MaxAckPending {
		_, err := js.Publish(ctx, topology.Slot(p.Name, i), nil, jetstream.WithExpectLastSequencePerSubject(0))
		var apiErr *jetstream.APIError
		if err != nil && !(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)) {
			return nil, fmt.Errorf("provision concurrency token %d of %s: %w", i, p.Name, err)
		}
	}
	c, err := js.CreateOrUpdateConsumer(ctx, topology.StreamSlots, cfg)
	if err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", cfg.Durable, err)
	}
	return newSlots(js.Conn(), c, cfg.AckWait)
}

// OpenSlots returns p's tokens as they are provisioned (by p's own pools),
// provisioning them (EnsureSlots) only when they do not exist yet: a
// process that calls p without serving it (a hedge) takes p's tokens too.
func OpenSlots(ctx context.Context, js jetstream.JetStream, p config.Provider) (*Slots, error) {
	c, err := js.Consumer(ctx, topology.StreamSlots, topology.SlotsConsumer(p.Name))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return EnsureSlots(ctx, js, p)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", topology.SlotsConsumer(p.Name), err)
	}
	return newSlots(js.Conn(), c, c.CachedInfo().Config.AckWait)
}

func newSlots(nc *nats.Conn, cons jetstream.Consumer, ackWait time.Duration) (*Slots, error) {
	info := cons.CachedInfo()
	pull, err := newPuller(nc, info.Stream, info.Name)
	if err != nil {
		return nil, fmt.Errorf("concurrency tokens of %s: %w", info.Name, err)
	}
	s := &Slots{pull: pull, cons: cons, nc: nc, hb: ackWait / 4, ackWait: ackWait, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// Close ends the token subscription and gives the free tokens back; a
// Slots is not used after Close. Tokens in use stay valid (kept alive)
// until their Release, which gives them back.
func (s *Slots) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.giveBackAll(s.pull.close())
	})
}

// run keeps held tokens alive and, while any is held, checks whether
// another process waits for one; after Close it runs until no token is
// held.
func (s *Slots) run() {
	defer close(s.done)
	keepAlive := time.NewTicker(s.hb)
	defer keepAlive.Stop()
	watch := time.NewTicker(slotsWatch)
	defer watch.Stop()
	status := s.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED)
	defer s.nc.RemoveStatusListener(status)
	var down time.Time // when the connection went down, zero while up
	stop := s.stop
	for {
		select {
		case st := <-status:
			now := time.Now()
			if st != nats.CONNECTED {
				if down.IsZero() {
					down = now
				}
				continue
			}
			if down.IsZero() {
				continue
			}
			// A token's last keep-alive reached the server up to a
			// keep-alive interval before the outage, and the next comes
			// up to one after it; past AckWait it may have expired.
			if now.Sub(down) >= s.ackWait-2*s.hb-outageMargin {
				s.pull.invalidate()
			}
			down = time.Time{}
		case <-stop:
			stop = nil
			watch.Stop()
		case <-keepAlive.C:
			held, closed := s.pull.heldTokens()
			if closed && len(held) == 0 {
				return
			}
			for _, reply := range held {
				_ = s.nc.Publish(reply, ackProgress)
			}
		case <-watch.C:
			s.watch()
		}
	}
}

// watch turns keeping off while another process waits for a token (or
// the consumer cannot be asked), giving the free tokens back, and gives
// back the ones that idled.
func (s *Slots) watch() {
	if !s.pull.holding() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), slotsWatch)
	info, err := s.cons.Info(ctx)
	cancel()
	others := err != nil || info.NumWaiting > s.pull.openRequests()
	back := append(s.pull.setKeep(!others), s.pull.takeFree(time.Now().Add(-freeIdle))...)
	if len(back) > 0 {
		go s.giveBackAll(back) // not in the way of the keep-alives
	}
}

// giveBackAll gives tokens back, concurrently.
func (s *Slots) giveBackAll(replies []string) {
	var wg sync.WaitGroup
	for _, r := range replies {
		wg.Go(func() { s.giveBack(r) })
	}
	wg.Wait()
}

// Slot is a held token.
type Slot struct {
	reply string // the token's ack subject
	s     *Slots
	once  sync.Once
}

// Acquire waits for a free token until ctx ends, calling wait (if not
// nil) after every pull meanwhile, e.g. to keep the job it is for from
// being redelivered. Each pull lasts at most a second (or a heartbeat),
// and one that goes silent (lost with a consumer leader that went away) is
// replaced after two missed idle heartbeats. The token is kept alive until
// Release.
func (s *Slots) Acquire(ctx context.Context, wait func()) (*Slot, error) {
	for {
		m, err := s.pull.next(ctx, min(s.hb, time.Second), false)
		if err == nil {
			return s.hold(m), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, errPullExpired) {
			select { // refused (e.g. no consumer leader during an election): retry soon
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(refusedBackoff):
			}
		}
		if wait != nil {
			wait()
		}
	}
}

// TryAcquire takes a token only if one is free now, without waiting (a
// hedged call, which is worth making only at once); it returns nil when
// none is free or the server cannot tell. The token is kept alive until
// Release.
func (s *Slots) TryAcquire(ctx context.Context) *Slot {
	m, err := s.pull.next(ctx, time.Second, true)
	if err != nil {
		if errors.Is(err, errPullExpired) {
			s.pull.want(wantWait)
		}
		return nil
	}
	return s.hold(m)
}

func (s *Slots) hold(m *nats.Msg) *Slot {
	return &Slot{reply: m.Reply, s: s}
}

// Release is done with the token (safe to call more than once): it goes
// to a call of this Slots that waits, or onto its free list, or (another
// process waits, or the Slots is closed) back to the consumer.
func (sl *Slot) Release() {
	sl.once.Do(func() {
		if sl.s.pull.release(sl.reply) {
			sl.s.giveBack(sl.reply)
		}
	})
}

// giveBack gives a token back to the consumer and waits until its leader
// confirms it. A Nak is not replicated: one sent while the consumer elects
// a new leader is lost, and the token would stay held until AckWait (every
// token at once after a node loss, stalling the provider for seconds). So
// the Nak is a request, sent again while no leader is subscribed ("no
// responders"), for up to a keep-alive interval. A Nak that timed out is
// not sent again (it may have been processed, and a second one could free
// the token under its next holder): that token comes back by AckWait.
func (s *Slots) giveBack(reply string) {
	s.pull.dropHeld(reply) // no more keep-alives: the next holder's own count
	deadline := time.Now().Add(s.hb)
	for {
		_, err := s.nc.Request(reply, ackNak, releaseWait)
		if err == nil || !retryRelease(err) || time.Now().After(deadline) {
			return
		}
		time.Sleep(releaseBackoff)
	}
}

// How long Acquire waits before it asks again after a refused pull: an
// election takes about a tenth of a second, and the pulls lost in it are
// answered (409, 503) at once.
const refusedBackoff = 50 * time.Millisecond

// How long Release waits for each confirmation, and between tries.
const (
	releaseWait    = 500 * time.Millisecond
	releaseBackoff = 50 * time.Millisecond
)

// retryRelease reports whether a Nak request was surely not processed: no
// consumer leader was subscribed (an election).
func retryRelease(err error) bool {
	return errors.Is(err, nats.ErrNoResponders)
}
