package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/schemas"
)

// ErrQueueFull means JOBS is at its limits; retry later (backpressure).
var ErrQueueFull = errors.New("job queue is full")

// PublishJob publishes a routed job to llm.jobs.<Plan[0].provider> (high and
// low priority jobs to that provider's lane llm.jobs.<provider>.high|.low,
// see Priorities) with the dedup id of its hop.
func PublishJob(ctx context.Context, js jetstream.JetStream, job *schemas.Job) error {
	msg, err := JobMessage(job)
	if err != nil {
		return err
	}
	_, err = js.PublishMsg(ctx, msg)
	return jobPublishErr(job, err)
}

// PublishJobConfirmed publishes a routed job as PublishJob does, sending it
// again while it is not confirmed (PublishConfirmed), until ctx ends.
func PublishJobConfirmed(ctx context.Context, js jetstream.JetStream, job *schemas.Job) error {
	msg, err := JobMessage(job)
	if err != nil {
		return err
	}
	_, err = PublishConfirmed(ctx, js, msg)
	return jobPublishErr(job, err)
}

// jobPublishErr names the job in a failed publish, and a full JOBS as
// ErrQueueFull.
func jobPublishErr(job *schemas.Job, err error) error {
	switch {
	case err == nil:
		return nil
	case IsFull(err):
		return fmt.Errorf("publish job %s: %w", job.ID, ErrQueueFull)
	default:
		return fmt.Errorf("publish job %s: %w", job.ID, err)
	}
}

// PublishJobAsync starts publishing a routed job as PublishJob does,
// without waiting for the server's confirmation: the caller waits on the
// future, and a job whose publish failed is published again with
// PublishJob (the same dedup id, so it is stored once).
func PublishJobAsync(js jetstream.JetStream, job *schemas.Job) (jetstream.PubAckFuture, error) {
	msg, err := JobMessage(job)
	if err != nil {
		return nil, err
	}
	f, err := js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("publish job %s: %w", job.ID, err)
	}
	return f, nil
}

// JobMessage is the message of a routed job's current hop: its subject
// (the first target's lane), the encoded job and its dedup id
// (HopMsgID). Every publisher of jobs uses it.
func JobMessage(job *schemas.Job) (*nats.Msg, error) {
	if len(job.Plan) == 0 {
		return nil, fmt.Errorf("job %s has no target to publish to", job.ID)
	}
	data, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	msg := &nats.Msg{Subject: JobsLane(job.Plan[0].Provider, job.Priority), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, HopMsgID(job.ID, job.Hop))
	return msg, nil
}

// ConfirmWait is how long a publisher waits for JetStream to confirm a
// publish before it sends the message again. Every message a publisher
// resends carries a Nats-Msg-Id, so at most one copy is stored (the second
// confirmation says Duplicate). A confirmation can be lost without an
// error: a stream leader that goes away while the publish waits for quorum
// never answers, and the new leader has not seen the message. Resending
// after ConfirmWait reaches the new leader, instead of waiting out the
// whole publish timeout.
const ConfirmWait = time.Second

// PublishConfirmed publishes msg until JetStream confirms it or ctx ends.
// Each try waits up to ConfirmWait for the confirmation. A try that no
// stream answered (no responders while a leader is elected, or a lost
// confirmation) is retried, after a short pause if it failed at once. Any
// other refusal (a full stream, a wrong subject) is returned at once.
// msg must carry a Nats-Msg-Id; it is not modified (each try sends a copy).
func PublishConfirmed(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, error) {
	for {
		start := time.Now()
		tctx, cancel := context.WithTimeout(ctx, ConfirmWait)
		ack, err := js.PublishMsg(tctx, CloneMsg(msg))
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil || !unanswered(err) {
			return nil, err
		}
		if wait := confirmRetryPause - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(wait):
			}
		}
	}
}

// confirmRetryPause is the least time between two tries of
// PublishConfirmed.
const confirmRetryPause = 100 * time.Millisecond

// unanswered reports whether a publish failed because no stream answered
// (in time), as opposed to a stream refusing the message.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 // JetStream not available now: an election
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// CloneMsg copies a message's subject, data and headers, for a publish
// that may be sent again: nats.go keeps an async publish's message until it
// is confirmed, so a resend must not share it.
func CloneMsg(m *nats.Msg) *nats.Msg {
	c := &nats.Msg{Subject: m.Subject, Data: m.Data}
	if m.Header != nil {
		c.Header = make(nats.Header, len(m.Header))
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
	}
	return c
}
