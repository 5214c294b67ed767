package workers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

func TestSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{InputTokens: 7, OutputTokens: 5}}, provider{name: "b"})
	e.startPool("a")
	e.startPool("b")

	id := e.submit(newJob())
	res := e.result(id, 10*time.Second)
	if res.Status != schemas.StatusSucceeded || res.Provider != "a" || res.Model != "m-a" || res.Route != "chat" {
		t.Fatalf("result = %s %s/%s route %q, want succeeded a/m-a route chat (error %+v)", res.Status, res.Provider, res.Model, res.Route, res.Error)
	}
	if got := outcomes(res.Attempts); got != "a:ok" {
		t.Errorf("attempts = %s, want a:ok", got)
	}
	if res.Attempts[0].StatusCode != 200 {
		t.Errorf("attempt status = %d, want 200", res.Attempts[0].StatusCode)
	}
	var body struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(res.Response, &body); err != nil || body.Object != "chat.completion" || len(body.Choices) != 1 || body.Choices[0].Message.Content == "" {
		t.Errorf("response = %s (err %v), want the provider's chat.completion", res.Response, err)
	}
	if res.Usage != (schemas.Usage{InputTokens: 7, OutputTokens: 5}) {
		t.Errorf("usage = %+v, want 7/5", res.Usage)
	}
	want := (7*1.0 + 5*2.0) / 1e6
	if res.CostUSD == nil || *res.CostUSD != want {
		t.Errorf("cost = %v, want %v", res.CostUSD, want)
	}
	if res.Metadata["tenant"] != "acme" {
		t.Errorf("metadata = %v, want tenant acme", res.Metadata)
	}
	if res.Timings.TotalMS < res.Timings.ProviderMS {
		t.Errorf("timings %+v: total below provider", res.Timings)
	}
	e.waitEmpty(5 * time.Second)

	// Telemetry: one attempt event and one completion event, deterministic ids.
	var atts, comps []schemas.Event
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		atts, comps = e.events(id)
		if len(atts) != 1 || len(comps) != 1 {
			return fmt.Errorf("%d attempt and %d completion events, want 1 and 1", len(atts), len(comps))
		}
		return nil
	})
	a, c := atts[0], comps[0]
	if a.EventID != schemas.AttemptEventID(id, 1, a.TS) || a.Attempt != 1 || a.Outcome != schemas.OutcomeOK || a.Provider != "a" ||
		a.Tenant != "acme" || a.Tier != "pro" || a.Task != "chat" || a.InputTokens != 7 || a.CostUSD == nil {
		t.Errorf("attempt event = %+v", a)
	}
	if c.EventID != schemas.CompletionEventID(id, 0, c.TS) || c.Status != schemas.StatusSucceeded || c.Attempt != 1 || c.Fallback ||
		c.CostUSD == nil || *c.CostUSD != want || c.Route != "chat" || c.OutputTokens != 5 {
		t.Errorf("completion event = %+v", c)
	}
	// Both travel in one message, deduplicated by job and hop.
	if m := e.lastMsg(topology.StreamTelemetry, topology.TelemetryBatch); m.Header.Get(jetstream.MsgIDHeader) != topology.TelemetryMsgID(id, 0, a.TS) {
		t.Errorf("telemetry Nats-Msg-Id = %q, want %q", m.Header.Get(jetstream.MsgIDHeader), topology.TelemetryMsgID(id, 0, a.TS))
	}

	// A pinned job on an unpriced model has no cost (nil, not 0), and uses
	// the default policy.
	pinned := &schemas.Job{Model: "b/m-b", Request: json.RawMessage(chatBody)}
	res = e.result(e.submit(pinned), 10*time.Second)
	if res.Status != schemas.StatusSucceeded || res.Provider != "b" || res.CostUSD != nil {
		t.Errorf("pinned result: %s on %s, cost %v; want succeeded on b with nil cost", res.Status, res.Provider, res.CostUSD)
	}
}

