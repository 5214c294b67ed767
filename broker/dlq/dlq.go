// Package dlq lists and replays dead letters: jobs that exhausted every
// target, poison messages and telemetry the ingester could not read, kept on
// the DLQ stream with their reason.
package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Sentinel errors of dead-letter handling.
var (
	// ErrNotReplayable means a dead letter is neither a job nor telemetry.
	ErrNotReplayable = errors.New("dead letter is neither a job nor telemetry")
	// ErrNotFound means no dead letter has the sequence number.
	ErrNotFound = errors.New("no such dead letter (it never existed, was replayed or expired; `switchboard dlq list` shows the sequence numbers there are)")
)

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
	data    []byte
}

// Replayed says where a dead letter went.
type Replayed struct {
	// JobID is the replayed job (job dead letters).
	JobID string
	// Subject is where a telemetry dead letter was published again.
	Subject string
}

// String describes the replay for people.
func (r Replayed) String() string {
	if r.JobID != "" {
		return "job " + r.JobID
	}
	return "telemetry on " + r.Subject
}

// List returns up to limit dead letters, oldest first, starting at sequence
// from (0 = the first).
func List(ctx context.Context, js jetstream.JetStream, from uint64, limit int) ([]Entry, error) {
	stream, err := js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil, nil // empty (new or fully replayed): sequence 0 is no message
	}
	from = max(from, info.State.FirstSeq, 1)
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
	e := &Entry{Seq: m.Sequence, Subject: m.Subject, Time: m.Time, Size: len(m.Data), data: m.Data}
	if m.Header != nil {
		e.Reason = m.Header.Get(topology.HeaderError)
		e.Source = m.Header.Get(topology.HeaderSource)
	}
	if job, err := schemas.DecodeJob(m.Data, 0); err == nil && job.ID != "" {
		e.JobID, e.Route, e.Tenant, e.job = job.ID, job.Route, job.Tenant(), job
	}
	return e, nil
}

// Replay re-sends the dead letter at seq and only then deletes it. A job is
// re-routed from its route's first target (its attempt history kept) under
// the dedup id of a new hop. Telemetry goes back to the subject it came from
// (after an ingester upgrade, say): what is still bad is dead-lettered again
// by the ingester with its reason.
func Replay(ctx context.Context, js jetstream.JetStream, client *broker.Client, seq uint64) (Replayed, error) {
	stream, err := js.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		return Replayed{}, fmt.Errorf("dlq stream: %w", err)
	}
	e, err := get(ctx, stream, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Replayed{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Replayed{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	var done Replayed
	switch {
	case e.job != nil:
		job := e.job
		job.Plan = nil
		job.Hop++
		job.Deadline = nil
		job.Reply = ""
		job.CreatedAt = time.Time{} // a new run: admitted now
		if err := client.Prepare(job); err != nil {
			return Replayed{}, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		if err := topology.PublishJob(ctx, js, job); err != nil {
			return Replayed{}, err
		}
		done.JobID = job.ID
	case e.Subject == topology.DLQ(topology.DLQTelemetry) && strings.HasPrefix(e.Source, topology.TelemetryPrefix):
		data := e.data
		if e.Source == topology.TelemetryBatch && !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
			// One bad element of a batch: it goes back as a batch of one.
			data = append(append([]byte("["), data...), ']')
		}
		msg := &nats.Msg{Subject: e.Source, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "dlq-replay."+strconv.FormatUint(seq, 10))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			return Replayed{}, fmt.Errorf("dead letter %d: republish to %s: %w", seq, e.Source, err)
		}
		done.Subject = e.Source
	default:
		return Replayed{}, fmt.Errorf("dead letter %d (%s): %w", seq, e.Reason, ErrNotReplayable)
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return done, fmt.Errorf("replayed dead letter %d as %s but could not delete it: %w", seq, done, err)
	}
	return done, nil
}
