package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// PublishResult stores a job's Result on RESULTS (deduplicated per job) and,
// when the job names a reply subject, also sends it there for a sync caller.
func PublishResult(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, job *schemas.Job, res *schemas.Result) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	msg := &nats.Msg{Subject: topology.Result(job.Batch, job.ID), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, topology.ResultMsgID(job.ID, job.Hop))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish result of job %s: %w", job.ID, err)
	}
	if job.Reply != "" {
		// Best effort: the stored result stays readable if the caller missed it.
		_ = nc.Publish(job.Reply, data)
	}
	return nil
}

// FailedResult builds the failed Result of a job that never reached a
// provider (invalid, expired, over budget...).
func FailedResult(job *schemas.Job, errType, message string, now time.Time) *schemas.Result {
	res := &schemas.Result{
		V:        schemas.Version,
		ID:       job.ID,
		Status:   schemas.StatusFailed,
		Error:    &schemas.ErrorInfo{Type: errType, Message: message},
		Route:    job.Route,
		Attempts: job.Attempts,
		Metadata: job.Metadata,
	}
	if res.Attempts == nil {
		res.Attempts = []schemas.Attempt{}
	}
	if !job.CreatedAt.IsZero() {
		res.Timings.TotalMS = now.Sub(job.CreatedAt).Milliseconds()
	}
	return res
}

// DeadLetter publishes a payload to llm.dlq.<reason> with the reason and the
// source subject in headers. msgID, when set, deduplicates redeliveries.
func DeadLetter(ctx context.Context, js jetstream.JetStream, class, source, reason, msgID string, payload []byte) error {
	msg := topology.DeadLetterMsg(class, source, reason, msgID, payload)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dead-letter to %s: %w", msg.Subject, err)
	}
	return nil
}