// TestSingleReplicaAcksWithoutARoundTrip: on one server (lane consumers
// of one replica) each job's ack is one plain publish, with no reply
// subject to confirm it, and it takes: every job leaves JOBS once, none is
// delivered again, the provider is called once per job.
func TestSingleReplicaAcksWithoutARoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	acks, err := e.nc.SubscribeSync("$JS.ACK." + topology.StreamJobs + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.startPool("a")

	const jobs = 20
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = e.submit(newJob())
	}
	for _, id := range ids {
		if res := e.result(id, 10*time.Second); res.Status != schemas.StatusSucceeded {
			t.Fatalf("job %s: %s (%+v)", id, res.Status, res.Error)
		}
	}
	e.waitEmpty(5 * time.Second)
	for i := range jobs {
		m, err := acks.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("ack %d of %d: %v", i+1, jobs, err)
		}
		if string(m.Data) != "+ACK" || m.Reply != "" {
			t.Errorf("ack %d: body %q, reply %q; want a plain +ACK", i+1, m.Data, m.Reply)
		}
	}
	if m, err := acks.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("one ack too many: %q on %s", m.Data, m.Subject)
	}
	if n := e.mocks["a"].Stats().Requests; n != jobs {
		t.Errorf("provider called %d times, want %d", n, jobs)
	}
	ctx := natstest.Context(t)
	c, err := e.js.Consumer(ctx, topology.StreamJobs, topology.LaneConsumer("a", schemas.PriorityNormal))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.AckFloor.Stream == 0 {
		t.Errorf("lane consumer: %d pending acks, %d redelivered, ack floor %d; want 0, 0 and past the jobs", info.NumAckPending, info.NumRedelivered, info.AckFloor.Stream)
	}
}

func TestSyncCompleteAndReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	e.startPool("a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.client.Complete(ctx, newJob())
	if err != nil || res.Status != schemas.StatusSucceeded {
		t.Fatalf("Complete = %+v, %v", res, err)
	}
	// A job with a reply inbox also gets the Result there.
	inbox := nats.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	job := newJob()
	job.Reply = inbox
	id := e.submit(job)
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := schemas.DecodeResult(msg.Data)
	if err != nil || got.ID != id || got.Status != schemas.StatusSucceeded {
		t.Fatalf("reply = %+v, %v", got, err)
	}
}

func TestFallbackOn503(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, provider{name: "a", faults: mock.Faults{ErrorRate: 1, ErrorStatus: 503}}, provider{name: "b"})
	e.startPool("a")
	e.startPool("b")
	id := e.submit(newJob())
	res := e.result(id, 10*time.Second)
	if res.Status != schemas.StatusSucceeded || res.Provider != "b" {
		t.Fatalf("result %s on %s, want succeeded on b (error %+v)", res.Status, res.Provider, res.Error)
	}
	if got, want := outcomes(res.Attempts), "a:retry:server_error a:fallback:server_error b:ok"; got != want {
		t.Errorf("attempts = %s, want %s", got, want)
	}
	if res.Attempts[0].StatusCode != 503 || res.Attempts[0].ErrorMessage == "" {
		t.Errorf("first attempt = %+v, want status 503 and a message", res.Attempts[0])
	}
	if !res.Fallback() {
		t.Error("Fallback() = false")
	}
	if n := e.mocks["a"].Stats().Requests; n != 2 {
		t.Errorf("a served %d calls, want 2 (1 + retries)", n)
	}
	e.waitEmpty(5 * time.Second)
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		atts, comps := e.events(id)
		if len(atts) != 3 || len(comps) != 1 {
			return fmt.Errorf("%d attempt and %d completion events, want 3 and 1", len(atts), len(comps))
		}
		for i, ev := range atts {
			if ev.EventID != schemas.AttemptEventID(id, ev.Attempt, ev.TS) || ev.Attempt < 1 || ev.Attempt > 3 {
				return fmt.Errorf("event %d: attempt %d id %s", i, ev.Attempt, ev.EventID)
			}
			if ev.Attempt == 3 && (!ev.Fallback || ev.Provider != "b") {
				return fmt.Errorf("third attempt event %+v: want fallback on b", ev)
			}
		}
		if !comps[0].Fallback {
			return fmt.Errorf("completion event not marked fallback")
		}
		return nil
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{FailFirst: 1, ErrorStatus: 429, RetryAfter: time.Second}})
	e.startPool("a")
	res := e.result(e.submit(newJob()), 10*time.Second)
	if got, want := outcomes(res.Attempts), "a:retry:rate_limited a:ok"; got != want {
		t.Fatalf("attempts = %s, want %s", got, want)
	}
	first, second := res.Attempts[0], res.Attempts[1]
	if first.StatusCode != 429 {
		t.Errorf("first status = %d, want 429", first.StatusCode)
	}
	// Retry-After: 1 means the second call starts at least 1s after the
	// first answer.
	answered := first.StartedAt.Add(time.Duration(first.DurationMS) * time.Millisecond)
	if gap := second.StartedAt.Sub(answered); gap < time.Second {
		t.Errorf("second call %s after the 429, want at least Retry-After (1s)", gap)
	}
}

func TestHangTimesOutAndFallsBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		retryOn  []string
		attempts string
	}{
		// By default a silent provider is not called again: the next target is.
		{"default", nil, "a:fallback:timeout b:ok"},
		// A route that says so retries timeouts on the same target first.
		{"retry_on timeout", []string{schemas.ErrTimeout}, "a:retry:timeout a:fallback:timeout b:ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1, provider{name: "a", faults: mock.Faults{Hang: true}, timeout: 300 * time.Millisecond}, provider{name: "b"})
			e.cfg.Routes[0].RetryOn = tc.retryOn
			e.startPool("a")
			e.startPool("b")
			res := e.result(e.submit(newJob()), 10*time.Second)
			if got := outcomes(res.Attempts); got != tc.attempts {
				t.Fatalf("attempts = %s, want %s", got, tc.attempts)
			}
			if res.Status != schemas.StatusSucceeded || res.Provider != "b" {
				t.Errorf("result %s on %s, want succeeded on b", res.Status, res.Provider)
			}
			want := int64(strings.Count(tc.attempts, "a:"))
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if c := e.mocks["a"].Stats().Canceled; c != want {
					return fmt.Errorf("a saw %d abandoned calls, want %d", c, want)
				}
				return nil
			})
		})
	}
}

func TestAllTargetsFail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		status    int
		errType   string
		attempts  string
		deadLtr   bool
		bRequests int64
	}{
		{"exhausted", 500, schemas.ErrServerError, "a:retry:server_error a:fallback:server_error b:retry:server_error b:fatal:server_error", true, 2},
		{"invalid request", 400, schemas.ErrInvalidRequest, "a:fatal:invalid_request", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mock.Faults{ErrorRate: 1, ErrorStatus: tc.status}
			e := newEnv(t, 1, provider{name: "a", faults: f}, provider{name: "b", faults: f})
			e.startPool("a")
			e.startPool("b")
			id := e.submit(newJob())
			res := e.result(id, 10*time.Second)
			if res.Status != schemas.StatusFailed || res.Error == nil || res.Error.Type != tc.errType || res.Error.StatusCode != tc.status {
				t.Fatalf("result %s error %+v, want failed %s %d", res.Status, res.Error, tc.errType, tc.status)
			}
			if got := outcomes(res.Attempts); got != tc.attempts {
				t.Errorf("attempts = %s, want %s", got, tc.attempts)
			}
			if n := e.mocks["b"].Stats().Requests; n != tc.bRequests {
				t.Errorf("b served %d calls, want %d", n, tc.bRequests)
			}
			// Nothing lost: the job left JOBS, one Result, and (for
			// exhausted targets) one dead letter holding the whole history.
			e.waitEmpty(5 * time.Second)
			if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 1 {
				t.Errorf("%d results stored, want 1", n)
			}
			wantDLQ := 0
			if tc.deadLtr {
				wantDLQ = 1
			}
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if n := e.count(topology.StreamDLQ, topology.DLQ(topology.DLQExhausted)); n != wantDLQ {
					return fmt.Errorf("%d dead letters, want %d", n, wantDLQ)
				}
				return nil
			})
			if !tc.deadLtr {
				return
			}
			m := e.lastMsg(topology.StreamDLQ, topology.DLQ(topology.DLQExhausted))
			dead, err := schemas.DecodeJob(m.Data, 0)
			if err != nil || dead.ID != id || len(dead.Attempts) != 4 {
				t.Fatalf("dead letter = %s (%v), want the job with 4 attempts", m.Data, err)
			}
			if r := m.Header.Get(topology.HeaderError); !strings.HasPrefix(r, schemas.ErrServerError) {
				t.Errorf("reason header = %q", r)
			}
			if s := m.Header.Get(topology.HeaderSource); s != topology.Jobs("b") {
				t.Errorf("source header = %q, want %s", s, topology.Jobs("b"))
			}
			if got := m.Header.Get(jetstream.MsgIDHeader); got != topology.DLQMsgID(id, 1) {
				t.Errorf("dead letter id = %q, want %q", got, topology.DLQMsgID(id, 1))
			}
			_, comps := e.events(id)
			if len(comps) != 1 || comps[0].Status != schemas.StatusFailed || comps[0].ErrorType != schemas.ErrServerError {
				t.Errorf("completion events = %+v", comps)
			}
		})
	}
}

func TestDuplicatePublishRunsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	job := newJob()
	if err := e.client.Prepare(job); err != nil {
		t.Fatal(err)
	}
	ctx := natstest.Context(t)
	for range 2 {
		if err := topology.PublishJob(ctx, e.js, job); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.Submit(ctx, job); err != nil {
		t.Fatal(err)
	}
	if n := e.jobsLeft(); n != 1 {
		t.Fatalf("%d jobs queued after publishing one id three times, want 1", n)
	}
	e.startPool("a")
	e.result(job.ID, 10*time.Second)
	e.waitEmpty(5 * time.Second)
	if n := e.mocks["a"].Stats().Requests; n != 1 {
		t.Errorf("provider called %d times, want 1", n)
	}
}

func TestPoisonToDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	e.startPool("a")
	valid := newJob()
	if err := e.client.Prepare(valid); err != nil {
		t.Fatal(err)
	}
	other := *valid
	other.Plan = []schemas.Target{{Provider: "zzz", Model: "x"}}
	noPlan := *valid
	noPlan.Plan = nil
	v2 := *valid
	v2.V = 2
	enc := func(j schemas.Job) string { b, _ := json.Marshal(j); return string(b) }
	cases := []struct{ name, payload, reason string }{
		{"broken json", `{"v":1,"id":`, "invalid JSON"},
		{"bad version", enc(v2), "unsupported version"},
		{"empty plan", enc(noPlan), "plan"},
		{"wrong provider", enc(other), `"zzz"`},
	}
	for _, c := range cases {
		if _, err := e.js.Publish(natstest.Context(t), topology.Jobs("a"), []byte(c.payload)); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.count(topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != len(cases) {
			return fmt.Errorf("%d poison letters, want %d", n, len(cases))
		}
		return nil
	})
	e.waitEmpty(5 * time.Second)
	stream, err := e.js.Stream(natstest.Context(t), topology.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	// Workers run concurrently: dead letters are in any order.
	byPayload := map[string]*jetstream.RawStreamMsg{}
	for seq := range uint64(len(cases)) {
		m, err := stream.GetMsg(natstest.Context(t), seq+1)
		if err != nil {
			t.Fatal(err)
		}
		byPayload[string(m.Data)] = m
	}
	for _, c := range cases {
		m, ok := byPayload[c.payload]
		if !ok {
			t.Errorf("%s: no dead letter holds the raw message", c.name)
			continue
		}
		if r := m.Header.Get(topology.HeaderError); !strings.Contains(r, c.reason) {
			t.Errorf("%s: reason = %q, want it to mention %q", c.name, r, c.reason)
		}
		if s := m.Header.Get(topology.HeaderSource); s != topology.Jobs("a") {
			t.Errorf("%s: source = %q", c.name, s)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == "" {
			t.Errorf("%s: no Nats-Msg-Id", c.name)
		}
	}
	if n := e.mocks["a"].Stats().Requests; n != 0 {
		t.Errorf("provider called %d times for poison messages", n)
	}
}

func TestDeadlinePassedBeforeStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	job := newJob()
	if err := e.client.Prepare(job); err != nil {
		t.Fatal(err)
	}
	dl := time.Now().Add(50 * time.Millisecond)
	job.Deadline = &dl
	if err := topology.PublishJob(natstest.Context(t), e.js, job); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, time.Second, 10*time.Millisecond, func() error {
		if time.Now().Before(dl) {
			return fmt.Errorf("deadline not reached")
		}
		return nil
	})
	e.startPool("a")
	res := e.result(job.ID, 10*time.Second)
	if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrDeadlineExceeded || len(res.Attempts) != 0 {
		t.Fatalf("result %s %+v attempts %d, want failed deadline_exceeded with no attempt", res.Status, res.Error, len(res.Attempts))
	}
	if n := e.mocks["a"].Stats().Requests; n != 0 {
		t.Errorf("provider called %d times past the deadline", n)
	}
	if n := e.count(topology.StreamDLQ, ">"); n != 0 {
		t.Errorf("%d dead letters for an expired job, want 0", n)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{Hang: true}, timeout: 20 * time.Second}, provider{name: "b"})
	e.startPool("a")
	e.startPool("b")
	id := e.submit(newJob())
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().InFlight; n != 1 {
			return fmt.Errorf("%d calls in flight", n)
		}
		return nil
	})
	if err := e.nc.Publish(topology.Cancel(id), nil); err != nil {
		t.Fatal(err)
	}
	res := e.result(id, 10*time.Second)
	if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrCanceled {
		t.Fatalf("result %s %+v, want failed canceled", res.Status, res.Error)
	}
	if got := outcomes(res.Attempts); got != "a:fatal:canceled" {
		t.Errorf("attempts = %s, want a:fatal:canceled (no retry, no fallback)", got)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().Canceled; n != 1 {
			return fmt.Errorf("upstream saw %d canceled calls, want 1", n)
		}
		return nil
	})
	e.waitEmpty(5 * time.Second)
	if n := e.mocks["b"].Stats().Requests; n != 0 {
		t.Errorf("b called %d times", n)
	}
	if n := e.count(topology.StreamDLQ, ">"); n != 0 {
		t.Errorf("%d dead letters for a canceled job", n)
	}
}

