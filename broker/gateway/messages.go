package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/broker/messages"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/schemas"
)

// maxProblemsShown bounds the untranslatable parts a 400 lists.
const maxProblemsShown = 3

// isMessages reports whether r is an Anthropic Messages request, answered
// (errors included) in Anthropic's shapes.
func isMessages(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v1/messages") }

// handleMessages serves POST /v1/messages (Anthropic Messages). The body is
// translated to an OpenAI chat body for the job's Request and kept as the
// job's Native request, which Anthropic-kind targets get unchanged but for
// the model; the answer is translated back to a Messages response or event
// stream. The queue, routing, failover, budgets and telemetry are those of
// chat completions.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body := bodyFrom(r)
	chat, req, problems, err := messages.ToChat(body)
	if err != nil {
		var me *messages.Error
		if errors.As(err, &me) {
			s.writeError(w, r, "messages", "", invalid(me.Field, "%s", me.Error()))
			return
		}
		s.writeError(w, r, "messages", "", invalid("", "%v", err))
		return
	}
	fields, e := topLevel(chat)
	if e != nil {
		s.writeError(w, r, "messages", "", e)
		return
	}
	job, _, e := s.jobFromChat(r, chat, fields)
	if e != nil {
		s.writeError(w, r, "messages", "", e)
		return
	}
	job.Native = &schemas.NativeRequest{Format: schemas.FormatAnthropic, Body: body, Headers: anthropicHeaders(r)}
	if err := s.client.Prepare(job); err != nil {
		s.writeError(w, r, "messages", s.label(job), fromSubmit(err, "request."))
		return
	}
	if e := s.carriable(job, problems); e != nil {
		s.writeError(w, r, "messages", s.label(job), e)
		return
	}
	s.answer(w, r, job, req.Stream, anthropicDialect, start)
}

// anthropicHeaders are the caller's anthropic-version and anthropic-beta
// headers (several anthropic-beta headers joined with commas), forwarded to
// Anthropic-kind targets.
func anthropicHeaders(r *http.Request) map[string]string {
	h := map[string]string{}
	if v := r.Header.Get(schemas.HeaderAnthropicVersion); v != "" {
		h[schemas.HeaderAnthropicVersion] = v
	}
	if vs := r.Header.Values(schemas.HeaderAnthropicBeta); len(vs) > 0 {
		h[schemas.HeaderAnthropicBeta] = strings.Join(vs, ",")
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// carriable refuses (400) a request holding parts only Anthropic can take
// when a target of its plan is of another kind, naming the parts and the
// target: nothing is dropped silently on failover.
func (s *Server) carriable(job *schemas.Job, problems []messages.Problem) *apiError {
	if len(problems) == 0 {
		return nil
	}
	cfg := s.config()
	for _, t := range job.Plan {
		p, ok := cfg.Provider(t.Provider)
		if ok && p.Kind == config.KindAnthropic {
			continue
		}
		kind := "unknown"
		if ok {
			kind = p.Kind
		}
		shown := problems
		if len(shown) > maxProblemsShown {
			shown = shown[:maxProblemsShown]
		}
		parts := make([]string, len(shown))
		for i, p := range shown {
			parts[i] = p.String()
		}
		more := ""
		if n := len(problems) - len(shown); n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		return invalid(problems[0].Field, "this request can only be sent to Anthropic-kind targets, and %s (kind %s) is a target of %s: %s%s",
			t, kind, s.label(job), strings.Join(parts, "; "), more)
	}
	return nil
}

// handleCountTokens answers POST /v1/messages/count_tokens with 404: the
// gateway has no real count (a guessed one would mislead callers such as
// Claude Code, which fall back to their own estimate on a 404).
func (s *Server) handleCountTokens(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, "messages", "", &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "not_found",
		Message: "token counting is not available through this gateway"})
}
