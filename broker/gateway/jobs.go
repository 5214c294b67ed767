package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Job statuses of GET /v1/jobs/{id}.
const (
	JobQueued    = "queued"
	JobSucceeded = schemas.StatusSucceeded
	JobFailed    = schemas.StatusFailed
)

// JobStatus is the answer of POST /v1/jobs (202) and GET /v1/jobs/{id}.
type JobStatus struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Result *schemas.Result `json:"result,omitempty"`
}

// handleSubmit serves POST /v1/jobs: the body is a chat-completions body (as
// for /v1/chat/completions) or a full schemas.Job (it has a "request"
// field). The job is durable when the 202 is sent.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body := bodyFrom(r)
	fields, e := topLevel(body)
	if e != nil {
		s.writeError(w, r, "jobs_submit", "", e)
		return
	}
	var job *schemas.Job
	prefix := "request."
	if _, full := fields["request"]; full {
		prefix = ""
		j, err := schemas.DecodeJob(body, len(body)+1)
		if err != nil {
			s.writeError(w, r, "jobs_submit", "", fromSubmit(err, ""))
			return
		}
		if j.ID != "" {
			if _, err := uuid.Parse(j.ID); err != nil {
				s.writeError(w, r, "jobs_submit", "", invalid("id", "id: %q must be a UUID (or omitted)", j.ID))
				return
			}
		}
		// Routing and reply subjects are the broker's business, not the
		// caller's; a model without '/' names a route (as on llm.submit).
		j.ClearBrokerOwned()
		if err := s.client.ModelAsRoute(j); err != nil {
			s.writeError(w, r, "jobs_submit", "", fromSubmit(err, ""))
			return
		}
		if e := s.applyHeaders(r, j); e != nil {
			s.writeError(w, r, "jobs_submit", "", e)
			return
		}
		if err := j.CheckIdentifiers(); err != nil {
			s.writeError(w, r, "jobs_submit", "", fromSubmit(err, ""))
			return
		}
		if e := s.checkTarget(j); e != nil {
			s.writeError(w, r, "jobs_submit", "", e)
			return
		}
		job = j
	} else {
		j, _, e := s.jobFromChat(r, body, fields)
		if e != nil {
			s.writeError(w, r, "jobs_submit", "", e)
			return
		}
		job = j
	}
	job.Stream = false
	if job.ID == "" {
		job.ID = schemas.NewJobID()
	}
	// Recorded before the publish, so a GET right after the 202 finds it.
	if err := s.rememberJob(r.Context(), job.ID); err != nil {
		s.writeError(w, r, "jobs_submit", s.label(job), fromSubmit(err, prefix))
		return
	}
	if _, err := s.client.Submit(r.Context(), job); err != nil {
		s.forgetJob(context.WithoutCancel(r.Context()), job.ID)
		s.writeError(w, r, "jobs_submit", s.label(job), fromSubmit(err, prefix))
		return
	}
	w.Header().Set(HeaderJobID, job.ID)
	w.Header().Set("Location", "/v1/jobs/"+job.ID)
	writeJSON(w, http.StatusAccepted, JobStatus{ID: job.ID, Status: JobQueued})
	s.done("jobs_submit", s.label(job), http.StatusAccepted, start)
}

// handleGetJob serves GET /v1/jobs/{id} from the RESULTS stream. A job
// without a stored result is "queued" when it was queued through POST
// /v1/jobs (JobsBucket) after the oldest Result RESULTS still stores; any
// other id is 404. Results and those records expire with
// limits.results_max_age; Results are also dropped, oldest first, beyond
// limits.results_max_msgs and results_max_bytes.
func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.PathValue("id")
	notFound := &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "job_not_found", Param: "id",
		Message: "no job with id " + jsonQuote(id) + " (job ids are UUIDs)"}
	if _, err := uuid.Parse(id); err != nil {
		s.writeError(w, r, "jobs_get", "", notFound)
		return
	}
	res, err := s.client.Result(r.Context(), id)
	switch {
	case errors.Is(err, broker.ErrResultNotFound):
		queuedAt, kerr := s.jobQueuedAt(r.Context(), id)
		var oldest time.Time
		if kerr == nil && !queuedAt.IsZero() {
			oldest, kerr = s.oldestResult(r.Context())
		}
		if kerr != nil {
			s.writeError(w, r, "jobs_get", "", &apiError{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "broker_unavailable",
				RetryAfter: 1, Message: "could not look the job up: " + kerr.Error()})
			return
		}
		if queuedAt.IsZero() {
			notFound.Message = "no job with id " + jsonQuote(id) + ": it was never queued through POST /v1/jobs, or its result expired (limits.results_max_age)"
			s.writeError(w, r, "jobs_get", "", notFound)
			return
		}
		if queuedAt.Before(oldest) {
			notFound.Message = "no result stored for job " + jsonQuote(id) + " (queued " + queuedAt.UTC().Format(time.RFC3339) +
				"): the oldest stored result is from " + oldest.UTC().Format(time.RFC3339) +
				", so if it finished, its result was dropped (limits.results_max_msgs, results_max_bytes)"
			s.writeError(w, r, "jobs_get", "", notFound)
			return
		}
		writeJSON(w, http.StatusOK, JobStatus{ID: id, Status: JobQueued})
		s.done("jobs_get", "", http.StatusOK, start)
		return
	case err != nil:
		s.writeError(w, r, "jobs_get", "", &apiError{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "broker_unavailable",
			RetryAfter: 1, Message: "could not read the result: " + err.Error()})
		return
	}
	if k := keyFrom(r.Context()); k != nil && k.tenant != "" && res.Metadata[schemas.MetaTenant] != k.tenant {
		s.writeError(w, r, "jobs_get", "", notFound)
		return
	}
	w.Header().Set(HeaderJobID, id)
	setResultHeaders(w, res)
	writeJSON(w, http.StatusOK, JobStatus{ID: id, Status: res.Status, Result: res})
	s.done("jobs_get", res.Route, http.StatusOK, start)
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
