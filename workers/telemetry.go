package workers

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// attemptEvent is the telemetry event of the n-th (1-based, across all hops)
// call made for job.
func (p *Pool) attemptEvent(job *schemas.Job, att schemas.Attempt, n int, fallback bool) schemas.Event {
	return schemas.Event{
		V:            schemas.Version,
		Kind:         schemas.EventAttempt,
		EventID:      schemas.AttemptEventID(job.ID, n, att.StartedAt),
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

// completionEvent is the telemetry event of a job's outcome. Its ts is the
// job's creation (request) time and its id names the job and the finishing
// hop, so an outcome re-sent or reached again by a re-run hop has the same
// id and ts and is stored once.
func completionEvent(job *schemas.Job, res *schemas.Result) schemas.Event {
	ev := schemas.Event{
		V:            schemas.Version,
		Kind:         schemas.EventCompletion,
		EventID:      schemas.CompletionEventID(job.ID, job.Hop, job.CreatedAt),
		JobID:        job.ID,
		TS:           job.CreatedAt,
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

// attemptMsg is the telemetry batch of job.Attempts[from:], the attempts
// made by hop, which falls back (nil when there are none).
func (p *Pool) attemptMsg(job *schemas.Job, hop, from int) (*nats.Msg, error) {
	return telemetryMsg(job.ID, hop, p.attemptEvents(job, job.Attempts, from))
}

func (p *Pool) attemptEvents(job *schemas.Job, attempts []schemas.Attempt, from int) []schemas.Event {
	events := make([]schemas.Event, 0, len(attempts)-from+1)
	fallback := false
	for i, att := range attempts {
		if i >= from {
			events = append(events, p.attemptEvent(job, att, i+1, fallback))
		}
		if att.Outcome == schemas.OutcomeFallback {
			fallback = true
		}
	}
	return events
}

// eventMsg is the telemetry batch of a job's last hop: the attempt events of
// res.Attempts[from:] and the job's completion event.
func (p *Pool) eventMsg(job *schemas.Job, res *schemas.Result, from int) (*nats.Msg, error) {
	completion := completionEvent(job, res)
	if cfg := p.liveConfig(); cfg.Analytics.LogBodies {
		completion.RequestBody, completion.ResponseBody = bodies(cfg, job, res)
	}
	events := append(p.attemptEvents(job, res.Attempts, from), completion)
	return telemetryMsg(job.ID, job.Hop, events)
}

// bodies are the request and response (or error) of a finished job as the
// request log stores them with analytics.log_bodies: every key the config
// names (providers' API keys, gateway keys) redacted, each cut to
// analytics.log_body_bytes.
func bodies(cfg *config.Config, job *schemas.Job, res *schemas.Result) (request, response string) {
	secrets := configSecrets(cfg)
	limit := cfg.Analytics.LogBodyBytes
	if limit <= 0 {
		limit = config.DefaultLogBodyBytes
	}
	request = redact.Clip(string(job.Request), limit, secrets...)
	switch {
	case len(res.Response) > 0:
		response = redact.Clip(string(res.Response), limit, secrets...)
	case res.Error != nil:
		if data, err := json.Marshal(res.Error); err == nil {
			response = redact.Clip(string(data), limit, secrets...)
		}
	}
	return request, response
}

// configSecrets are the key values the config's variables hold.
func configSecrets(cfg *config.Config) []string {
	var secrets []string
	for _, p := range cfg.Providers {
		secrets = append(secrets, p.APIKeys()...)
	}
	for _, k := range cfg.Gateway.APIKeys {
		secrets = append(secrets, k.Key())
	}
	return secrets
}

// telemetryMsg encodes the events of one hop as one message on
// llm.telemetry.batch. Its dedup id names the job, the hop and the first
// event's ts: a re-sent batch deduplicates, while a hop run again (a worker
// died mid-hop) sends its new calls. Each event also carries its id, which
// ClickHouse deduplicates on.
func telemetryMsg(jobID string, hop int, events []schemas.Event) (*nats.Msg, error) {
	if len(events) == 0 {
		return nil, nil
	}
	data, err := schemas.AppendEvents(make([]byte, 0, 512*len(events)), events)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: topology.TelemetryBatch, Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, topology.TelemetryMsgID(jobID, hop, events[0].TS))
	return m, nil
}
