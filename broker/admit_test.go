package broker_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// natsFront runs the two NATS entrances (the llm.submit dispatcher and the
// llm.complete service) over providers a and b (route chat: a, then b),
// with a real budget tracker: tenant "broke" is over its daily budget
// (reject), everyone else has none.
type natsFront struct {
	*testenv.Env
	client *broker.Client
}

func startNATSFront(t *testing.T) *natsFront {
	t.Helper()
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}, {Name: "b"}})
	env.Config.Budgets = []config.Budget{{Tenant: "broke", DailyUSD: 1, OnExceed: config.OnExceed{Reject: true}}}
	if err := env.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	env.StartPools(t)
	ctx := natstest.Context(t)
	spend, err := budget.Open(ctx, env.JS, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spend.Add(ctx, schemas.NewJobID(), "broke", 5, time.Now()); err != nil {
		t.Fatal(err)
	}
	client := broker.NewClient(env.NC, env.JS, router.New(env.Config, router.Options{Budgets: spend}))
	go func() { _ = broker.NewDispatcher(client, env.JS, nil).Run(ctx) }()
	go func() { _ = broker.NewService(client, nil).Run(ctx) }()
	return &natsFront{Env: env, client: client}
}

// submit publishes a raw job on llm.submit and waits for its stored Result.
func (f *natsFront) submit(t *testing.T, raw string) *schemas.Result {
	t.Helper()
	var job struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(raw), &job); err != nil || job.ID == "" {
		t.Fatalf("test job without id: %s", raw)
	}
	ctx := natstest.Context(t)
	if _, err := f.JS.Publish(ctx, topology.SubjectSubmit, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	var res *schemas.Result
	natstest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		var err error
		res, err = f.client.Result(ctx, job.ID)
		return err
	})
	return res
}

