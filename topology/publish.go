package topology

import (
	"context"
	"errors"
	"fmt"

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
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		if IsFull(err) {
			return fmt.Errorf("publish job %s: %w", job.ID, ErrQueueFull)
		}
		return fmt.Errorf("publish job %s: %w", job.ID, err)
	}
	return nil
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
	data, err := schemas.AppendJob(make([]byte, 0, 512+len(job.Request)), job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	msg := &nats.Msg{Subject: JobsLane(job.Plan[0].Provider, job.Priority), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, HopMsgID(job.ID, job.Hop))
	return msg, nil
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
