package workers

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

func TestDecide(t *testing.T) {
	now := time.Now()
	soon := now.Add(100 * time.Millisecond)
	past := now.Add(-time.Millisecond)
	def := newPolicy(nil, config.Provider{})
	two := 2
	noAuth := newPolicy(&config.Route{Retries: &two, FallbackOn: []string{schemas.ErrServerError}}, config.Provider{})
	b := func(call int, more bool, dl *time.Time) retryBudget {
		return retryBudget{call: call, moreTargets: more, deadline: dl, now: now, base: 10 * time.Millisecond, max: 40 * time.Millisecond, maxWait: time.Second}
	}
	srv := &callError{Type: schemas.ErrServerError, Retryable: true, Status: 500}
	for _, tc := range []struct {
		name    string
		ce      *callError
		pol     policy
		budget  retryBudget
		act     action
		errType string
		dlq     bool
	}{
		{"retryable with retries left", srv, def, b(0, true, nil), actRetry, "", false},
		{"retries used, fallback", srv, def, b(2, true, nil), actFallback, "", false},
		{"retries used, last target", srv, def, b(2, false, nil), actFail, schemas.ErrServerError, true},
		{"not in fallback_on", &callError{Type: schemas.ErrAuth, Status: 401}, noAuth, b(0, true, nil), actFail, schemas.ErrAuth, true},
		{"auth falls back by default", &callError{Type: schemas.ErrAuth, Status: 401}, def, b(0, true, nil), actFallback, "", false},
		{"invalid request: no retry, no dlq", &callError{Type: schemas.ErrInvalidRequest, Status: 400}, def, b(0, true, nil), actFail, schemas.ErrInvalidRequest, false},
		{"retry-after beyond max wait falls back", &callError{Type: schemas.ErrRateLimited, Retryable: true, RetryAfter: time.Minute}, def, b(0, true, nil), actFallback, "", false},
		{"retry-after beyond max wait, last target", &callError{Type: schemas.ErrRateLimited, Retryable: true, RetryAfter: time.Minute}, def, b(0, false, nil), actFail, schemas.ErrRateLimited, true},
		{"wait past deadline falls back", &callError{Type: schemas.ErrRateLimited, Retryable: true, RetryAfter: time.Second}, def, b(0, true, &soon), actFallback, "", false},
		{"wait past deadline, last target", &callError{Type: schemas.ErrRateLimited, Retryable: true, RetryAfter: time.Second}, def, b(0, false, &soon), actFail, schemas.ErrDeadlineExceeded, false},
		{"deadline passed", srv, def, b(0, true, &past), actFail, schemas.ErrDeadlineExceeded, false},
		{"canceled", &callError{Type: schemas.ErrCanceled}, def, b(0, true, nil), actFail, schemas.ErrCanceled, false},
		{"stream broken, not continuable", &callError{Type: schemas.ErrContentFilter, streamBroken: true}, def, b(0, true, nil), actFail, schemas.ErrStreamBroken, false},
		{"stream broken, continued on the next target", &callError{Type: schemas.ErrServerError, Retryable: true, streamBroken: true, continuable: true}, def, b(0, true, nil), actFallback, "", false},
		{"stream broken, last target", &callError{Type: schemas.ErrServerError, Retryable: true, streamBroken: true, continuable: true}, def, b(0, false, nil), actFail, schemas.ErrStreamBroken, false},
		{"shutdown", &callError{Type: schemas.ErrCanceled, abandon: true}, def, b(0, true, nil), actAbandon, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.ce, tc.pol, tc.budget)
			if d.act != tc.act || d.errType != tc.errType || d.dlq != tc.dlq {
				t.Fatalf("decide = %+v, want act %d type %q dlq %v", d, tc.act, tc.errType, tc.dlq)
			}
			if d.act == actRetry && (d.wait < tc.budget.base || d.wait > tc.budget.max) {
				t.Errorf("wait %s outside [%s, %s]", d.wait, tc.budget.base, tc.budget.max)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	base, max := 10*time.Millisecond, 80*time.Millisecond
	for retry := range 6 {
		ceil := min(max, base<<(retry+1))
		for range 200 {
			d := backoff(base, max, retry, 0)
			if d < base || d > ceil {
				t.Fatalf("retry %d: wait %s outside [%s, %s]", retry, d, base, ceil)
			}
		}
	}
	if d := backoff(base, max, 0, time.Second); d != time.Second {
		t.Errorf("Retry-After 1s gave %s", d)
	}
}

func TestPoolConfigValidate(t *testing.T) {
	ok := PoolConfig{Provider: config.Provider{Name: "a"}, Config: &config.Config{}}
	for _, tc := range []struct {
		name  string
		mod   func(*PoolConfig)
		wants []string
	}{
		{"missing everything", func(c *PoolConfig) { *c = PoolConfig{} }, []string{"Provider.Name", "Config", "Completer", "Conn", "JS"}},
		{"bad name", func(c *PoolConfig) { c.Provider.Name = "a.b" }, []string{"Provider.Name"}},
		{"negative", func(c *PoolConfig) { c.DrainTimeout = -1 }, []string{"DrainTimeout"}},
		{"base over max", func(c *PoolConfig) { c.BackoffBase, c.BackoffMax = time.Second, time.Millisecond }, []string{"BackoffMax"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.withDefaults().Validate()
			if !errors.Is(err, ErrInvalidPoolConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidPoolConfig", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
	d := PoolConfig{}.withDefaults()
	if d.Provider.Concurrency != config.DefaultConcurrency || d.BackoffBase != DefaultBackoffBase || d.DrainTimeout != DefaultDrainTimeout || d.Pricer == nil {
		t.Errorf("defaults not applied: %+v", d)
	}
}

func TestDefaultPricer(t *testing.T) {
	cfg := &config.Config{Models: []config.Model{{Provider: "a", Name: "m", InputPerMTok: 2, OutputPerMTok: 4}}}
	p := PoolConfig{Config: cfg}.withDefaults().Pricer
	if usd, ok := p.Cost("a", "m", 1_000_000, 500_000); !ok || usd != 4 {
		t.Errorf("Cost = %v, %v; want 4, true", usd, ok)
	}
	if _, ok := p.Cost("a", "other", 1, 1); ok {
		t.Error("unknown model priced")
	}
	if c := costOf(p, "a", "other", 1, 1); c != nil {
		t.Errorf("unknown price gave cost %v, want nil", *c)
	}
}

func TestCompletionAsChunk(t *testing.T) {
	body := json.RawMessage(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`)
	var got struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Choices []struct {
			Delta        map[string]any `json:"delta"`
			Message      any            `json:"message"`
			FinishReason string         `json:"finish_reason"`
		} `json:"choices"`
		Usage map[string]any `json:"usage"`
	}
	if err := json.Unmarshal(completionAsChunk(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "chat.completion.chunk" || got.ID != "x" || len(got.Choices) != 1 || got.Choices[0].Delta["content"] != "hi" ||
		got.Choices[0].Message != nil || got.Choices[0].FinishReason != "stop" || got.Usage == nil {
		t.Errorf("chunk = %+v", got)
	}
	if _, ok := got.Choices[0].Delta["refusal"]; !ok {
		t.Error("message fields lost")
	}
	if string(completionAsChunk(json.RawMessage(`not json`))) != "not json" {
		t.Error("non-completion body altered")
	}
}

// TestTelemetryOfRerunHop: an event with a given id always has the same ts
// (ClickHouse deduplicates on both): a hop's outcome reached again by a
// re-run (different timings) keeps id and ts, a call made again gets a new
// id, and a DLQ replay (a later hop) records a new outcome.
func TestTelemetryOfRerunHop(t *testing.T) {
	p := &Pool{cfg: PoolConfig{Pricer: pricing.New(nil)}}
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	job := &schemas.Job{ID: "j", CreatedAt: created, Hop: 1}
	first := &schemas.Result{Status: schemas.StatusFailed, Timings: schemas.Timings{TotalMS: 900}}
	rerun := &schemas.Result{Status: schemas.StatusSucceeded, Timings: schemas.Timings{TotalMS: 65_000}}
	a, b := completionEvent(job, first), completionEvent(job, rerun)
	if a.EventID != b.EventID || !a.TS.Equal(b.TS) || !a.TS.Equal(created) {
		t.Fatalf("re-run outcome: %s@%s vs %s@%s, want one id at the job's creation time", a.EventID, a.TS, b.EventID, b.TS)
	}
	replayed := *job
	replayed.Hop, replayed.CreatedAt = 3, created.Add(time.Hour)
	if c := completionEvent(&replayed, rerun); c.EventID == a.EventID || !c.TS.Equal(replayed.CreatedAt) {
		t.Fatal("a replayed job's outcome must get its own id, at the replay's admission")
	}
	att := schemas.Attempt{Provider: "p", StartedAt: created.Add(time.Second)}
	again := att
	again.StartedAt = att.StartedAt.Add(65 * time.Second)
	e1, e2 := p.attemptEvent(job, att, 1, false), p.attemptEvent(job, again, 1, false)
	if e1.EventID == e2.EventID || !e1.TS.Equal(att.StartedAt) {
		t.Fatalf("re-made call: ids %s and %s, ts %s", e1.EventID, e2.EventID, e1.TS)
	}
	if e3 := p.attemptEvent(job, att, 1, false); e3.EventID != e1.EventID || !e3.TS.Equal(e1.TS) {
		t.Fatal("a re-sent attempt event must keep its id and ts")
	}
}
