package dashboard

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/topology"
)

// Lane is one provider lane's live queue, from its JetStream consumer.
type Lane struct {
	Provider string `json:"provider"`
	Lane     string `json:"lane"`
	// Pending jobs not yet handed to a worker; InProgress handed out and
	// not yet acked.
	Pending    uint64 `json:"pending"`
	InProgress int    `json:"in_progress"`
	// Waiting counts pull requests parked on the consumer: idle worker
	// slots, roughly one per connected worker process and lane.
	Waiting int `json:"waiting_pulls"`
	// Oldest is the enqueue time of the oldest job still on the lane
	// (pending or in progress); OldestAgeS its age in seconds.
	Oldest     *time.Time `json:"oldest,omitempty"`
	OldestAgeS float64    `json:"oldest_age_s"`
	// Consumer is false when no worker pool created the lane's consumer yet.
	Consumer bool `json:"consumer"`
}

// Queue is GET /api/queue: the live state, from NATS only.
type Queue struct {
	Analytics Analytics `json:"analytics"`
	At        time.Time `json:"at"`
	Lanes     []Lane    `json:"lanes"`
	// Workers sums Waiting over every lane consumer.
	Workers int `json:"waiting_pulls"`
	// Submitted counts raw jobs on llm.submit not yet dispatched.
	Submitted uint64 `json:"submitted_pending"`
	// DLQ counts dead letters, in all and per subject.
	DLQ        uint64            `json:"dlq"`
	DLQSubject map[string]uint64 `json:"dlq_by_subject"`
	// Errors lists what could not be read.
	Errors []string `json:"errors,omitempty"`
}

func (d *Dashboard) queue(ctx context.Context, q query) (any, error) {
	out := &Queue{At: q.to, Lanes: []Lane{}, DLQSubject: map[string]uint64{}}
	_, out.Analytics = d.analytics(ctx)
	js := d.opts.JS
	jobs, err := js.Stream(ctx, topology.StreamJobs)
	if err != nil {
		out.Errors = append(out.Errors, "stream "+topology.StreamJobs+": "+err.Error())
	} else {
		for _, p := range d.opts.Config().Providers {
			for _, lane := range topology.Priorities {
				l := Lane{Provider: p.Name, Lane: lane}
				if c, err := jobs.Consumer(ctx, topology.LaneConsumer(p.Name, lane)); err == nil {
					if info, err := c.Info(ctx); err == nil {
						l.Consumer = true
						l.Pending, l.InProgress, l.Waiting = info.NumPending, info.NumAckPending, info.NumWaiting
					}
				}
				if msg, err := jobs.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(topology.JobsLane(p.Name, lane))); err == nil {
					t := msg.Time.UTC()
					l.Oldest = &t
					l.OldestAgeS = max(0, q.to.Sub(t).Seconds())
					if !l.Consumer {
						// No consumer yet: count what waits on the subject.
						if info, err := jobs.Info(ctx, jetstream.WithSubjectFilter(topology.JobsLane(p.Name, lane))); err == nil {
							l.Pending = info.State.Msgs
						}
					}
				} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
					out.Errors = append(out.Errors, "oldest job of "+p.Name+"/"+lane+": "+err.Error())
				}
				out.Workers += l.Waiting
				out.Lanes = append(out.Lanes, l)
			}
		}
		if c, err := jobs.Consumer(ctx, topology.DispatcherConsumer); err == nil {
			if info, err := c.Info(ctx); err == nil {
				out.Submitted = info.NumPending + uint64(info.NumAckPending)
			}
		}
	}
	if dlq, err := js.Stream(ctx, topology.StreamDLQ); err != nil {
		out.Errors = append(out.Errors, "stream "+topology.StreamDLQ+": "+err.Error())
	} else if info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(">")); err != nil {
		out.Errors = append(out.Errors, "stream "+topology.StreamDLQ+": "+err.Error())
	} else {
		out.DLQ = info.State.Msgs
		for s, n := range info.State.Subjects {
			out.DLQSubject[s] = n
		}
	}
	sort.Slice(out.Errors, func(i, j int) bool { return out.Errors[i] < out.Errors[j] })
	return out, nil
}

// telemetryBacklog counts telemetry messages the ingester has not acked
// (all of TELEMETRY's messages when no ingester ever ran), -1 if unknown.
func (d *Dashboard) telemetryBacklog(ctx context.Context) int64 {
	s, err := d.opts.JS.Stream(ctx, topology.StreamTelemetry)
	if err != nil {
		return -1
	}
	if c, err := s.Consumer(ctx, ingest.DefaultDurable); err == nil {
		if info, err := c.Info(ctx); err == nil {
			return int64(info.NumPending) + int64(info.NumAckPending)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int64(info.State.Msgs)
}
