package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/wmjs"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Dispatcher routes raw jobs published on llm.submit to their first
// provider's subject. A job that can't be parsed or routed gets a failed
// Result (when it has an id) and a dead letter; nothing is dropped silently.
//
// It is a watermill message.Router with one handler: a wmjs.Subscriber of
// the durable consumer "dispatcher" hands out the raw jobs, the handler
// admits and routes each and publishes it (wmjs.Publisher: Nats-Msg-Id
// <id>.<hop>, waiting for the PubAck, watermill's Retry middleware around
// the publish), and the router acks the raw job only after that. Rejected
// jobs and panics go through watermill's PoisonQueue middleware to
// llm.dlq.poison; a publish that still fails after its retries is nacked
// and redelivered.
type Dispatcher struct {
	client *Client
	js     jetstream.JetStream
	log    *slog.Logger
	// Workers bounds concurrent dispatches: the subscriber's in-flight
	// slots (wmjs.SubscriberConfig.Concurrency).
	Workers int
}

// Dispatcher tuning: the raw job's redelivery after a failed publish, and
// the Retry middleware's backoff around the publish (like internal/backoff:
// doubling from 100ms with jitter). While a raw job is held, the subscriber
// renews it (InProgress every third of topology.DispatcherAckWait), so
// retries may outlast that AckWait.
const (
	dispatchNakDelay = time.Second
	publishRetries   = 3
	publishRetryBase = 100 * time.Millisecond
	publishRetryMax  = 2 * time.Second
)

// NewDispatcher returns a dispatcher that routes with client.
func NewDispatcher(client *Client, js jetstream.JetStream, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{client: client, js: js, log: log, Workers: 8}
}

// Run consumes llm.submit until ctx ends, then waits for the dispatches in
// flight. A consumer error (a missed heartbeat in a node outage, a deleted
// consumer, a closed iterator) re-creates the consumer after a backoff,
// logged as "dispatcher stopped; restarting"; Run itself returns only when
// ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	r, err := d.router()
	if err != nil {
		return err
	}
	if err := r.Run(ctx); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	return nil
}

// router assembles the watermill Router of one Run.
func (d *Dispatcher) router() (*message.Router, error) {
	wlog := routerLog{d.log}
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Consumer: func(ctx context.Context, _ string) (jetstream.Consumer, error) {
			return topology.EnsureDispatcherConsumer(ctx, d.js)
		},
		Concurrency: d.Workers,
		NakDelay:    dispatchNakDelay,
		Lease:       topology.DispatcherAckWait / 3,
		Name:        "dispatcher",
		Logger:      d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	jobs, err := wmjs.NewPublisher(d.js, PublishTimeout)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(deadLetters{js: d.js}, topology.DLQ(topology.DLQPoison), d.isPoison)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, wlog)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	// First added runs outermost: a panic becomes an error (Recoverer)
	// that, like a rejected job, the poison queue dead-letters.
	r.AddMiddleware(poison, middleware.Recoverer)
	retry := middleware.Retry{
		MaxRetries:          publishRetries,
		InitialInterval:     publishRetryBase,
		MaxInterval:         publishRetryMax,
		Multiplier:          2,
		RandomizationFactor: 0.5,
		MaxElapsedTime:      PublishTimeout,
		Logger:              wlog,
	}
	h := &dispatch{d: d, jobs: jobs, retry: retry}
	r.AddConsumerHandler("dispatcher", topology.SubjectSubmit, sub, h.handle)
	return r, nil
}

// dispatch is the Router's handler of raw jobs.
type dispatch struct {
	d     *Dispatcher
	jobs  *wmjs.Publisher
	retry middleware.Retry
}

// handle turns a raw job into its routed job message and publishes it (a
// consumer handler publishing through a Publisher itself, as watermill
// documents for AddConsumerHandler), under watermill's Retry middleware.
// The Router's own publishing of a handler's returned messages runs after
// the middleware chain, where neither Retry nor the poison queue would see
// a failure. Only the publish is retried, so a job without an id keeps the
// id it was given (and its dedup id) through the retries.
func (h *dispatch) handle(msg *message.Message) error {
	// A dispatch under way finishes even when the router is closing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), PublishTimeout)
	defer cancel()
	job, err := schemas.DecodeJob(msg.Payload, 0)
	if err != nil {
		return h.d.reject(ctx, msg, nil, err)
	}
	// Producer-set broker fields (reply, plan, hop, ...) are ignored.
	if err := h.d.client.Admit(job); err != nil {
		return h.d.reject(ctx, msg, job, err)
	}
	next, err := topology.JobMessage(job)
	if err != nil {
		return h.d.reject(ctx, msg, job, err)
	}
	out := message.NewMessage(next.Header.Get(jetstream.MsgIDHeader), next.Data)
	out.Metadata.Set(jetstream.MsgIDHeader, out.UUID)
	out.SetContext(ctx)
	subject := next.Subject
	publish := func(*message.Message) ([]*message.Message, error) {
		if err := h.jobs.Publish(subject, out); err != nil {
			if topology.IsFull(err) {
				err = fmt.Errorf("%w: %w", topology.ErrQueueFull, err)
			}
			return nil, fmt.Errorf("dispatcher: publish job %s: %w", job.ID, err)
		}
		return nil, nil
	}
	_, err = publish(out)
	if err == nil {
		return nil
	}
	// The first attempt failed: watermill's Retry takes over, its first call
	// answering with that failure so that the next publish waits for the
	// first backoff. (Entering Retry only now spares each dispatch its
	// backoff state.)
	first := err
	retried := h.retry.Middleware(func(m *message.Message) ([]*message.Message, error) {
		if first != nil {
			err, first = first, nil
			return nil, err
		}
		return publish(m)
	})
	_, err = retried(out)
	return err
}

