package gateway

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// kvKeyRe is JetStream KV's key syntax.
var kvKeyRe = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// FuzzChatRequest feeds arbitrary chat bodies and X-Switchboard-* headers
// through the gateway's decoder (body -> Job) and the client's Prepare
// (validation, routing), without NATS: no panic; a refusal is a 4xx with a
// bounded message; an accepted job's identifiers are within their limits,
// so its subjects and the KV keys derived from it are valid and short.
// Seeds: f.Add below and testdata/fuzz/FuzzChatRequest.
func FuzzChatRequest(f *testing.F) {
	cfg := testenv.ParseConfig(f, `
providers:
  - {name: primary, kind: mock, base_url: "http://127.0.0.1:1"}
  - {name: backup, kind: mock, base_url: "http://127.0.0.1:1"}
routes:
  - {name: chat, targets: [{provider: primary, model: m1}, {provider: backup, model: m2}]}
  - {name: cheap, targets: [{provider: backup, model: m2}]}
rules:
  - {when: {tier: free}, route: cheap}
`)
	resolver := router.New(cfg, router.Options{})
	s := &Server{resolver: resolver, client: broker.NewClient(nil, nil, resolver)}
	seeds := []struct{ body, tenant, tier, priority, deadline string }{
		{`{"model":"chat","messages":[{"role":"user","content":"hi"}]}`, "acme", "", "", ""},
		{`{"model":"primary/m1","stream":true,"metadata":{"task":"summarize","tenant":"x"},"messages":[{"role":"user","content":"hi"}]}`, "", "free", "high", "2030-01-02T15:04:05Z"},
		{`{"model":"auto","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}`, "", "free", "", ""},
		{`{"model":"chat","messages":"hi"}`, "", "", "urgent", "tomorrow"},
		{`{"model":"nope/m","messages":[]}`, strings.Repeat("t", 200), "", "", ""},
		{`{"model":"primary/` + strings.Repeat("m", 300) + `","messages":[{"role":"user"}]}`, "", "", "", ""},
		{`{"model":3,"metadata":{"k":5,"tenant":"a\u0000b"}}`, "", "", "", ""},
		{`[1,2]`, "", "", "", ""},
	}
	for _, sd := range seeds {
		f.Add([]byte(sd.body), sd.tenant, sd.tier, sd.priority, sd.deadline)
	}
	f.Fuzz(func(t *testing.T, body []byte, tenant, tier, priority, deadline string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		r.Header.Set(HeaderTenant, tenant)
		r.Header.Set(HeaderTier, tier)
		r.Header.Set(HeaderPriority, priority)
		r.Header.Set(HeaderDeadline, deadline)
		refused := func(e *apiError) {
			t.Helper()
			if e.Status < 400 || e.Status >= 500 && e.Status != http.StatusGatewayTimeout {
				t.Fatalf("status %d for a bad request: %s", e.Status, e.Message)
			}
			if len(e.Message) > 1024 {
				t.Fatalf("error message of %d bytes: %.200s", len(e.Message), e.Message)
			}
		}
		fields, e := topLevel(body)
		if e != nil {
			refused(e)
			return
		}
		job, _, e := s.jobFromChat(r, body, fields)
		if e != nil {
			refused(e)
			return
		}
		if err := s.client.Prepare(job); err != nil {
			refused(fromSubmit(err, "request."))
			return
		}
		if err := job.CheckIdentifiers(); err != nil {
			t.Fatalf("accepted job over its limits: %v", err)
		}
		if len(job.Plan) == 0 {
			t.Fatal("accepted job without a plan")
		}
		for _, subject := range []string{topology.Result(job.Batch, job.ID), topology.Chunks(job.ID), topology.JobsLane(job.Plan[0].Provider, job.Priority)} {
			if len(subject) > 512 || strings.ContainsAny(subject, " \t\r\n*>") {
				t.Fatalf("invalid subject %q", subject)
			}
		}
		keys := []string{kvstate.Key("s", job.Tenant(), "d", "20260101"), kvstate.Key("j", job.ID)}
		for _, p := range job.Plan {
			keys = append(keys, kvstate.Key(p.Provider, p.Model))
		}
		for _, k := range keys {
			if len(k) > 4*(kvstate.MaxKeyToken+1) || !kvKeyRe.MatchString(k) || strings.Contains(k, "..") || strings.HasSuffix(k, ".") {
				t.Fatalf("invalid KV key %q", k)
			}
		}
		if job.Metadata[schemas.MetaTenant] != "" && len(job.Metadata[schemas.MetaTenant]) > schemas.MaxLabelLen {
			t.Fatalf("tenant of %d bytes accepted", len(job.Metadata[schemas.MetaTenant]))
		}
	})
}
