package topology

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Replicated returns js where every stream and KV bucket it creates or
// updates gets at least n replicas (never fewer than it already has: a
// process configured with fewer does not shrink a replicated stream), and
// where PublishMsg retries failures that a cluster produces while a stream
// elects a new leader (see PublishMsg). Durable consumers follow their
// stream's replica count. Wrapping an already wrapped js replaces n.
func Replicated(js jetstream.JetStream, n int) jetstream.JetStream {
	if r, ok := js.(*replicated); ok {
		js = r.JetStream
	}
	return &replicated{JetStream: js, n: max(n, 1)}
}

// ReplicasOf returns the replica count js provisions with (1 when it is not
// from Replicated).
func ReplicasOf(js jetstream.JetStream) int {
	if r, ok := js.(*replicated); ok {
		return r.n
	}
	return 1
}

type replicated struct {
	jetstream.JetStream
	n int
}

// replicas is the count to give stream name: at least r.n and at least
// what it has now.
func (r *replicated) replicas(ctx context.Context, name string, want int) int {
	want = max(want, r.n)
	if s, err := r.JetStream.Stream(ctx, name); err == nil {
		want = max(want, s.CachedInfo().Config.Replicas)
	}
	return want
}

func (r *replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = max(cfg.Replicas, r.n)
	s, err := r.JetStream.CreateStream(ctx, cfg)
	return s, replicaErr(err, cfg.Name, cfg.Replicas)
}

func (r *replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.replicas(ctx, cfg.Name, cfg.Replicas)
	s, err := r.JetStream.UpdateStream(ctx, cfg)
	return s, replicaErr(err, cfg.Name, cfg.Replicas)
}

func (r *replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.replicas(ctx, cfg.Name, cfg.Replicas)
	s, err := r.JetStream.CreateOrUpdateStream(ctx, cfg)
	return s, replicaErr(err, cfg.Name, cfg.Replicas)
}

func (r *replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = max(cfg.Replicas, r.n)
	kv, err := r.JetStream.CreateKeyValue(ctx, cfg)
	return kv, replicaErr(err, kvStream(cfg.Bucket), cfg.Replicas)
}

func (r *replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.replicas(ctx, kvStream(cfg.Bucket), cfg.Replicas)
	kv, err := r.JetStream.UpdateKeyValue(ctx, cfg)
	return kv, replicaErr(err, kvStream(cfg.Bucket), cfg.Replicas)
}

func (r *replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.replicas(ctx, kvStream(cfg.Bucket), cfg.Replicas)
	kv, err := r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	return kv, replicaErr(err, kvStream(cfg.Bucket), cfg.Replicas)
}

func kvStream(bucket string) string { return "KV_" + bucket }

// replicaErr names nats.replicas when the server refused the replica count.
func replicaErr(err error, stream string, n int) error {
	var apiErr *jetstream.APIError
	if n > 1 && errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10074: // replicas > 1 not supported in non-clustered mode
			return fmt.Errorf("stream %s: nats.replicas is %d but the NATS server is not a JetStream cluster (use 1): %w", stream, n, err)
		case 10023, 10005: // insufficient resources, no suitable peers
			return fmt.Errorf("stream %s: nats.replicas is %d, more than the JetStream cluster's usable nodes: %w", stream, n, err)
		}
	}
	return err
}

// publishRetryCap bounds the retries of a publish whose ctx has no deadline.
const publishRetryCap = 30 * time.Second

// ConfirmWait bounds the wait for one publish's confirmation: one attempt
// of PublishMsg, and the wait for an async publish before it is sent again
// (workers' await, broker.Client.Await). A confirmation can be lost
// without an error: a stream leader that goes away while the publish waits
// for quorum never answers, and the new leader has not seen the message.
// Sending it again after ConfirmWait reaches the new leader instead of
// waiting out the caller's whole deadline; every Switchboard message carries
// a Nats-Msg-Id, so at most one copy is stored (the later confirmation says
// Duplicate).
const ConfirmWait = time.Second

// PublishMsg publishes like jetstream's, retrying (with jittered backoff)
// what a cluster answers while a stream's leader is re-elected or the
// client fails over to another node: no responders, no stream response,
// timeouts, "temporarily unavailable". It retries until ctx ends (at most
// 30s without a deadline). Retrying is safe for Switchboard's messages:
// each carries a Nats-Msg-Id, so a publish stored before its ack was lost
// is deduplicated.
func (r *replicated) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishRetryCap)
		defer cancel()
	}
	wait := 25 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, ConfirmWait)
		ack, err := r.JetStream.PublishMsg(actx, msg, opts...)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (retried until %w)", err, ctx.Err())
			}
			return ack, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (retried until %w)", err, ctx.Err())
		case <-time.After(wait/2 + rand.N(wait)):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// Publish is PublishMsg for a subject and payload.
func (r *replicated) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return r.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, opts...)
}

// transient reports whether a publish error is one a cluster gives while it
// recovers (retrying may succeed), rather than a refusal.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10008, 10009: // JetStream temporarily unavailable, not leader
			return true
		case 10158: // duplicate message id is in process: the first copy is
			// still being replicated; the next try gets its outcome (stored:
			// a Duplicate ack; lost with a leader: stored now)
			return true
		}
		return apiErr.Code == 503
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) {
		return true
	}
	return strings.Contains(err.Error(), "timeout")
}
