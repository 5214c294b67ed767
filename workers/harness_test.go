package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// envResilience=1 gives the worker processes the shared resilience state.
const envResilience = testenv.EnvWorkerResilience

// TestMain runs a worker subprocess (testenv.StartWorker) or the tests.
func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's NATS server, config and mock providers: a testenv.Env
// with its parts under this package's short names (client may be replaced
// by a test routing with other options).
type env struct {
	t      testing.TB
	te     *testenv.Env
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    *config.Config
	client *broker.Client
	mocks  map[string]*mock.Server
	pools  map[string]*workers.Pool // the last pool startPool started per provider
}

// provider describes one mock provider of a test.
type provider struct {
	name        string
	faults      mock.Faults
	concurrency int
	timeout     time.Duration
}

// newEnv starts NATS and one mock per provider, and builds a config with
// route "chat" over the providers in order (model "m-<name>", concurrency
// 4, timeout 1s unless given) and the given retries. Provider "a"'s model
// is priced; the others are not.
func newEnv(t testing.TB, retries int, provs ...provider) *env {
	t.Helper()
	ps := make([]testenv.Provider, len(provs))
	for i, p := range provs {
		ps[i] = testenv.Provider{Name: p.name, Model: "m-" + p.name, Faults: p.faults, Concurrency: p.concurrency, Timeout: p.timeout}
		if ps[i].Concurrency == 0 {
			ps[i].Concurrency = 4
		}
		if ps[i].Timeout == 0 {
			ps[i].Timeout = time.Second
		}
	}
	ps[0].InputPerMTok, ps[0].OutputPerMTok = 1, 2
	te := testenv.Start(t, ps, testenv.ChatRoute(retries, ps...))
	te.Pools = map[string]*workers.Pool{}
	return &env{t: t, te: te, nc: te.NC, js: te.JS, cfg: te.Config, client: te.Client, mocks: te.Mocks, pools: te.Pools}
}

// adapter builds the real adapter of a provider.
func (e *env) adapter(name string) llm.Completer {
	p, _ := e.cfg.Provider(name)
	return testenv.Adapter(e.t, p)
}

// startPool runs an in-process pool for a provider on the test's connection
// until the test ends (or the returned stop is called, which waits for Run
// to return).
func (e *env) startPool(name string, mods ...func(*workers.PoolConfig)) (stop func()) {
	e.t.Helper()
	opts := append([]testenv.PoolOption{testenv.OnConn(e.nc, e.js), testenv.Logger(slog.New(slog.DiscardHandler)),
		testenv.Backoff(10*time.Millisecond, 50*time.Millisecond), testenv.Drain(2 * time.Second), testenv.NakDelay(100 * time.Millisecond)}, mods...)
	return e.te.StartPool(e.t, name, opts...)
}

// startWorker re-executes the test binary as a worker process of provider.
func (e *env) startWorker(name string, drain time.Duration) *testenv.Worker {
	e.t.Helper()
	return e.te.StartWorker(e.t, name, drain)
}

// chatBody is a minimal OpenAI chat-completions request.
const chatBody = `{"messages":[{"role":"user","content":"say hi"}]}`

// newJob returns a job on route "chat".
func newJob() *schemas.Job {
	return &schemas.Job{Route: "chat", Request: json.RawMessage(chatBody),
		Metadata: map[string]string{"tenant": "acme", "tier": "pro", "task": "chat"}}
}

// submit submits a job and returns its id.
func (e *env) submit(job *schemas.Job) string {
	e.t.Helper()
	return testenv.Submit(e.t, e.client, job)
}

// result waits for the stored Result of a job.
func (e *env) result(id string, within time.Duration) *schemas.Result {
	e.t.Helper()
	return testenv.AwaitResult(e.t, e.client, id, within)
}

// count returns the number of messages stored in a stream on subject.
func (e *env) count(stream, subject string) int {
	e.t.Helper()
	return testenv.StreamCount(e.t, e.js, stream, subject)
}

// lastMsg returns the last stored message on subject.
func (e *env) lastMsg(stream, subject string) *jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		e.t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

// handBack takes the first job on a provider's normal lane and hands it
// back at once (Nak), so the next delivery of it is a redelivery.
func (e *env) handBack(provider string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, _ := e.cfg.Provider(provider)
	cons, err := e.js.CreateOrUpdateConsumer(ctx, topology.StreamJobs, topology.LaneConsumerConfig(p, schemas.PriorityNormal))
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		if err := m.Nak(); err != nil {
			e.t.Fatal(err)
		}
	}
	if n != 1 {
		e.t.Fatalf("took %d jobs from %s's lane, want 1", n, provider)
	}
}

// storeResult stores res as the run of its job's hop 0 would (same subject
// and dedup id).
func (e *env) storeResult(res *schemas.Result) {
	e.t.Helper()
	data, err := json.Marshal(res)
	if err != nil {
		e.t.Fatal(err)
	}
	msg := &nats.Msg{Subject: topology.Result("", res.ID), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, topology.ResultMsgID(res.ID, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		e.t.Fatal(err)
	}
}

// jobsLeft is the number of jobs still on JOBS (work queue: acked jobs go).
func (e *env) jobsLeft() int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, topology.StreamJobs)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// waitEmpty waits until JOBS holds no job.
func (e *env) waitEmpty(within time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, within, 10*time.Millisecond, func() error {
		if n := e.jobsLeft(); n != 0 {
			return fmt.Errorf("%d jobs left on JOBS", n)
		}
		return nil
	})
}

// eventsByJob counts the stored telemetry events per job, by kind.
func (e *env) eventsByJob() (attempts, completions map[string]int) {
	e.t.Helper()
	attempts, completions = map[string]int{}, map[string]int{}
	atts, comps := e.events("")
	for _, ev := range atts {
		attempts[ev.JobID]++
	}
	for _, ev := range comps {
		completions[ev.JobID]++
	}
	return attempts, completions
}

// events returns the telemetry events of a job ("": of every job), by kind.
func (e *env) events(jobID string) (attempts, completions []schemas.Event) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, topology.StreamTelemetry, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var evs []schemas.Event
			if m.Subject() != topology.TelemetryBatch {
				evs = append(evs, schemas.Event{})
				err = json.Unmarshal(m.Data(), &evs[0])
			} else {
				err = json.Unmarshal(m.Data(), &evs)
			}
			if err != nil {
				e.t.Fatal(err)
			}
			for _, ev := range evs {
				if jobID != "" && ev.JobID != jobID {
					continue
				}
				if ev.Kind == schemas.EventAttempt {
					attempts = append(attempts, ev)
				} else {
					completions = append(completions, ev)
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			e.t.Fatal(err)
		}
		if n == 0 {
			return attempts, completions
		}
	}
}

// outcomes renders attempts as "provider:outcome[:error_type]" for comparison.
func outcomes(atts []schemas.Attempt) string {
	parts := make([]string, len(atts))
	for i, a := range atts {
		parts[i] = a.Provider + ":" + a.Outcome
		if a.ErrorType != "" {
			parts[i] += ":" + a.ErrorType
		}
	}
	return strings.Join(parts, " ")
}
