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

	"github.com/switchboard-llm/switchboard/internal/backoff"
	"github.com/switchboard-llm/switchboard/internal/supervise"
)

// HeaderMessageUUID is the NATS header a watermill publisher puts a
// message's UUID in (as watermill-nats does); a message without it gets
// its stream sequence as UUID.
const HeaderMessageUUID = "_watermill_message_uuid"

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

// Subscriber hands out the messages of a durable JetStream pull consumer as
// watermill messages and, unlike watermill-nats' JetStream subscriber (one
// message in flight until acked), keeps up to MaxAckPending messages in
// flight, so the consumer can batch thousands of them and ack them together
// after one insert. Ack sends a JetStream ack, Nack a delayed Nak; a message
// neither acked nor nacked is redelivered after Close.
//
// It has message.Subscriber's methods but does not claim its contract
// (which hands out the next message only after the previous one is acked):
// one Subscriber serves one topic (its durable consumer), messages carry no
// per-message context, and many are un-acked at once by design. It passes
// the watermill conformance tests that fit that design
// (TestSubscriberConformance); see "watermill" in analytics/README.md.
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

// ConsumerConfig is the durable consumer the subscriber creates for topic
// (a subject filter such as llm.telemetry.>; Subscribe drops the filter when
// it is the stream's only subject).
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

// Subscribe creates or updates the durable consumer of topic and returns its
// messages. The channel closes when ctx ends or on Close. A consumer that
// fails meanwhile (a missed heartbeat in a node outage, a deleted consumer,
// a closed iterator) is re-created after a backoff, logged; messages held
// from before stay held and are acked as usual.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	it, err := s.consume(ctx, topic)
	if err != nil {
		return nil, err
	}
	// Every delivered message is queued for the acker (which keeps it
	// leased) as soon as it arrives, and out is buffered beyond what the
	// server may deliver un-acked (MaxAckPending), so the reader does not
	// wait for the consumer of out, however long it holds its messages.
	capacity := 2*s.cfg.MaxAckPending + s.cfg.PullBatch
	out := make(chan *message.Message, capacity)
	queue := &ackQueue{notify: make(chan struct{}, 1)}
	stop := make(chan struct{})
	cur := &currentIter{it: it}
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		// Unsubscribe first: what the server still delivers comes through
		// Next and is handed back with the rest, after the unsubscribe, so
		// the server redelivers it at once to another ingester instead of
		// to this one's dead pull request.
		// (With the server gone, the drain ends after the connection's
		// drain timeout.)
		cur.drain()
		close(stop)
	}()
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer queue.close()
		it := it
		b, try := supervise.DefaultBackoff, 0 // re-creations since the last message
		for {
			msg, err := it.Next()
			if err != nil {
				if cur.draining() {
					if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
						return
					}
					continue
				}
				// The consumer failed: re-create it (and its pull) after a
				// backoff, until it works or the subscription ends.
				it.Stop()
				for {
					wait := backoff.Exp(b.Base, b.Max, try)
					s.cfg.Logger.Warn("telemetry consumer stopped; restarting", "err", err, "in", wait)
					select {
					case <-stop:
						return
					case <-time.After(wait):
					}
					try++
					next, cerr := s.consume(ctx, topic)
					if cerr == nil {
						if !cur.swap(next) {
							return // draining began meanwhile
						}
						it = next
						break
					}
					err = cerr
				}
				continue
			}
			try = 0
			wm := toWatermill(msg)
			queue.push(inflight{wm: wm, js: msg, seen: time.Now()})
			select {
			case <-stop:
				continue // draining: queued to be handed back, not handed out
			default:
			}
			select {
			case out <- wm:
			case <-stop:
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		s.ackLoop(queue, stop)
	}()
	return out, nil
}

// consume creates or updates the durable consumer of topic and starts
// pulling from it.
func (s *Subscriber) consume(ctx context.Context, topic string) (jetstream.MessagesContext, error) {
	cfg := s.ConsumerConfig(topic)
	// A filter that is the stream's only subject selects every message;
	// without it the server reads the stream in order instead of matching
	// each message's subject.
	stream, err := s.cfg.JS.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.cfg.Stream, err)
	}
	if subjects := stream.CachedInfo().Config.Subjects; len(subjects) == 1 && subjects[0] == topic {
		cfg.FilterSubject = ""
	}
	cons, err := s.cfg.JS.CreateOrUpdateConsumer(ctx, s.cfg.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(s.cfg.PullBatch, pullMaxBytes), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", s.cfg.Durable, err)
	}
	return it, nil
}