// drained waits until none of the JOBS consumers named has a message
// pending or unacked.
func drained(t *testing.T, js jetstream.JetStream, within time.Duration, consumers ...string) {
	t.Helper()
	ctx := natstest.Context(t)
	natstest.CheckFor(t, within, 20*time.Millisecond, func() error {
		for _, name := range consumers {
			c, err := js.Consumer(ctx, topology.StreamJobs, name)
			if err != nil {
				return err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.NumPending > 0 || info.NumAckPending > 0 {
				return fmt.Errorf("consumer %s: %d pending, %d unacked", name, info.NumPending, info.NumAckPending)
			}
		}
		return nil
	})
}

// settled waits until the dispatcher and both pools have nothing pending or
// unacked, then runs one more job through the same pools and returns once
// its reply arrived on f.NC: anything the earlier jobs published to a core
// subject subscribed on f.NC has been delivered by then.
func (f *natsFront) settled(t *testing.T) {
	t.Helper()
	ctx := natstest.Context(t)
	drained(t, f.JS, 15*time.Second, topology.DispatcherConsumer, topology.WorkerConsumer("a"), topology.WorkerConsumer("b"))
	for _, p := range []string{"a", "b"} {
		res, err := f.client.Complete(ctx, &schemas.Job{Model: p + "/" + p + "-model", Request: testenv.Chat("sentinel")})
		if err != nil || res.Status != schemas.StatusSucceeded {
			t.Fatalf("sentinel job on %s: %v %+v", p, err, res)
		}
	}
}

func rawJob(id, extra string) string {
	return fmt.Sprintf(`{"id":%q,"request":{"messages":[{"role":"user","content":"hi"}]}%s}`, id, extra)
}

// Defect: llm.submit trusted fields only the broker may set.
func TestSubmitIgnoresBrokerOwnedFields(t *testing.T) {
	f := startNATSFront(t)

	t.Run("reply to an attacker's inbox receives nothing", func(t *testing.T) {
		inbox, err := f.NC.SubscribeSync("attacker.inbox")
		if err != nil {
			t.Fatal(err)
		}
		res := f.submit(t, rawJob(schemas.NewJobID(), `,"reply":"attacker.inbox"`))
		if res.Status != schemas.StatusSucceeded {
			t.Fatalf("result %+v", res)
		}
		f.settled(t)
		if n, _, _ := inbox.Pending(); n != 0 {
			t.Fatalf("the attacker's inbox received %d messages", n)
		}
	})

	t.Run("reply into RESULTS does not forge another job's Result", func(t *testing.T) {
		victim := f.submit(t, rawJob(schemas.NewJobID(), ""))
		forger := schemas.NewJobID()
		f.submit(t, rawJob(forger, fmt.Sprintf(`,"reply":%q`, topology.Result("", victim.ID))))
		f.settled(t)
		got, err := f.client.Result(natstest.Context(t), victim.ID)
		if err != nil || got.ID != victim.ID {
			t.Fatalf("the victim's stored Result is now %+v (%v)", got, err)
		}
		if n := f.StreamCount(t, topology.StreamResults, topology.Result("", victim.ID)); n != 1 {
			t.Fatalf("%d Results stored under the victim's subject, want 1", n)
		}
	})

	t.Run("plan and attempts cannot skip routing or the budget", func(t *testing.T) {
		forged := `,"route":"chat","plan":[{"provider":"b","model":"forged"}],"attempts":[{"provider":"x","model":"y","started_at":"2026-01-01T00:00:00Z","duration_ms":1,"outcome":"ok"}]`
		res := f.submit(t, rawJob(schemas.NewJobID(), forged))
		if res.Status != schemas.StatusSucceeded || res.Provider != "a" || res.Model != "a-model" || len(res.Attempts) != 1 {
			t.Fatalf("the forged plan was followed: %+v", res)
		}
		res = f.submit(t, rawJob(schemas.NewJobID(), `,"metadata":{"tenant":"broke"},"plan":[{"provider":"a","model":"a-model"}]`))
		if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrBudgetExceeded {
			t.Fatalf("a tenant over budget ran with a forged plan: %+v", res.Error)
		}
	})

	t.Run("re-submitting an id with hop 7 makes no second Result", func(t *testing.T) {
		id := schemas.NewJobID()
		first := f.submit(t, rawJob(id, ""))
		calls := f.Mocks["a"].Stats().Requests
		if _, err := f.JS.Publish(natstest.Context(t), topology.SubjectSubmit, []byte(rawJob(id, `,"hop":7`))); err != nil {
			t.Fatal(err)
		}
		f.settled(t)
		if n := f.StreamCount(t, topology.StreamResults, topology.Result("", id)); n != 1 {
			t.Fatalf("%d Results for the job, want 1", n)
		}
		if got := f.Mocks["a"].Stats().Requests - calls; got != 1 { // the sentinel's call only
			t.Fatalf("provider a got %d calls after the re-submission, want only the sentinel's", got)
		}
		if first.Status != schemas.StatusSucceeded {
			t.Fatalf("first result %+v", first)
		}
	})

	t.Run("stream and created_at are the broker's", func(t *testing.T) {
		id := schemas.NewJobID()
		chunks, err := f.NC.SubscribeSync(topology.Chunks(id))
		if err != nil {
			t.Fatal(err)
		}
		res := f.submit(t, rawJob(id, `,"stream":true,"created_at":"2001-01-01T00:00:00Z"`))
		f.settled(t)
		if n, _, _ := chunks.Pending(); n != 0 {
			t.Fatalf("a producer-set stream flag made %d chunks", n)
		}
		if res.Timings.TotalMS > int64(time.Hour/time.Millisecond) {
			t.Fatalf("a producer-set created_at was kept: total_ms %d", res.Timings.TotalMS)
		}
	})
}

// llm.complete: a forged reply/plan in the body is ignored, and a request
// whose reply subject is inside llm.> (or $>) is dropped, so a requester
// can't store a Result under another job's subject.
func TestCompleteIgnoresBrokerOwnedFields(t *testing.T) {
	f := startNATSFront(t)
	nc, _ := f.NATS.Connect(t)
	inbox, err := f.NC.SubscribeSync("attacker.inbox")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"route":"chat","reply":"attacker.inbox","plan":[{"provider":"b","model":"forged"}],"hop":3,"request":{"messages":[{"role":"user","content":"hi"}]}}`
	var reply *nats.Msg
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		reply, err = nc.Request(topology.SubjectComplete, []byte(body), 5*time.Second)
		return err
	})
	res, err := schemas.DecodeResult(reply.Data)
	if err != nil || res.Status != schemas.StatusSucceeded || res.Provider != "a" || res.Model != "a-model" {
		t.Fatalf("reply %s (%v)", reply.Data, err)
	}

	victim := f.submit(t, rawJob(schemas.NewJobID(), ""))
	if err := nc.PublishRequest(topology.SubjectComplete, topology.Result("", victim.ID), []byte(rawJob(schemas.NewJobID(), ""))); err != nil {
		t.Fatal(err)
	}
	// The service handles one requester's messages in order: once this
	// answer is back, the forged request was handled.
	if _, err := nc.Request(topology.SubjectComplete, []byte(body), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.settled(t)
	if n := f.StreamCount(t, topology.StreamResults, topology.Result("", victim.ID)); n != 1 {
		t.Fatalf("%d Results stored under the victim's subject, want 1", n)
	}
	if got, err := f.client.Result(natstest.Context(t), victim.ID); err != nil || got.ID != victim.ID {
		t.Fatalf("the victim's stored Result is now %+v (%v)", got, err)
	}
	if n, _, _ := inbox.Pending(); n != 0 {
		t.Fatalf("the attacker's inbox received %d messages", n)
	}
}

// Defect: an over-budget job on llm.submit was reported as invalid_request.
func TestOverBudgetOnNATSIsBudgetExceeded(t *testing.T) {
	f := startNATSFront(t)
	res := f.submit(t, rawJob(schemas.NewJobID(), `,"metadata":{"tenant":"broke"}`))
	if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrBudgetExceeded || !strings.Contains(res.Error.Message, "daily budget") {
		t.Fatalf("llm.submit: %+v", res.Error)
	}
	var reply *nats.Msg
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var err error
		reply, err = f.NC.Request(topology.SubjectComplete, []byte(rawJob(schemas.NewJobID(), `,"metadata":{"tenant":"broke"}`)), 5*time.Second)
		return err
	})
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "429" {
		t.Errorf("llm.complete error code %q, want 429", code)
	}
	if res, err := schemas.DecodeResult(reply.Data); err != nil || res.Error == nil || res.Error.Type != schemas.ErrBudgetExceeded {
		t.Fatalf("llm.complete: %s", reply.Data)
	}
}

// Identifier limits on NATS: a failed Result naming the field and the
// limit, a dead letter, and a connection that stays up.
func TestNATSIdentifierLimits(t *testing.T) {
	f := startNATSFront(t)
	long := strings.Repeat("x", 4200)
	cases := []struct{ extra, want string }{
		{`,"metadata":{"tenant":"` + long + `"}`, "metadata.tenant: is 4200 bytes, over the limit of 128"},
		{`,"model":"a/` + long + `"`, "model: model name is 4200 bytes, over the limit of 256"},
		{`,"route":"` + long + `"`, "route: is 4200 bytes, over the limit of 128"},
	}
	for i, tc := range cases {
		res := f.submit(t, rawJob(schemas.NewJobID(), tc.extra))
		if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrInvalidRequest || !strings.Contains(res.Error.Message, tc.want) {
			t.Errorf("case %d: %+v", i, res.Error)
		}
		if len(res.Error.Message) > 400 || res.Metadata[schemas.MetaTenant] != "" {
			t.Errorf("case %d: the value is echoed back (%d bytes)", i, len(res.Error.Message))
		}
		reply, err := f.NC.Request(topology.SubjectComplete, []byte(rawJob(schemas.NewJobID(), tc.extra)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := reply.Header.Get("Nats-Service-Error-Code"); code != "400" || !strings.Contains(string(reply.Data), tc.want) {
			t.Errorf("llm.complete case %d: %s %.300s", i, code, reply.Data)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := f.StreamCount(t, topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != len(cases) {
			return fmt.Errorf("%d poison dead letters, want %d", n, len(cases))
		}
		return nil
	})
	if st := f.NC.Status(); st != nats.CONNECTED {
		t.Fatalf("connection %v", st)
	}
}

// A model without '/' names a route on NATS as on HTTP; with a route set
// too, the error says how to name each. `"messages":"hi"` gets a clear error.
func TestNATSModelAsRouteAndClearErrors(t *testing.T) {
	f := startNATSFront(t)
	res := f.submit(t, rawJob(schemas.NewJobID(), `,"model":"chat"`))
	if res.Status != schemas.StatusSucceeded || res.Route != "chat" {
		t.Fatalf("model \"chat\" on llm.submit: %+v %+v", res, res.Error)
	}
	res = f.submit(t, rawJob(schemas.NewJobID(), `,"model":"auto"`))
	if res.Status != schemas.StatusSucceeded || res.Route != "chat" {
		t.Fatalf("model \"auto\" on llm.submit (default route): %+v", res.Error)
	}
	res = f.submit(t, rawJob(schemas.NewJobID(), `,"route":"chat","model":"other"`))
	if res.Status != schemas.StatusFailed || !strings.Contains(res.Error.Message, `a route is named with "route"`) {
		t.Fatalf("route and model without '/': %+v", res.Error)
	}
	reply, err := f.NC.Request(topology.SubjectComplete, []byte(`{"model":"chat","request":{"messages":[{"role":"user","content":"hi"}]}}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := schemas.DecodeResult(reply.Data); err != nil || r.Status != schemas.StatusSucceeded || r.Route != "chat" {
		t.Fatalf("model \"chat\" on llm.complete: %s", reply.Data)
	}
	reply, err = f.NC.Request(topology.SubjectComplete, []byte(`{"route":"chat","request":{"messages":"hi"}}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reply.Data), "request.messages: must be an array of messages") || strings.Contains(string(reply.Data), "Go struct") {
		t.Fatalf("messages \"hi\": %s", reply.Data)
	}
}
