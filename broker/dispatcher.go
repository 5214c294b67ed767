package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/internal/supervise"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Dispatcher routes raw jobs published on llm.submit to their first
// provider's subject. A job that can't be parsed or routed gets a failed
// Result (when it has an id) and a dead letter; nothing is dropped silently.
type Dispatcher struct {
	client *Client
	js     jetstream.JetStream
	log    *slog.Logger
	// Workers bounds concurrent dispatches.
	Workers int
}

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
// logged; Run itself returns only when ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	g := new(errgroup.Group)
	g.SetLimit(d.Workers)
	supervise.Run(ctx, d.log, "dispatcher", func(ctx context.Context) error {
		cons, err := topology.EnsureDispatcherConsumer(ctx, d.js)
		if err != nil {
			return err
		}
		iter, err := cons.Messages(jetstream.PullMaxMessages(d.Workers*2), jetstream.PullExpiry(10*time.Second))
		if err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
		defer iter.Stop()
		stop := context.AfterFunc(ctx, iter.Stop)
		defer stop()
		for {
			msg, err := iter.Next()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("dispatcher: next message: %w", err)
			}
			g.Go(func() error {
				d.handle(context.WithoutCancel(ctx), msg)
				return nil
			})
		}
	})
	return g.Wait()
}

func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	job, err := schemas.DecodeJob(msg.Data(), 0)
	if err != nil {
		d.reject(ctx, msg, nil, err)
		return
	}
	// Producer-set broker fields (reply, plan, hop, ...) are ignored.
	if err := d.client.Admit(job); err != nil {
		d.reject(ctx, msg, job, err)
		return
	}
	if err := topology.PublishJob(ctx, d.js, job); err != nil {
		d.log.Warn("dispatcher: publish job", "job", job.ID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

// reject answers an unroutable job with a failed Result (when it has an id)
// and dead-letters the raw payload, then terminates the message.
func (d *Dispatcher) reject(ctx context.Context, msg jetstream.Msg, job *schemas.Job, cause error) {
	errType, _ := RejectType(cause)
	msgID := ""
	if meta, err := msg.Metadata(); err == nil {
		msgID = fmt.Sprintf("submit.%d", meta.Sequence.Stream)
	}
	if err := DeadLetter(ctx, d.js, topology.DLQPoison, msg.Subject(), cause.Error(), msgID, msg.Data()); err != nil {
		d.log.Warn("dispatcher: dead-letter", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if job != nil && schemas.ValidToken(job.ID) && (job.Batch == "" || schemas.ValidToken(job.Batch)) {
		res := FailedResult(job, errType, cause.Error(), time.Now())
		if schemas.CheckMetadata(job.Metadata) != nil {
			res.Metadata = nil // over its limits: it stays in the dead letter only
		}
		if err := PublishResult(ctx, d.js, d.client.Conn(), job, res); err != nil {
			d.log.Warn("dispatcher: publish failed result", "job", job.ID, "err", err)
		}
	}
	d.log.Info("dispatcher: rejected job", "subject", msg.Subject(), "reason", cause)
	_ = msg.Term()
}
