package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Request headers that carry job metadata.
const (
	HeaderTenant   = "X-Switchboard-Tenant"
	HeaderTier     = "X-Switchboard-Tier"
	HeaderTask     = "X-Switchboard-Task"
	HeaderPriority = "X-Switchboard-Priority"
	HeaderDeadline = "X-Switchboard-Deadline"
)

// Response headers.
const (
	HeaderJobID    = "X-Switchboard-Job-Id"
	HeaderProvider = "X-Switchboard-Provider"
	HeaderModel    = "X-Switchboard-Model"
	HeaderAttempts = "X-Switchboard-Attempts"
)

// AutoModel is the model name that lets rules and default_route pick the
// route from the request's metadata (unless a route is named "auto").
const AutoModel = "auto"

// bodyDeadline bounds receiving the body of every request that has one:
// the connection's read deadline is gateway.read_body_timeout from now (the
// end of the headers). A handler that reads the whole body lifts it (see
// readBody); one that does not read it leaves it, so the server's discarding
// of an unread body after the answer is bounded too.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.gwCfg.ReadBodyTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// withBody reads the request body (see readBody) before next runs, so a slow
// sender never holds a max_in_flight slot: wrap it around limited. next
// gets the body from bodyFrom.
func (s *Server) withBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, e := s.readBody(w, r)
		if e != nil {
			s.writeError(w, r, endpointOf(r), "", e)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), bodyCtx{}, body)))
	}
}

type bodyCtx struct{}

// bodyFrom is the body withBody read.
func bodyFrom(r *http.Request) []byte {
	b, _ := r.Context().Value(bodyCtx{}).([]byte)
	return b
}

// readBody reads a request body of at most gateway.max_body_bytes within
// bodyDeadline's gateway.read_body_timeout. Once the whole body is in, the
// deadline is lifted (the server's read that notices a client going away
// must not time out). On a failure it is not: the connection is closed
// after the answer, and nothing waits on that client again.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	limit := int64(s.gwCfg.MaxBodyBytes)
	rc := http.NewResponseController(w)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		_ = rc.SetReadDeadline(time.Time{})
		return body, nil
	}
	_ = rc.SetReadDeadline(time.Now()) // whatever is left unread is not waited for
	w.Header().Set("Connection", "close")
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
			Message: fmt.Sprintf("request body is over the limit of %d bytes (gateway.max_body_bytes)", limit)}
	case errors.As(err, &ne) && ne.Timeout():
		return nil, &apiError{Status: http.StatusRequestTimeout, Type: typeInvalidRequest, Code: "request_timeout",
			Message: fmt.Sprintf("request body not received within %s (gateway.read_body_timeout)", s.gwCfg.ReadBodyTimeout)}
	}
	return nil, invalid("", "could not read the request body: %v", err)
}

// topLevel parses a JSON object's top-level fields.
func topLevel(body []byte) (map[string]json.RawMessage, *apiError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		msg := "must be a JSON object"
		if err != nil {
			msg = err.Error()
		}
		return nil, invalid("", "request body is not a valid JSON object: %s", msg)
	}
	return fields, nil
}

// jobFromChat turns an OpenAI chat-completions body into a Job. The body is
// passed upstream exactly as sent (metadata included); string values of its
// metadata object are copied into Job.Metadata.
func (s *Server) jobFromChat(r *http.Request, body []byte, fields map[string]json.RawMessage) (*schemas.Job, bool, *apiError) {
	var model string
	raw, ok := fields["model"]
	if !ok || isNull(raw) {
		return nil, false, invalid("model", "model: is required (a route name or provider/model; GET /v1/models lists them)")
	}
	if err := json.Unmarshal(raw, &model); err != nil {
		return nil, false, invalid("model", "model: must be a string")
	}
	if model == "" {
		return nil, false, invalid("model", "model: must not be empty")
	}
	var stream bool
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &stream); err != nil {
			return nil, false, invalid("stream", "stream: must be a boolean")
		}
	}
	job := &schemas.Job{Request: json.RawMessage(body)}
	if strings.Contains(model, "/") {
		job.Model = model
	} else if model != AutoModel || s.routeExists(AutoModel) {
		job.Route = model
	}
	if raw, ok := fields["metadata"]; ok && !isNull(raw) {
		var meta map[string]any
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, false, invalid("metadata", "metadata: must be an object of strings")
		}
		for k, v := range meta {
			if str, ok := v.(string); ok {
				if job.Metadata == nil {
					job.Metadata = map[string]string{}
				}
				job.Metadata[k] = str
			}
		}
	}
	if e := s.applyHeaders(r, job); e != nil {
		return nil, false, e
	}
	if err := job.CheckIdentifiers(); err != nil {
		return nil, false, fromSubmit(err, "")
	}
	if e := s.checkTarget(job); e != nil {
		return nil, false, e
	}
	return job, stream, nil
}