// chunkLog collects a streaming job's chunk messages.
type chunkLog struct {
	sub *nats.Subscription
}

func (e *env) subscribeChunks(id string) *chunkLog {
	e.t.Helper()
	sub, err := e.nc.SubscribeSync(topology.Chunks(id))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		e.t.Fatal(err)
	}
	return &chunkLog{sub: sub}
}

// drain returns the chunks received so far (the Result is stored after the
// last chunk was flushed, so after the Result they are all here).
func (c *chunkLog) drain(t *testing.T) []*nats.Msg {
	t.Helper()
	var out []*nats.Msg
	for {
		m, err := c.sub.NextMsg(100 * time.Millisecond)
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

func streamingJob(t *testing.T, e *env) *schemas.Job {
	job := newJob()
	job.Stream = true
	if err := e.client.Prepare(job); err != nil {
		t.Fatal(err)
	}
	return job
}

func chunkText(t *testing.T, msgs []*nats.Msg) (text string, providers map[string]int, kinds string) {
	providers = map[string]int{}
	for _, m := range msgs {
		kinds += m.Header.Get(topology.HeaderChunkKind)[:1]
		providers[m.Header.Get(topology.HeaderProvider)]++
		if m.Header.Get(topology.HeaderChunkKind) != "data" {
			continue
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(m.Data, &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Errorf("chunk %s is not a chat.completion.chunk (%v)", m.Data, err)
		}
		for _, ch := range c.Choices {
			text += ch.Delta.Content
		}
	}
	return text, providers, kinds
}

func TestStreaming(t *testing.T) {
	t.Parallel()
	t.Run("streams chunks", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 0, provider{name: "a"})
		e.startPool("a")
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		text, provs, kinds := chunkText(t, log.drain(t))
		if res.Status != schemas.StatusSucceeded || len(kinds) < 2 || strings.Contains(kinds, "e") || provs["a"] != len(kinds) {
			t.Fatalf("result %s, chunk kinds %q from %v; want succeeded, several data chunks from a", res.Status, kinds, provs)
		}
		var body struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(res.Response, &body); err != nil || len(body.Choices) == 0 || body.Choices[0].Message.Content != text {
			t.Errorf("streamed text %q, result %s", text, res.Response)
		}
		if e.mocks["a"].Stats().Streams != 1 {
			t.Errorf("upstream call was not streamed")
		}
		if res.Timings.TTFTMS > res.Timings.TotalMS {
			t.Errorf("timings %+v", res.Timings)
		}
	})
	t.Run("error before first chunk falls back", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{ErrorRate: 1, ErrorStatus: 502}}, provider{name: "b"})
		e.startPool("a")
		e.startPool("b")
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		_, provs, kinds := chunkText(t, log.drain(t))
		if res.Status != schemas.StatusSucceeded || res.Provider != "b" || provs["b"] != len(kinds) || len(kinds) == 0 {
			t.Fatalf("result %s on %s, chunks %q from %v; want succeeded on b, every chunk from b", res.Status, res.Provider, kinds, provs)
		}
		if got := outcomes(res.Attempts); got != "a:fallback:server_error b:ok" {
			t.Errorf("attempts = %s", got)
		}
	})
	t.Run("error after first chunk is continued on the next target", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{ErrorAfterChunks: 2}}, provider{name: "b"})
		e.startPool("a")
		e.startPool("b")
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		text, provs, kinds := chunkText(t, log.drain(t))
		if res.Status != schemas.StatusSucceeded || res.Provider != "b" {
			t.Fatalf("result %s on %s, want succeeded on b", res.Status, res.Provider)
		}
		if strings.Contains(kinds, "e") || provs["a"] == 0 || provs["b"] == 0 || text != "mock reply to: say hi" {
			t.Fatalf("chunks %q from %v, text %q; want a's then b's data chunks forming one answer", kinds, provs, text)
		}
		if got := outcomes(res.Attempts); got != "a:fallback:server_error b:ok" {
			t.Errorf("attempts = %s, want no retry on a, the continuation on b", got)
		}
		var whole struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(res.Response, &whole); err != nil || whole.Choices[0].Message.Content != text {
			t.Errorf("stored response %s, want the whole answer %q", res.Response, text)
		}
		// Time to first token is a's first chunk, before b was called.
		if b := res.Attempts[1].StartedAt.Sub(job.CreatedAt).Milliseconds(); res.Timings.TTFTMS > b {
			t.Errorf("ttft %d ms, want a's first chunk, before b's call at %d ms", res.Timings.TTFTMS, b)
		}
	})
	t.Run("error after first chunk with no target left fails without splicing", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 2, provider{name: "a", faults: mock.Faults{ErrorAfterChunks: 2}})
		e.startPool("a")
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		msgs := log.drain(t)
		_, _, kinds := chunkText(t, msgs)
		if res.Status != schemas.StatusFailed || res.Error == nil || res.Error.Type != schemas.ErrStreamBroken {
			t.Fatalf("result %s %+v, want failed stream_broken", res.Status, res.Error)
		}
		if !strings.HasSuffix(kinds, "e") || strings.Count(kinds, "e") != 1 || len(kinds) < 2 {
			t.Fatalf("chunk kinds %q; want data chunks from a then one error chunk", kinds)
		}
		var info schemas.ErrorInfo
		if err := json.Unmarshal(msgs[len(msgs)-1].Data, &info); err != nil || info.Type != res.Error.Type {
			t.Errorf("error chunk %s, want the result's error %+v", msgs[len(msgs)-1].Data, res.Error)
		}
		if got := outcomes(res.Attempts); !strings.HasPrefix(got, "a:fatal:") || len(res.Attempts) != 1 {
			t.Errorf("attempts = %s, want one fatal call on a (no retry)", got)
		}
	})
	t.Run("a non-streaming adapter does not continue a broken stream", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{ErrorAfterChunks: 2}}, provider{name: "b"})
		e.startPool("a")
		e.startPool("b", func(pc *workers.PoolConfig) { pc.Completer = struct{ llm.Completer }{pc.Completer} })
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		_, provs, kinds := chunkText(t, log.drain(t))
		if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrStreamBroken || !strings.HasSuffix(kinds, "e") || provs["b"] > 1 {
			t.Fatalf("result %s %+v, chunks %q from %v; want stream_broken after a's chunks, nothing from b", res.Status, res.Error, kinds, provs)
		}
		if n := e.mocks["b"].Stats().Requests; n != 0 {
			t.Errorf("b called %d times: its whole answer would repeat the text sent", n)
		}
	})
	t.Run("non-streaming adapter sends one chunk", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, 0, provider{name: "a"})
		// Hide the adapter's Stream method: only Complete is visible.
		e.startPool("a", func(pc *workers.PoolConfig) { pc.Completer = struct{ llm.Completer }{pc.Completer} })
		job := streamingJob(t, e)
		log := e.subscribeChunks(job.ID)
		e.submit(job)
		res := e.result(job.ID, 10*time.Second)
		text, _, kinds := chunkText(t, log.drain(t))
		if res.Status != schemas.StatusSucceeded || kinds != "d" || text == "" {
			t.Fatalf("result %s, chunk kinds %q, text %q; want one data chunk with the whole answer", res.Status, kinds, text)
		}
		if e.mocks["a"].Stats().Streams != 0 {
			t.Errorf("upstream call was streamed")
		}
	})
}