// pullMaxBytes bounds the bytes one pull request asks for (and so the
// messages buffered ahead): PullBatch messages of many events each (the
// workers share a message among the jobs finishing together) would
// otherwise overrun the client's pending limit (64 MB) and be dropped as a
// slow consumer, then redelivered only after AckWait.
const pullMaxBytes = 16 << 20

// currentIter is the iterator a subscription pulls from now, replaced when
// the consumer is re-created, and drained once on shutdown.
type currentIter struct {
	mu       sync.Mutex
	it       jetstream.MessagesContext
	stopping bool
}

// swap installs a new iterator, unless draining began (then it stops it
// and returns false).
func (c *currentIter) swap(it jetstream.MessagesContext) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		it.Stop()
		return false
	}
	c.it = it
	return true
}

func (c *currentIter) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	c.it.Drain()
}

func (c *currentIter) draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// ackQueue holds delivered messages, in delivery order, until they are
// acked or nacked. The reader appends without waking the acker for every
// message: notify holds at most one pending wake-up.
type ackQueue struct {
	mu     sync.Mutex
	items  []inflight
	closed bool
	notify chan struct{}
}

func (q *ackQueue) push(p inflight) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	q.wake()
}

func (q *ackQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

func (q *ackQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// head returns the oldest message, whether there is one, and whether the
// queue is closed.
func (q *ackQueue) head() (inflight, bool, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return inflight{}, false, q.closed
	}
	return q.items[0], true, q.closed
}

// popAcked removes and returns the run of acked messages at the head.
func (q *ackQueue) popAcked() []inflight {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(q.items) && isClosed(q.items[n].wm.Acked()) {
		n++
	}
	done := append([]inflight(nil), q.items[:n]...)
	clear(q.items[:n])
	q.items = q.items[n:]
	return done
}

// popHead removes the oldest message.
func (q *ackQueue) popHead() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0] = inflight{}
	q.items = q.items[1:]
}

// takeAll removes and returns every message, and whether the queue is
// closed (nothing more will come).
func (q *ackQueue) takeAll() ([]inflight, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items, q.closed
}

// snapshot returns the messages held now.
func (q *ackQueue) snapshot() []inflight {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]inflight(nil), q.items...)
}

// ackLoop turns watermill acks into JetStream acks, in delivery order (the
// consumer acks batches in order, so head-of-line waiting costs nothing), and
// extends the lease of messages that are held long. On stop, messages not
// yet acked are Nacked so another ingester gets them at once.
func (s *Subscriber) ackLoop(queue *ackQueue, stop <-chan struct{}) {
	lease := time.NewTicker(max(s.cfg.AckWait/3, 10*time.Millisecond))
	defer lease.Stop()
	for {
		head, ok, closed := queue.head()
		if !ok && closed {
			return
		}
		var acked, nacked <-chan struct{}
		if ok {
			acked, nacked = head.wm.Acked(), head.wm.Nacked()
		}
		select {
		case <-queue.notify:
		case <-acked:
			// A batch is acked in one go: send the acks of every message
			// already acked at the head of the queue (still one JetStream
			// ack per message, in delivery order).
			for _, p := range queue.popAcked() {
				if err := p.js.Ack(); err != nil {
					s.cfg.Logger.Warn("telemetry ack", "err", err)
				}
			}
		case <-nacked:
			queue.popHead()
			if err := head.js.NakWithDelay(s.cfg.NakDelay); err != nil {
				s.cfg.Logger.Warn("telemetry nak", "err", err)
			}
		case <-lease.C:
			old := time.Now().Add(-s.cfg.AckWait / 3)
			for _, p := range queue.snapshot() {
				if p.seen.Before(old) {
					_ = p.js.InProgress()
				}
			}
		case <-stop:
			// Once the reader has drained the iterator, give acks already
			// decided a last chance and hand back the rest.
			for {
				if _, _, closed := queue.head(); closed {
					break
				}
				<-queue.notify
			}
			held, _ := queue.takeAll()
			for _, p := range held {
				select {
				case <-p.wm.Acked():
					_ = p.js.Ack()
				default:
					_ = p.js.Nak()
				}
			}
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
	headers := msg.Headers()
	id := seqStr
	if v := headers.Get(HeaderMessageUUID); v != "" {
		id = v
	}
	wm := message.NewMessage(id, msg.Data())
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
