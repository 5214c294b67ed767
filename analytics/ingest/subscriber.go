package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Metadata keys set on every watermill message by Subscriber.
const (
	MetaSubject      = "nats_subject"
	MetaStreamSeq    = "nats_stream_seq"
	MetaNumDelivered = "nats_num_delivered"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// JS is the JetStream context.
	JS jetstream.JetStream
	// Stream is the stream to consume (TELEMETRY).
	Stream string
	// Durable names the durable pull consumer; several processes with the
	// same name share the work.
	Durable string
	// AckWait is how long a delivered message may stay un-acked before the
	// server redelivers it. While the consumer of the output channel holds a
	// message (e.g. ClickHouse is down), the subscriber extends the deadline
	// with InProgress every AckWait/3, so a slow insert never causes a
	// redelivery to a second ingester.
	AckWait time.Duration
	// MaxAckPending bounds delivered but un-acked messages; the rest stays
	// buffered in the stream.
	MaxAckPending int
	// PullBatch is how many messages one pull request asks for.
	PullBatch int
	// NakDelay delays the redelivery of a Nacked message.
	NakDelay time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *SubscriberConfig) defaults() error {
	if c.JS == nil || c.Stream == "" || c.Durable == "" {
		return fmt.Errorf("%w: subscriber needs JS, Stream and Durable", ErrInvalidConfig)
	}
	if c.AckWait <= 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 20_000
	}
	if c.PullBatch <= 0 {
		c.PullBatch = min(c.MaxAckPending, 5000)
	}
	if c.NakDelay <= 0 {
		c.NakDelay = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Subscriber is a watermill message.Subscriber over a durable JetStream pull
// consumer that, unlike watermill-nats' JetStream subscriber (one message in
// flight until acked), keeps up to MaxAckPending messages in flight, so the
// consumer can batch thousands of them and ack them together after one
// insert. Ack sends a JetStream ack, Nack a delayed Nak; a message neither
// acked nor nacked is redelivered after Close.
type Subscriber struct {
	cfg     SubscriberConfig
	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber checks the config and returns an idle subscriber.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, closing: make(chan struct{})}, nil
}

// ConsumerConfig is the durable consumer the subscriber creates for topic
// (a subject filter such as llm.telemetry.>).
func (s *Subscriber) ConsumerConfig(topic string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "ClickHouse ingester of " + topic,
		FilterSubject: topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxAckPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

type inflight struct {
	wm   *message.Message
	js   jetstream.Msg
	seen time.Time
}

// Subscribe creates or updates the durable consumer filtered on topic and
// returns its messages. The channel closes when ctx ends or on Close.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	cons, err := s.cfg.JS.CreateOrUpdateConsumer(ctx, s.cfg.Stream, s.ConsumerConfig(topic))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.PullBatch), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", s.cfg.Durable, err)
	}
	out := make(chan *message.Message)
	// Every delivered message is registered with the acker (which keeps it
	// leased) as soon as it arrives, even while the consumer of out is busy:
	// the reader never blocks on out, a forwarder does. The server bounds
	// un-acked deliveries by MaxAckPending, so the buffers rarely fill.
	capacity := 2*s.cfg.MaxAckPending + s.cfg.PullBatch
	pending := make(chan inflight, capacity)
	forward := make(chan *message.Message, capacity)
	stop := make(chan struct{})
	s.wg.Add(4)
	go func() { // stop the iterator when asked, so Next returns
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		close(stop)
		it.Stop()
	}()
	go func() {
		defer s.wg.Done()
		defer close(forward)
		defer close(pending)
		for {
			msg, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				s.cfg.Logger.Warn("telemetry consumer", "err", err)
				continue
			}
			wm := toWatermill(msg)
			select {
			case pending <- inflight{wm: wm, js: msg, seen: time.Now()}:
			case <-stop:
				return
			}
			select {
			case forward <- wm:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		defer close(out)
		for wm := range forward {
			select {
			case out <- wm:
			case <-stop:
				for range forward { // unblock the reader; the acker hands these back
				}
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		s.ackLoop(pending, stop)
	}()
	return out, nil
}

// ackLoop turns watermill acks into JetStream acks, in delivery order (the
// consumer acks batches in order, so head-of-line waiting costs nothing), and
// extends the lease of messages that are held long. On stop, messages not
// yet acked are Nacked so another ingester gets them at once.
func (s *Subscriber) ackLoop(pending <-chan inflight, stop <-chan struct{}) {
	var queue []inflight
	lease := time.NewTicker(max(s.cfg.AckWait/3, 10*time.Millisecond))
	defer lease.Stop()
	for {
		var acked, nacked <-chan struct{}
		if len(queue) > 0 {
			acked, nacked = queue[0].wm.Acked(), queue[0].wm.Nacked()
		}
		select {
		case p, ok := <-pending:
			if !ok {
				pending = nil
				if len(queue) == 0 {
					return
				}
				continue
			}
			queue = append(queue, p)
		case <-acked:
			// A batch is acked in one go: send the acks of every message
			// already acked at the head of the queue without going back to
			// the select for each (still one JetStream ack per message, in
			// delivery order).
			n := 0
			for n < len(queue) && isClosed(queue[n].wm.Acked()) {
				if err := queue[n].js.Ack(); err != nil {
					s.cfg.Logger.Warn("telemetry ack", "err", err)
				}
				queue[n] = inflight{}
				n++
			}
			queue = queue[n:]
		case <-nacked:
			if err := queue[0].js.NakWithDelay(s.cfg.NakDelay); err != nil {
				s.cfg.Logger.Warn("telemetry nak", "err", err)
			}
			queue[0] = inflight{}
			queue = queue[1:]
		case <-lease.C:
			old := time.Now().Add(-s.cfg.AckWait / 3)
			for _, p := range queue {
				if p.seen.Before(old) {
					_ = p.js.InProgress()
				}
			}
		case <-stop:
			// Give acks already decided a last chance, hand back the rest.
			for _, p := range queue {
				select {
				case <-p.wm.Acked():
					_ = p.js.Ack()
				default:
					_ = p.js.Nak()
				}
			}
			for p := range pending {
				_ = p.js.Nak()
			}
			return
		}
		if pending == nil && len(queue) == 0 {
			return
		}
	}
}

// isClosed reports whether ch is closed (watermill closes a message's Acked
// channel on Ack), without blocking.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// toWatermill converts a delivered message. It runs once per message on the
// hot path, so it formats the sequence once and sizes the metadata map for
// its entries up front.
func toWatermill(msg jetstream.Msg) *message.Message {
	var seq uint64
	var delivered uint64 = 1
	if md, err := msg.Metadata(); err == nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	seqStr := strconv.FormatUint(seq, 10)
	wm := message.NewMessage(seqStr, msg.Data())
	headers := msg.Headers()
	wm.Metadata = make(message.Metadata, len(headers)+3)
	for k, v := range headers {
		if len(v) > 0 {
			wm.Metadata[k] = v[0]
		}
	}
	wm.Metadata[MetaSubject] = msg.Subject()
	wm.Metadata[MetaStreamSeq] = seqStr
	if delivered == 1 {
		wm.Metadata[MetaNumDelivered] = "1"
	} else {
		wm.Metadata[MetaNumDelivered] = strconv.FormatUint(delivered, 10)
	}
	return wm
}

// Close stops every subscription; un-acked messages are handed back.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
