package wmjs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/supervise"
)

// Metadata keys the Subscriber sets on every message, beside the message's
// NATS headers.
const (
	// MetaSubject is the subject the message was published to.
	MetaSubject = "nats_subject"
	// MetaStreamSeq is its sequence number in the stream.
	MetaStreamSeq = "nats_stream_seq"
	// MetaNumDelivered counts its deliveries, this one included.
	MetaNumDelivered = "nats_num_delivered"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Consumer returns the durable pull consumer of topic, creating or
	// updating it. It is called when a subscription starts and again after
	// every consumer failure. Required.
	Consumer func(ctx context.Context, topic string) (jetstream.Consumer, error)
	// Concurrency is how many messages one subscription hands out at once
	// (default 1, watermill's contract: the next message only after the
	// previous one is acked or nacked). Each of the Concurrency slots keeps
	// that contract on its own, as watermill-nats' SubscribersCount does.
	Concurrency int
	// PullBatch is how many messages one pull request asks for (default
	// 2 × Concurrency).
	PullBatch int
	// NakDelay delays the redelivery of a nacked message (default 1s).
	NakDelay time.Duration
	// Lease, when set, is how often a message handed out and not yet
	// acked or nacked gets InProgress, so the consumer's AckWait need not
	// cover the longest handling (retries with backoff): set it to a third
	// of the AckWait. 0 sends none.
	Lease time.Duration
	// CloseTimeout bounds how long Close (or the end of a subscription's
	// context) waits for the messages handed out to be acked or nacked;
	// those still held then are handed back with a Nak (default 30s).
	CloseTimeout time.Duration
	// Name names the subscription in logs (default "subscriber").
	Name string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *SubscriberConfig) defaults() error {
	if c.Consumer == nil {
		return fmt.Errorf("%w: subscriber needs a Consumer function", ErrInvalidConfig)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.PullBatch <= 0 {
		c.PullBatch = 2 * c.Concurrency
	}
	if c.NakDelay <= 0 {
		c.NakDelay = time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.Name == "" {
		c.Name = "subscriber"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Subscriber is a watermill message.Subscriber of durable JetStream pull
// consumers. Ack sends a JetStream ack, Nack a Nak delayed by NakDelay. A
// message's context is cancelled once it is acked or nacked, or when its
// subscription ends. A consumer that fails (a missed heartbeat in a node
// outage, a deleted consumer, a closed iterator) is re-created after a
// capped, jittered backoff (internal/supervise), logged; the subscription
// itself ends only with its context or Close.
type Subscriber struct {
	cfg     SubscriberConfig
	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// NewSubscriber checks the config and returns an idle subscriber.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, closing: make(chan struct{})}, nil
}

// Subscribe starts consuming topic's durable consumer (SubscriberConfig.
// Consumer) and returns its messages. The channel closes when ctx ends or on
// Close, after the messages handed out were acked or nacked (at most
// CloseTimeout).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	cur := &current{}
	var subWG sync.WaitGroup
	subWG.Add(1 + s.cfg.Concurrency)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
			cancel()
		}
	}()
	go func() {
		defer subWG.Done()
		supervise.Run(ctx, s.cfg.Logger, s.cfg.Name, func(ctx context.Context) error {
			return s.consume(ctx, topic, cur)
		})
	}()
	// The slots read the consumer's iterator themselves (its Next is safe
	// for concurrent use): no goroutine stands between a pulled message and
	// its slot.
	for range s.cfg.Concurrency {
		go func() {
			defer subWG.Done()
			// Each slot's messages derive their contexts from the slot's
			// own, so the slots do not contend for one parent's lock.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			// One lease timer per slot, reset for each message.
			var lease *time.Timer
			if s.cfg.Lease > 0 {
				lease = time.NewTimer(s.cfg.Lease)
				lease.Stop()
				defer lease.Stop()
			}
			for {
				it := cur.get(ctx)
				if it == nil {
					return
				}
				m, err := it.Next()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					cur.fail(it, err)
					continue
				}
				s.deliver(ctx, m, out, lease)
			}
		}()
	}
	go func() {
		defer s.wg.Done()
		subWG.Wait()
		close(out)
	}()
	return out, nil
}

// pullHeartbeat is the idle heartbeat the pulls ask for: a pull request
// lost with a node (it waits at the consumer's leader) is noticed after two
// missed heartbeats and sent again, ~2s instead of the 10s that the
// default heartbeat, half the expiry, takes.
const pullHeartbeat = time.Second

