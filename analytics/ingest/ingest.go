// Package ingest moves telemetry from JetStream into ClickHouse: a batching
// subscriber (watermill messages) over a durable pull consumer on TELEMETRY
// feeds a batcher that
// writes native batch inserts bounded by rows and time, and acks only after
// the insert succeeded. While ClickHouse is down nothing is acked and the
// stream buffers; the ingester retries with backoff and catches up.
// Redeliveries never double-count (see analytics/store). Bad events go to
// llm.dlq.telemetry and never stall the ingester.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/backoff"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Defaults.
const (
	DefaultDurable     = "ingest"
	DefaultTopic       = topology.TelemetryAll
	DefaultBackoffBase = 100 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
)

// GCPercent is the garbage collector target (as GOGC) the ingest and up
// commands run with unless GOGC is set. Decoding and inserting 100k rows/s
// allocates fast while the live heap stays small (two batches), so the
// default target of 100 spends about a tenth of the CPU collecting; 200
// halves that for a heap that is still bounded by batch_rows.
const GCPercent = 200

// Config configures an Ingester.
type Config struct {
	// JS is the JetStream context (TELEMETRY must exist: topology.Ensure).
	JS jetstream.JetStream
	// DSN is the ClickHouse native DSN; the ingester connects (and runs the
	// migrations) when ClickHouse answers, retrying with backoff until then.
	DSN string
	// Conn, when set, is used instead of dialing DSN (migrations still run).
	Conn driver.Conn
	// BatchRows and BatchInterval bound a batch (analytics.batch_rows and
	// analytics.batch_interval): it is written when either is reached.
	BatchRows     int
	BatchInterval time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential backoff
	// between failed inserts.
	BackoffBase, BackoffMax time.Duration
	// Durable names the JetStream consumer (default "ingest").
	Durable string
	// AckWait of the consumer (default 60s; held messages are kept leased).
	AckWait time.Duration
	// OnInsert, when set, is called after each successful write with the
	// events that became queryable (for lag metrics and benchmarks).
	OnInsert func(events []*schemas.Event)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// FromConfig fills BatchRows and BatchInterval from the analytics section.
func (c Config) FromConfig(a config.Analytics) Config {
	c.BatchRows, c.BatchInterval = a.BatchRows, a.BatchInterval
	return c
}

func (c *Config) defaults() error {
	if c.JS == nil {
		return fmt.Errorf("%w: JS is required", ErrInvalidConfig)
	}
	if c.Conn == nil {
		if _, err := store.Options(c.DSN); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.BatchRows <= 0 {
		c.BatchRows = config.DefaultBatchRows
	}
	if c.BatchInterval <= 0 {
		c.BatchInterval = config.DefaultBatchInterval
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.AckWait <= 0 {
		c.AckWait = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats counts what an ingester did.
type Stats struct {
	// Rows written (after dedup), per table.
	Attempts, Completions int64
	// Duplicates: events skipped because their id was already stored or
	// repeated within a batch.
	Duplicates int64
	// DeadLettered: bad events sent to llm.dlq.telemetry.
	DeadLettered int64
	// Batches written and insert attempts that failed (then retried).
	Batches, Failures int64
}

// Ingester is one telemetry ingester process.
type Ingester struct {
	cfg   Config
	conn  driver.Conn
	owned bool
	ready chan struct{}
	once  sync.Once

	attempts, completions, duplicates, dead, batches, failures atomic.Int64
}

// New checks the config and returns an ingester; Run starts it.
func New(cfg Config) (*Ingester, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Ingester{cfg: cfg, ready: make(chan struct{})}, nil
}

// Stats returns the ingester's counters.
func (in *Ingester) Stats() Stats {
	return Stats{
		Attempts: in.attempts.Load(), Completions: in.completions.Load(), Duplicates: in.duplicates.Load(),
		DeadLettered: in.dead.Load(), Batches: in.batches.Load(), Failures: in.failures.Load(),
	}
}

// Ready is closed once ClickHouse answered and the schema is migrated.
func (in *Ingester) Ready() <-chan struct{} { return in.ready }

// Run consumes telemetry until ctx ends. It returns nil on shutdown; events
// not yet written are handed back to the stream for the next ingester.
func (in *Ingester) Run(ctx context.Context) error {
	if err := in.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() {
		if in.owned {
			in.conn.Close()
		}
	}()
	sub, err := NewSubscriber(SubscriberConfig{
		JS: in.cfg.JS, Stream: topology.StreamTelemetry, Durable: in.cfg.Durable, AckWait: in.cfg.AckWait,
		MaxAckPending: 2*in.cfg.BatchRows + 1000, PullBatch: min(max(in.cfg.BatchRows, 256), 5000),
		Logger: in.cfg.Logger,
	})
	if err != nil {
		return err
	}
	defer sub.Close() //nolint:errcheck
	subCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(subCtx, DefaultTopic)
	if err != nil {
		return err
	}
	return in.loop(ctx, msgs)
}

// connect opens ClickHouse and migrates, retrying with backoff while it is
// down (telemetry keeps buffering in the stream meanwhile).
func (in *Ingester) connect(ctx context.Context) error {
	for try := 0; ; try++ {
		err := in.tryConnect(ctx)
		if err == nil {
			in.once.Do(func() { close(in.ready) })
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrMigration) {
			return err
		}
		msg := "clickhouse not reachable; telemetry is buffering in NATS"
		if errors.Is(err, store.ErrMigration) {
			msg = "clickhouse schema migration not done yet; telemetry is buffering in NATS"
		}
		in.cfg.Logger.Warn(msg, "err", err, "retry", try+1)
		if err := sleep(ctx, in.backoff(try)); err != nil {
			return err
		}
	}
}

func (in *Ingester) tryConnect(ctx context.Context) error {
	conn := in.cfg.Conn
	if conn == nil {
		c, err := store.Open(ctx, in.cfg.DSN)
		if err != nil {
			return err
		}
		conn, in.owned = c, true
	}
	if _, err := store.Migrate(ctx, conn); err != nil {
		if in.owned {
			conn.Close()
		}
		return err
	}
	in.conn = conn
	return nil
}

// batch is the set of messages waiting for one write.
type batch struct {
	msgs        []*message.Message
	attempts    []*schemas.Event
	completions []*schemas.Event
	dupInBatch  int
	seen        map[uuid.UUID]struct{}
}

func (b *batch) rows() int { return len(b.attempts) + len(b.completions) }

func (b *batch) reset() {
	b.msgs, b.attempts, b.completions, b.dupInBatch = nil, nil, nil, 0
	clear(b.seen)
}

func newBatch() *batch { return &batch{seen: map[uuid.UUID]struct{}{}} }

// add puts a message and its events into the batch, skipping events already
// in it.
func (b *batch) add(m *message.Message, events []*schemas.Event) {
	b.msgs = append(b.msgs, m)
	for _, ev := range events {
		if _, dup := b.seen[ev.EventID]; dup {
			b.dupInBatch++
			continue
		}
		b.seen[ev.EventID] = struct{}{}
		if ev.Kind == schemas.EventAttempt {
			b.attempts = append(b.attempts, ev)
		} else {
			b.completions = append(b.completions, ev)
		}
	}
}

// loop reads messages into a batch while the previous batch is being
// written (one write in flight), so decoding overlaps the insert. When the
// writer is stuck (ClickHouse down), the hand-off blocks and reading stops:
// the stream buffers the rest.
func (in *Ingester) loop(ctx context.Context, msgs <-chan *message.Message) error {
	full := make(chan *batch)
	var g errgroup.Group
	g.Go(func() error {
		for b := range full {
			if err := in.flush(ctx, b); err != nil {
				// Shutting down: the batch is not acked; Close hands it back.
				for range full {
				}
				return nil
			}
		}
		return nil
	})
	b := newBatch()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	handOff := func() bool {
		timer.Stop()
		if len(b.msgs) == 0 {
			return true
		}
		select {
		case full <- b:
			b = newBatch()
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer func() {
		close(full)
		_ = g.Wait()
		in.drain(b)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			events, err := in.decode(ctx, m)
			if err != nil {
				return nil // ctx ended; the message is handed back
			}
			if len(events) == 0 { // all dead-lettered
				m.Ack()
				continue
			}
			if len(b.msgs) == 0 {
				timer.Reset(in.cfg.BatchInterval)
			}
			b.add(m, events)
			if b.rows()+b.dupInBatch >= in.cfg.BatchRows && !handOff() {
				return nil
			}
		case <-timer.C:
			if !handOff() {
				return nil
			}
		}
	}
}

// drain makes a last, short attempt to write what is batched on shutdown;
// whatever is not written is handed back to the stream.
func (in *Ingester) drain(b *batch) {
	if len(b.msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.write(ctx, b); err != nil {
		for _, m := range b.msgs {
			m.Nack()
		}
		return
	}
	in.ack(b)
}

// flush writes the batch, retrying with backoff until it succeeds or ctx
// ends; only then are its messages acked.
func (in *Ingester) flush(ctx context.Context, b *batch) error {
	if len(b.msgs) == 0 {
		return nil
	}
	for try := 0; ; try++ {
		err := in.write(ctx, b)
		if err == nil {
			in.ack(b)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.failures.Add(1)
		in.cfg.Logger.Warn("clickhouse insert failed; holding the batch (telemetry buffers in NATS)",
			"rows", b.rows(), "retry", try+1, "err", err)
		if err := sleep(ctx, in.backoff(try)); err != nil {
			return err
		}
	}
}

// write inserts the attempts and the completions, concurrently (most of an
// insert's time is ClickHouse writing the parts of the table and of its
// rollups, which two inserts overlap). A retry after a partial success is
// safe: store.Insert skips what is already stored.
func (in *Ingester) write(ctx context.Context, b *batch) error {
	var na, nc int
	var g errgroup.Group
	g.Go(func() (err error) {
		na, err = store.Insert(ctx, in.conn, schemas.EventAttempt, b.attempts)
		return in.warnDrift(err)
	})
	g.Go(func() (err error) {
		nc, err = store.Insert(ctx, in.conn, schemas.EventCompletion, b.completions)
		return in.warnDrift(err)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	in.attempts.Add(int64(na))
	in.completions.Add(int64(nc))
	in.duplicates.Add(int64(b.rows()-na-nc) + int64(b.dupInBatch))
	in.batches.Add(1)
	if in.cfg.OnInsert != nil {
		written := make([]*schemas.Event, 0, b.rows())
		in.cfg.OnInsert(append(append(written, b.attempts...), b.completions...))
	}
	return nil
}

// warnDrift logs a rollup that could not be repaired exactly (the rows are
// stored; only the rollup is off) and lets the batch be acked.
func (in *Ingester) warnDrift(err error) error {
	if errors.Is(err, store.ErrRollupDrift) {
		in.cfg.Logger.Error("rollup out of step with its base table", "err", err)
		return nil
	}
	return err
}

func (in *Ingester) ack(b *batch) {
	for _, m := range b.msgs {
		m.Ack()
	}
	b.reset()
}

// decodeMessage is DecodeMessage; the benchmarks swap in a library decoder
// to measure the ingest figure with it (BenchmarkIngestDecoders).
var decodeMessage = DecodeMessage

// decode reads a message's events. Bad ones (the whole message, or elements
// of a batch) are dead-lettered first, so by the time the message is acked
// every part of it is durable somewhere. It fails only when ctx ends.
func (in *Ingester) decode(ctx context.Context, m *message.Message) ([]*schemas.Event, error) {
	subject, seq := m.Metadata.Get(MetaSubject), m.Metadata.Get(MetaStreamSeq)
	events, bad, err := decodeMessage(subject, m.Payload)
	if err != nil {
		if err := in.deadLetter(ctx, subject, "telemetry."+seq, m.Payload, err); err != nil {
			m.Nack()
			return nil, err
		}
		return nil, nil
	}
	for _, e := range bad {
		if err := in.deadLetter(ctx, subject, "telemetry."+seq+"."+strconv.Itoa(e.Index), e.Raw, e.Err); err != nil {
			m.Nack()
			return nil, err
		}
	}
	return events, nil
}

// deadLetter publishes a bad event's raw payload to llm.dlq.telemetry with
// the reason. It retries the publish until ctx ends.
func (in *Ingester) deadLetter(ctx context.Context, subject, msgID string, payload []byte, reason error) error {
	msg := topology.DeadLetterMsg(topology.DLQTelemetry, subject, reason.Error(), msgID, payload)
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := in.cfg.JS.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			in.dead.Add(1)
			in.cfg.Logger.Warn("bad telemetry event dead-lettered", "subject", subject, "reason", reason)
			return nil
		}
		in.cfg.Logger.Warn("dead-letter publish failed", "err", err, "retry", try+1)
		if err := sleep(ctx, in.backoff(try)); err != nil {
			return err
		}
	}
}

func (in *Ingester) backoff(try int) time.Duration {
	return backoff.Equal(in.cfg.BackoffBase, in.cfg.BackoffMax, try)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
