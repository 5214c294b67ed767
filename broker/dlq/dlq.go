// Package dlq lists and replays dead letters: jobs that exhausted every
// target and poison messages, kept on the DLQ stream with their reason.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/streams"
	"github.com/switchboard-llm/switchboard/schemas"
)

// ErrNotReplayable means a dead letter's payload is not a job.
var ErrNotReplayable = errors.New("dead letter is not a replayable job")

// Entry is one dead letter.
type Entry struct {
	Seq     uint64    `json:"seq"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	Source  string    `json:"source"`
	JobID   string    `json:"job_id,omitempty"`
	Route   string    `json:"route,omitempty"`
	Tenant  string    `json:"tenant,omitempty"`
	Size    int       `json:"size"`
	job     *schemas.Job
}

// List returns up to limit dead letters, oldest first, starting at sequence
// from (0 = the first).
func List(ctx context.Context, js jetstream.JetStream, from uint64, limit int) ([]Entry, error) {
	stream, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	if from < info.State.FirstSeq {
		from = info.State.FirstSeq
	}
	var out []Entry
	for seq := from; seq <= info.State.LastSeq && (limit <= 0 || len(out) < limit); seq++ {
		e, err := get(ctx, stream, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // replayed or deleted
		}
		if err != nil {
			return out, err
		}
		out = append(out, *e)
	}
	return out, nil
}

func get(ctx context.Context, stream jetstream.Stream, seq uint64) (*Entry, error) {
	m, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return nil, err
	}
	e := &Entry{Seq: m.Sequence, Subject: m.Subject, Time: m.Time, Size: len(m.Data)}
	if m.Header != nil {
		e.Reason = m.Header.Get(streams.HeaderError)
		e.Source = m.Header.Get(streams.HeaderSource)
	}
	if job, err := schemas.DecodeJob(m.Data, 0); err == nil && job.ID != "" {
		e.JobID, e.Route, e.Tenant, e.job = job.ID, job.Route, job.Tenant(), job
	}
	return e, nil
}

// Replay re-routes the dead-lettered job at seq from its route's first
// target (its attempt history kept), publishes it with the dedup id of a new
// hop, and only then deletes the dead letter.
func Replay(ctx context.Context, js jetstream.JetStream, client *broker.Client, seq uint64) (string, error) {
	stream, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		return "", fmt.Errorf("dlq stream: %w", err)
	}
	e, err := get(ctx, stream, seq)
	if err != nil {
		return "", fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if e.job == nil {
		return "", fmt.Errorf("dead letter %d (%s): %w", seq, e.Reason, ErrNotReplayable)
	}
	job := e.job
	job.Plan = nil
	job.Hop++
	job.Deadline = nil
	job.Reply = ""
	if err := client.Prepare(job); err != nil {
		return "", fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if err := broker.PublishJob(ctx, js, job); err != nil {
		return "", err
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return job.ID, fmt.Errorf("replayed job %s but could not delete dead letter %d: %w", job.ID, seq, err)
	}
	return job.ID, nil
}