// A redelivered run whose Result an earlier run of the job stores while
// this one calls the provider (the earlier worker was still at it, stalled
// past AckWait) is deduplicated, and its sync caller gets the stored Result,
// the one every later reader sees, not this run's.
func TestDuplicateResultRepliesStoredCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a", faults: mock.Faults{Latency: 300 * time.Millisecond}})
	ctx := natstest.Context(t)
	job := newJob()
	id := uuid.NewString()
	job.ID = id
	stored := &schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, Route: "chat", Provider: "a", Model: "m-a",
		Attempts: []schemas.Attempt{{Provider: "a", Model: "m-a", StartedAt: time.Now().UTC(), Outcome: schemas.OutcomeOK, StatusCode: 200}},
		Response: json.RawMessage(`{"object":"chat.completion","id":"stored-earlier","choices":[]}`)}
	type answer struct {
		res *schemas.Result
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := e.client.Complete(cctx, job)
		answered <- answer{res, err}
	}()
	// The job's first delivery is taken and handed back before the pool
	// starts, so the pool's is a redelivery.
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := e.jobsLeft(); n != 1 {
			return fmt.Errorf("%d jobs on JOBS, want the caller's", n)
		}
		return nil
	})
	e.handBack("a")
	e.startPool("a")
	natstest.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().InFlight; n != 1 {
			return fmt.Errorf("%d calls under way, want the redelivered run's", n)
		}
		return nil
	})
	e.storeResult(stored)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	if n := e.mocks["a"].Stats().Requests; n != 1 {
		t.Fatalf("provider called %d times, want 1 (the run did not know of the stored Result)", n)
	}
	if !bytes.Equal(a.res.Response, stored.Response) {
		t.Fatalf("sync caller got response %s, want the stored %s", a.res.Response, stored.Response)
	}
	if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