// consume runs one consumer: it opens the pull iterator for the slots and
// returns when a slot saw it fail (for supervise to re-create it after a
// backoff) or when ctx ends.
func (s *Subscriber) consume(ctx context.Context, topic string, cur *current) error {
	cons, err := s.cfg.Consumer(ctx, topic)
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.PullBatch), jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	defer iter.Stop()
	failed := cur.set(iter)
	select {
	case err := <-failed:
		return fmt.Errorf("next message of %s: %w", topic, err)
	case <-ctx.Done():
		return nil
	}
}

// current holds a subscription's pull iterator, nil while none works.
type current struct {
	mu     sync.Mutex
	it     jetstream.MessagesContext
	ready  chan struct{} // closed once it is set
	failed chan error    // the first failure of it
}

// set makes it the iterator the slots read, and returns the channel its
// first failure arrives on.
func (c *current) set(it jetstream.MessagesContext) <-chan error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.it = it
	c.failed = make(chan error, 1)
	if c.ready == nil {
		c.ready = make(chan struct{})
	}
	close(c.ready)
	return c.failed
}

// get returns the iterator, waiting for one while none works; nil once ctx
// ends.
func (c *current) get(ctx context.Context) jetstream.MessagesContext {
	for {
		c.mu.Lock()
		it := c.it
		if c.ready == nil {
			c.ready = make(chan struct{})
		}
		ready := c.ready
		c.mu.Unlock()
		if it != nil {
			return it
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
	}
}

// fail reports that it failed: the slots wait for the next iterator, and
// the consumer's runner learns why.
func (c *current) fail(it jetstream.MessagesContext, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.it != it {
		return // already reported
	}
	c.it = nil
	c.ready = make(chan struct{})
	c.failed <- err
}

// deliver hands one message out and settles it on JetStream as the
// receiver settles it.
func (s *Subscriber) deliver(ctx context.Context, m jetstream.Msg, out chan<- *message.Message, lease *time.Timer) {
	wm := toWatermill(m)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wm.SetContext(mctx)
	// renew is the lease timer's channel (nil without a lease): each tick
	// sends InProgress, while the message waits for a handler and while
	// one handles it.
	var renew <-chan time.Time
	if lease != nil {
		lease.Reset(s.cfg.Lease)
		defer lease.Stop()
		renew = lease.C
	}
	extend := func() {
		_ = m.InProgress()
		lease.Reset(s.cfg.Lease)
	}
	for handed := false; !handed; {
		select {
		case out <- wm:
			handed = true
		case <-renew:
			extend()
		case <-ctx.Done():
			_ = m.Nak()
			return
		}
	}
	for {
		select {
		case <-wm.Acked():
			_ = m.Ack()
			return
		case <-wm.Nacked():
			_ = m.NakWithDelay(s.cfg.NakDelay)
			return
		case <-renew:
			extend()
			continue
		case <-ctx.Done():
		}
		break
	}
	// The subscription ends: the receiver may still be finishing it.
	t := time.NewTimer(s.cfg.CloseTimeout)
	defer t.Stop()
	for {
		select {
		case <-wm.Acked():
			_ = m.Ack()
		case <-wm.Nacked():
			_ = m.NakWithDelay(s.cfg.NakDelay)
		case <-renew:
			extend()
			continue
		case <-t.C:
			_ = m.Nak()
		}
		return
	}
}

// toWatermill converts a JetStream message: its HeaderUUID, else its
// Nats-Msg-Id, else "<stream>.<sequence>" is the UUID; its other headers and
// the Meta* keys are the metadata. The Nats-Msg-Id is left out of the
// metadata, so a handler forwarding the metadata does not make its output a
// duplicate of its input.
func toWatermill(m jetstream.Msg) *message.Message {
	h := m.Headers()
	uuid := h.Get(HeaderUUID)
	if uuid == "" {
		uuid = h.Get(jetstream.MsgIDHeader)
	}
	wm := message.NewMessage(uuid, m.Data())
	md := wm.Metadata
	for k, v := range h {
		if len(v) > 0 && k != jetstream.MsgIDHeader && k != HeaderUUID {
			md[k] = v[0]
		}
	}
	md[MetaSubject] = m.Subject()
	if meta, err := m.Metadata(); err == nil {
		seq := strconv.FormatUint(meta.Sequence.Stream, 10)
		md[MetaStreamSeq] = seq
		md[MetaNumDelivered] = strconv.FormatUint(meta.NumDelivered, 10)
		if wm.UUID == "" {
			wm.UUID = meta.Stream + "." + seq
		}
	}
	return wm
}

// Close ends every subscription (see Subscribe) and waits for them.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
