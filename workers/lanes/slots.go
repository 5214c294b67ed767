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
// Tokens are pulled one per Acquire over one inbox subscription that
// lives as long as the Slots (pull.go): a token costs a pull request and
// its delivery, not a subscription of its own.
type Slots struct {
	pull *puller
	nc   *nats.Conn
	hb   time.Duration
}

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
	return newSlots(js.Conn(), c.CachedInfo(), cfg.AckWait)
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
	return newSlots(js.Conn(), c.CachedInfo(), c.CachedInfo().Config.AckWait)
}

func newSlots(nc *nats.Conn, info *jetstream.ConsumerInfo, ackWait time.Duration) (*Slots, error) {
	pull, err := newPuller(nc, info.Stream, info.Name)
	if err != nil {
		return nil, fmt.Errorf("concurrency tokens of %s: %w", info.Name, err)
	}
	return &Slots{pull: pull, nc: nc, hb: ackWait / 4}, nil
}

// Close ends the token subscription; a Slots is not used after Close.
// Held tokens stay valid until their Release.
func (s *Slots) Close() {
	s.pull.close()
}

// Slot is a held token.
type Slot struct {
	reply string // the token's ack subject
	nc    *nats.Conn
	hb    time.Duration
	stop  chan struct{}
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
		return nil
	}
	return s.hold(m)
}

func (s *Slots) hold(m *nats.Msg) *Slot {
	sl := &Slot{reply: m.Reply, nc: s.nc, hb: s.hb, stop: make(chan struct{})}
	go sl.keepAlive(s.hb)
	return sl
}

func (sl *Slot) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-sl.stop:
			return
		case <-t.C:
			_ = sl.nc.Publish(sl.reply, ackProgress)
		}
	}
}

// Release gives the token back (safe to call more than once) and waits
// until the consumer's leader confirms it. A Nak is not replicated: one
// sent while the consumer elects a new leader is lost, and the token would
// stay held until AckWait (every token at once after a node loss, stalling
// the provider for seconds). So the Nak is a request, sent again while no
// leader is subscribed ("no responders"), for up to a heartbeat interval.
// A Nak that timed out is not sent again (it may have been processed, and
// a second one could free the token under its next holder): that token
// comes back by AckWait.
func (sl *Slot) Release() {
	sl.once.Do(func() {
		close(sl.stop)
		deadline := time.Now().Add(sl.hb)
		for {
			_, err := sl.nc.Request(sl.reply, ackNak, releaseWait)
			if err == nil || !retryRelease(err) || time.Now().After(deadline) {
				return
			}
			time.Sleep(releaseBackoff)
		}
	})
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