// rejected marks an error that sends its raw job to the poison queue.
type rejected struct{ cause error }

func (e *rejected) Error() string { return e.cause.Error() }
func (e *rejected) Unwrap() error { return e.cause }

// isPoison selects what goes to the poison queue: rejected jobs and panics
// (which would panic again on every redelivery), logged. Everything else (a
// publish that failed) is nacked and redelivered.
func (d *Dispatcher) isPoison(err error) bool {
	var rej *rejected
	if errors.As(err, &rej) {
		return true
	}
	var panicked middleware.RecoveredPanicError
	if errors.As(err, &panicked) {
		d.log.Error("dispatcher: panic handling a raw job; dead-lettering it", "err", err)
		return true
	}
	return false
}

// reject answers an unroutable job with a failed Result (when it has an
// id) and returns the error for the poison queue to dead-letter its raw
// payload with.
func (d *Dispatcher) reject(ctx context.Context, msg *message.Message, job *schemas.Job, cause error) error {
	if job != nil && schemas.ValidToken(job.ID) && (job.Batch == "" || schemas.ValidToken(job.Batch)) {
		errType, _ := RejectType(cause)
		res := FailedResult(job, errType, cause.Error(), time.Now())
		if schemas.CheckMetadata(job.Metadata) != nil {
			res.Metadata = nil // over its limits: it stays in the dead letter only
		}
		if err := PublishResult(ctx, d.js, d.client.Conn(), job, res); err != nil {
			d.log.Warn("dispatcher: publish failed result", "job", job.ID, "err", err)
		}
	}
	d.log.Info("dispatcher: rejected job", "subject", msg.Metadata.Get(wmjs.MetaSubject), "reason", cause)
	return &rejected{cause: cause}
}

// deadLetters is the poison queue's Publisher: it dead-letters each
// message's raw payload as DeadLetter does (the error and source headers of
// topology.DeadLetterMsg, from the poison queue's reason and the
// subscriber's subject), deduplicated by the message's stream sequence, so
// a redelivered poison message is stored once.
type deadLetters struct{ js jetstream.JetStream }

func (p deadLetters) Publish(topic string, msgs ...*message.Message) error {
	class := strings.TrimPrefix(topic, topology.DLQ(""))
	for _, m := range msgs {
		msgID := ""
		if seq := m.Metadata.Get(wmjs.MetaStreamSeq); seq != "" {
			msgID = "submit." + seq
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.Context()), PublishTimeout)
		err := DeadLetter(ctx, p.js, class, m.Metadata.Get(wmjs.MetaSubject), m.Metadata.Get(middleware.ReasonForPoisonedKey), msgID, m.Payload)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (deadLetters) Close() error { return nil }

// routerLog is the watermill logger of the dispatcher's Router: the
// router's lifecycle messages are debug, its per-message trace is dropped
// before any of its fields are converted, and its errors (a publish given
// up, to be redelivered) are warnings.
type routerLog struct{ log *slog.Logger }

func (l routerLog) Error(msg string, err error, fields watermill.LogFields) {
	l.log.Warn("dispatcher: "+msg, append(attrs(fields), "err", err)...)
}

func (l routerLog) Info(msg string, fields watermill.LogFields) { l.Debug(msg, fields) }

func (l routerLog) Debug(msg string, fields watermill.LogFields) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("dispatcher: "+msg, attrs(fields)...)
	}
}

func (routerLog) Trace(string, watermill.LogFields) {}

func (l routerLog) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return routerLog{l.log.With(attrs(fields)...)}
}

func attrs(fields watermill.LogFields) []any {
	out := make([]any, 0, 2*len(fields)+2)
	for k, v := range fields {
		out = append(out, k, v)
	}
	return out
}
