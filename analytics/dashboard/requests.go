package dashboard

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Attempt is one provider call of a job (ClickHouse attempts).
type Attempt struct {
	Attempt      uint16    `json:"attempt"`
	StartedAt    time.Time `json:"started_at"`
	Provider     string    `json:"provider"`
	Model        string    `json:"model"`
	StatusCode   uint16    `json:"status_code"`
	ErrorType    string    `json:"error_type,omitempty"`
	Outcome      string    `json:"outcome"`
	DurationMS   uint64    `json:"duration_ms"`
	InputTokens  uint64    `json:"input_tokens"`
	OutputTokens uint64    `json:"output_tokens"`
	CostUSD      *float64  `json:"cost_usd"`
}

// Job is one job outcome of the request log (ClickHouse completions) with
// its attempts.
type Job struct {
	JobID        string    `json:"job_id"`
	TS           time.Time `json:"ts"`
	Route        string    `json:"route"`
	Provider     string    `json:"provider"`
	Model        string    `json:"model"`
	Tenant       string    `json:"tenant"`
	Status       string    `json:"status"`
	ErrorType    string    `json:"error_type,omitempty"`
	StatusCode   uint16    `json:"status_code"`
	AttemptCount uint16    `json:"attempt_count"`
	Fallback     bool      `json:"fallback"`
	InputTokens  uint64    `json:"input_tokens"`
	OutputTokens uint64    `json:"output_tokens"`
	CostUSD      *float64  `json:"cost_usd"`
	QueuedMS     uint64    `json:"queued_ms"`
	TTFTMS       uint64    `json:"ttft_ms"`
	ProviderMS   uint64    `json:"provider_ms"`
	TotalMS      uint64    `json:"total_ms"`
	Attempts     []Attempt `json:"attempts"`
	// RequestBody and ResponseBody are stored only with
	// analytics.log_bodies (keys redacted, each cut to
	// analytics.log_body_bytes); absent otherwise.
	RequestBody  string `json:"request_body,omitempty"`
	ResponseBody string `json:"response_body,omitempty"`
}

// Jobs is GET /api/jobs: the most recent job outcomes first.
type Jobs struct {
	Analytics Analytics `json:"analytics"`
	Window    Window    `json:"window"`
	Jobs      []Job     `json:"jobs"`
}

func (d *Dashboard) jobs(ctx context.Context, q query) (any, error) {
	conn, a := d.analytics(ctx)
	out := &Jobs{Analytics: a, Window: window(q), Jobs: []Job{}}
	if conn == nil {
		return out, nil
	}
	jobs, err := recentJobs(ctx, conn, q)
	if err != nil {
		out.Analytics = unavailable(a, err)
		return out, nil
	}
	out.Jobs = jobs
	return out, nil
}

// recentJobs reads the newest completions matching q, then their attempts.
// A job id filter matches any part of the id; the others match exactly.
func recentJobs(ctx context.Context, conn driver.Conn, q query) ([]Job, error) {
	where := []string{"ts >= ?", "ts <= ?"}
	args := []any{q.from, q.to}
	if q.jobID != "" {
		where = append(where, "position(job_id, ?) > 0")
		args = append(args, strings.ToLower(q.jobID))
	}
	for col, v := range map[string]string{"tenant": q.tenant, "route": q.route, "status": q.status} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	args = append(args, q.limit)
	rows, err := conn.Query(ctx, `SELECT job_id, ts, route, provider, model, tenant, status, error_type, status_code,
	attempts, fallback, input_tokens, output_tokens, cost_usd, queued_ms, ttft_ms, provider_ms, total_ms
FROM completions FINAL WHERE `+strings.Join(where, " AND ")+`
ORDER BY ts DESC, job_id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("request log: %w", err)
	}
	var jobs []Job
	index := map[string][]int{}
	for rows.Next() {
		var j Job
		var fb uint8
		if err := rows.Scan(&j.JobID, &j.TS, &j.Route, &j.Provider, &j.Model, &j.Tenant, &j.Status, &j.ErrorType, &j.StatusCode,
			&j.AttemptCount, &fb, &j.InputTokens, &j.OutputTokens, &j.CostUSD, &j.QueuedMS, &j.TTFTMS, &j.ProviderMS, &j.TotalMS); err != nil {
			rows.Close()
			return nil, fmt.Errorf("request log: %w", err)
		}
		j.TS = j.TS.UTC()
		j.Fallback = fb != 0
		j.Attempts = []Attempt{}
		index[j.JobID] = append(index[j.JobID], len(jobs))
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("request log: %w", err)
	}
	if len(jobs) == 0 {
		return []Job{}, nil
	}
	ids := make([]string, 0, len(index))
	for id := range index {
		ids = append(ids, id)
	}
	if err := jobBodies(ctx, conn, jobs, index, ids); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, `SELECT job_id, attempt, ts, provider, model, status_code, error_type, outcome,
	duration_ms, input_tokens, output_tokens, cost_usd
FROM attempts FINAL WHERE has(?, job_id) ORDER BY job_id, ts, attempt`, ids)
	if err != nil {
		return nil, fmt.Errorf("request log attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a Attempt
		if err := rows.Scan(&id, &a.Attempt, &a.StartedAt, &a.Provider, &a.Model, &a.StatusCode, &a.ErrorType, &a.Outcome,
			&a.DurationMS, &a.InputTokens, &a.OutputTokens, &a.CostUSD); err != nil {
			return nil, fmt.Errorf("request log attempts: %w", err)
		}
		a.StartedAt = a.StartedAt.UTC()
		// A replayed job has several outcomes; each lists every attempt.
		for _, i := range index[id] {
			jobs[i].Attempts = append(jobs[i].Attempts, a)
		}
	}
	return jobs, rows.Err()
}

// jobBodies fills the logged bodies of the listed jobs (only jobs finished
// with analytics.log_bodies on have any). The body columns are read apart
// from the metadata, and only for the jobs shown.
func jobBodies(ctx context.Context, conn driver.Conn, jobs []Job, index map[string][]int, ids []string) error {
	rows, err := conn.Query(ctx, `SELECT job_id, ts, request_body, response_body
FROM completions FINAL WHERE has(?, job_id) AND (request_body != '' OR response_body != '')`, ids)
	if err != nil {
		return fmt.Errorf("request log bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, req, resp string
		var ts time.Time
		if err := rows.Scan(&id, &ts, &req, &resp); err != nil {
			return fmt.Errorf("request log bodies: %w", err)
		}
		for _, i := range index[id] {
			if jobs[i].TS.Equal(ts.UTC()) {
				jobs[i].RequestBody, jobs[i].ResponseBody = req, resp
			}
		}
	}
	return rows.Err()
}