// applyHeaders copies X-Switchboard-* metadata headers into the job, then
// lets the caller's API key override tenant and tier.
func (s *Server) applyHeaders(r *http.Request, job *schemas.Job) *apiError {
	set := func(k, v string) {
		if v == "" {
			return
		}
		if job.Metadata == nil {
			job.Metadata = map[string]string{}
		}
		job.Metadata[k] = v
	}
	for _, h := range []struct{ key, header string }{
		{schemas.MetaTenant, HeaderTenant}, {schemas.MetaTier, HeaderTier}, {schemas.MetaTask, HeaderTask},
	} {
		v := r.Header.Get(h.header)
		if err := schemas.CheckLabel(h.header, v); err != nil {
			return fromSubmit(err, "")
		}
		set(h.key, v)
	}
	if p := r.Header.Get(HeaderPriority); p != "" {
		switch p {
		case schemas.PriorityHigh, schemas.PriorityNormal, schemas.PriorityLow:
			job.Priority = p
		default:
			return invalid(HeaderPriority, "%s: %s must be high, normal or low", HeaderPriority, schemas.Quote(p))
		}
	}
	if d := r.Header.Get(HeaderDeadline); d != "" {
		t, err := time.Parse(time.RFC3339Nano, d)
		if err != nil {
			return invalid(HeaderDeadline, "%s: %s is not an RFC 3339 time like 2025-01-02T15:04:05Z", HeaderDeadline, schemas.Quote(d))
		}
		t = t.UTC()
		job.Deadline = &t
	}
	if k := keyFrom(r.Context()); k != nil {
		set(schemas.MetaTenant, k.tenant)
		set(schemas.MetaTier, k.tier)
	}
	return nil
}

// checkTarget answers 404 for a route or provider that is not configured.
func (s *Server) checkTarget(job *schemas.Job) *apiError {
	if job.Model != "" {
		provider, model, _ := strings.Cut(job.Model, "/")
		if provider == "" || model == "" {
			return invalid("model", "model: %q must be a route name or provider/model", job.Model)
		}
		if _, ok := s.config().Provider(provider); !ok {
			return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
				Message: fmt.Sprintf("model %q: unknown provider %q (GET /v1/models lists what is served)", job.Model, provider)}
		}
		return nil
	}
	if job.Route != "" && !s.routeExists(job.Route) {
		return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("model %q is neither a route nor provider/model (GET /v1/models lists what is served)", job.Route)}
	}
	return nil
}

func (s *Server) routeExists(name string) bool {
	_, ok := s.config().Route(name)
	return ok
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// label is a job's route (or pinned provider/model) for metrics. Pinned
// models that are not configured share "provider/other", so callers cannot
// grow the metrics without bound.
func (s *Server) label(job *schemas.Job) string {
	if job.Model != "" {
		provider, model, _ := strings.Cut(job.Model, "/")
		return provider + "/" + s.modelLabel(provider, model)
	}
	return job.Route
}

// modelLabel is model when provider/model is configured (in a route or the
// price list), else "other".
func (s *Server) modelLabel(provider, model string) string {
	cfg := s.config()
	if _, ok := cfg.Price(provider, model); ok {
		return model
	}
	for _, rt := range cfg.Routes {
		for _, t := range rt.Targets {
			if t.Provider == provider && t.Model == model {
				return model
			}
		}
	}
	return "other"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalText(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"could not encode the answer","type":"server_error","code":"internal"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError answers e in OpenAI's shape.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(e.body())
}

// writeError answers e, in Anthropic's shape on /v1/messages and OpenAI's
// elsewhere, and counts the request.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, endpoint, route string, e *apiError) {
	if isMessages(r) {
		writeAnthropicError(w, e)
	} else {
		writeError(w, e)
	}
	s.metrics.requests.WithLabelValues(endpoint, route, fmt.Sprint(e.Status)).Inc()
	if e.Status >= 500 {
		s.log.Warn("request failed", "endpoint", endpoint, "route", route, "status", e.Status, "code", e.Code,
			"job_id", w.Header().Get(HeaderJobID), "msg", e.Message)
	}
}