// On a job's first delivery the sync caller's answer does not wait for the
// Result's store: with RESULTS gone the caller is answered all the same,
// and the job stays on JOBS until its Result is stored.
func TestFirstDeliveryAnswersBeforeResultIsStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	ctx := natstest.Context(t)
	if err := e.js.DeleteStream(ctx, topology.StreamResults); err != nil {
		t.Fatal(err)
	}
	e.startPool("a")
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := e.client.Complete(cctx, newJob())
	if err != nil {
		t.Fatalf("sync caller not answered while RESULTS is gone: %v", err)
	}
	if res.Status != schemas.StatusSucceeded {
		t.Fatalf("answer %+v, want succeeded", res)
	}
	if n := e.jobsLeft(); n != 1 {
		t.Fatalf("%d jobs on JOBS, want the answered one kept until its Result is stored", n)
	}
	if err := topology.Ensure(ctx, e.js, e.cfg.Limits); err != nil {
		t.Fatal(err)
	}
	stored := e.result(res.ID, 15*time.Second)
	if stored.Status != schemas.StatusSucceeded {
		t.Fatalf("stored result %+v, want succeeded", stored)
	}
	e.waitEmpty(10 * time.Second)
	if n := e.count(topology.StreamResults, topology.ResultByID(res.ID)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

func TestRedeliveredFinishedJobIsNotCalledAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	job := newJob()
	id := e.submit(job)
	// A first worker stored the Result, then died before its ack.
	res := &schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, Route: "chat", Provider: "a", Model: "m-a",
		Attempts: []schemas.Attempt{{Provider: "a", Model: "m-a", StartedAt: time.Now().UTC(), Outcome: schemas.OutcomeOK, StatusCode: 200}},
		Response: json.RawMessage(`{"object":"chat.completion","choices":[]}`)}
	e.storeResult(res)
	e.handBack("a")
	e.startPool("a")
	e.waitEmpty(10 * time.Second)
	if n := e.mocks["a"].Stats().Requests; n != 0 {
		t.Errorf("provider called %d times for a job already finished", n)
	}
	if n := e.count(topology.StreamResults, topology.ResultByID(id)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		atts, comps := e.events(id)
		if len(atts) != 1 || len(comps) != 1 {
			return fmt.Errorf("%d attempt and %d completion events, want the lost telemetry re-sent", len(atts), len(comps))
		}
		return nil
	})
}

func TestPublishFailureLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0, provider{name: "a"})
	ctx := natstest.Context(t)
	// Without the RESULTS stream, storing the result fails: the job must
	// stay queued and complete once the stream is back.
	if err := e.js.DeleteStream(ctx, topology.StreamResults); err != nil {
		t.Fatal(err)
	}
	id := e.submit(newJob())
	e.startPool("a", func(pc *workers.PoolConfig) { pc.PublishTimeout = 200 * time.Millisecond })
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := e.mocks["a"].Stats().Requests; n < 2 {
			return fmt.Errorf("%d calls, want the job redelivered", n)
		}
		return nil
	})
	if n := e.jobsLeft(); n != 1 {
		t.Fatalf("%d jobs queued while results cannot be stored, want 1", n)
	}
	if err := topology.Ensure(ctx, e.js, e.cfg.Limits); err != nil {
		t.Fatal(err)
	}
	res := e.result(id, 10*time.Second)
	if res.Status != schemas.StatusSucceeded {
		t.Fatalf("result %s", res.Status)
	}
	e.waitEmpty(5 * time.Second)
}

// A sync caller waiting in the pool's own process is answered in process
// (PoolConfig.LocalReply), without its answer crossing the server; a
// streaming job's answer still goes through the server, behind its chunks.
func TestLocalReplySkipsTheServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		local, stream bool
		want          int // answers seen on the server
	}{
		{"published without LocalReply", false, false, 1},
		{"in process with LocalReply", true, false, 0},
		{"streaming job published with LocalReply", true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 0, provider{name: "a"})
			e.startPool("a", func(pc *workers.PoolConfig) {
				if tc.local {
					pc.LocalReply = e.client.DeliverReply
				}
			})
			ctx := natstest.Context(t)
			await := func(stream bool) *schemas.Job {
				t.Helper()
				job := newJob()
				job.Stream = stream
				if err := e.client.Prepare(job); err != nil {
					t.Fatal(err)
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				res, err := e.client.Await(cctx, job)
				if err != nil || res.Status != schemas.StatusSucceeded {
					t.Fatalf("answer %+v, %v; want succeeded", res, err)
				}
				return job
			}
			// The client's reply subjects share a prefix: learn it, then
			// watch it from another connection.
			first := await(false)
			prefix := first.Reply[:strings.LastIndexByte(first.Reply, '.')+1]
			if e.client.DeliverReply("elsewhere."+first.ID, []byte("{}")) {
				t.Fatal("DeliverReply took a subject that is not one of the client's")
			}
			sniff, _ := e.te.NATS.Connect(t)
			seen, err := sniff.SubscribeSync(prefix + "*")
			if err != nil {
				t.Fatal(err)
			}
			if err := sniff.Flush(); err != nil {
				t.Fatal(err)
			}
			job := await(tc.stream)
			if !strings.HasPrefix(job.Reply, prefix) {
				t.Fatalf("reply subject %q does not start with %q", job.Reply, prefix)
			}
			// The answer went out (if at all) before Await returned; a
			// round trip on both connections lets it reach the sniffer.
			if err := e.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := sniff.Flush(); err != nil {
				t.Fatal(err)
			}
			if n, _, _ := seen.Pending(); n != tc.want {
				t.Fatalf("%d answers crossed the server, want %d", n, tc.want)
			}
		})
	}
}
