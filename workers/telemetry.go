package workers

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/streams"
	"github.com/switchboard-llm/switchboard/schemas"
)

// attemptEvent is the telemetry event of the n-th (1-based, across all hops)
// call made for job.
func (p *Pool) attemptEvent(job *schemas.Job, att schemas.Attempt, n int, fallback bool) schemas.Event {
	return schemas.Event{
		V:            schemas.Version,
		Kind:         schemas.EventAttempt,
		EventID:      schemas.AttemptEventID(job.ID, n),
		JobID:        job.ID,
		TS:           att.StartedAt,
		Attempt:      n,
		Route:        job.Route,
		Provider:     att.Provider,
		Model:        att.Model,
		Tenant:       job.Metadata[schemas.MetaTenant],
		Tier:         job.Metadata[schemas.MetaTier],
		Task:         job.Metadata[schemas.MetaTask],
		StatusCode:   att.StatusCode,
		ErrorType:    att.ErrorType,
		Outcome:      att.Outcome,
		Fallback:     fallback,
		InputTokens:  att.InputTokens,
		OutputTokens: att.OutputTokens,
		CostUSD:      costOf(p.cfg.Pricer, att.Provider, att.Model, att.InputTokens, att.OutputTokens),
		DurationMS:   att.DurationMS,
	}
}

// completionEvent is the telemetry event of a job's outcome. Its timestamp
// derives from the Result, so a re-sent event is identical.
func completionEvent(job *schemas.Job, res *schemas.Result) schemas.Event {
	ev := schemas.Event{
		V:            schemas.Version,
		Kind:         schemas.EventCompletion,
		EventID:      schemas.CompletionEventID(job.ID),
		JobID:        job.ID,
		TS:           job.CreatedAt.Add(time.Duration(res.Timings.TotalMS) * time.Millisecond),
		Attempt:      len(res.Attempts),
		Route:        res.Route,
		Provider:     res.Provider,
		Model:        res.Model,
		Tenant:       res.Metadata[schemas.MetaTenant],
		Tier:         res.Metadata[schemas.MetaTier],
		Task:         res.Metadata[schemas.MetaTask],
		Status:       res.Status,
		Fallback:     res.Fallback(),
		InputTokens:  res.Usage.InputTokens,
		OutputTokens: res.Usage.OutputTokens,
		CostUSD:      res.CostUSD,
		QueuedMS:     res.Timings.QueuedMS,
		TTFTMS:       res.Timings.TTFTMS,
		ProviderMS:   res.Timings.ProviderMS,
		TotalMS:      res.Timings.TotalMS,
	}
	if res.Error != nil {
		ev.ErrorType, ev.StatusCode = res.Error.Type, res.Error.StatusCode
	} else if n := len(res.Attempts); n > 0 {
		ev.StatusCode = res.Attempts[n-1].StatusCode
	}
	return ev
}

// attemptMsgs are the attempt events of job.Attempts[from:].
func (p *Pool) attemptMsgs(job *schemas.Job, from int) ([]*nats.Msg, error) {
	return p.attemptMsgsOf(job, job.Attempts, from)
}

func (p *Pool) attemptMsgsOf(job *schemas.Job, attempts []schemas.Attempt, from int) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, 0, len(attempts)-from+1)
	fallback := false
	for i, att := range attempts {
		if i >= from {
			m, err := eventMsg(p.attemptEvent(job, att, i+1, fallback))
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		}
		if att.Outcome == schemas.OutcomeFallback {
			fallback = true
		}
	}
	return msgs, nil
}

// eventMsgs are the attempt events of res.Attempts[from:] and the job's
// completion event.
func (p *Pool) eventMsgs(job *schemas.Job, res *schemas.Result, from int) ([]*nats.Msg, error) {
	msgs, err := p.attemptMsgsOf(job, res.Attempts, from)
	if err != nil {
		return nil, err
	}
	m, err := eventMsg(completionEvent(job, res))
	if err != nil {
		return nil, err
	}
	return append(msgs, m), nil
}

// eventMsg encodes an event for llm.telemetry.<kind>, deduplicated by its id.
func eventMsg(ev schemas.Event) (*nats.Msg, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: streams.Telemetry(ev.Kind), Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, ev.EventID.String())
	return m, nil
}
