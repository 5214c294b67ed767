package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// TestConsumersSurviveServerRestart shuts the NATS server down and starts
// it on the same port without JetStream for longer than a pull consumer's
// missed-heartbeat window (a node up while its JetStream is not: clients
// reconnect, pulls go unanswered), then restarts it with JetStream on the
// same store. The budget counter and the dispatcher must resume by
// themselves: spend counted after the restart puts the tenant over budget,
// and raw jobs on llm.submit are routed again.
func TestConsumersSurviveServerRestart(t *testing.T) {
	// The pull consumers' default heartbeat is 15 s: an outage past twice
	// that is a "no heartbeat received".
	const outage = 32 * time.Second
	// Each job costs 10 tokens in + 10 out at $50k/Mtok = $1 (mock usage).
	env := testenv.Start(t, []testenv.Provider{{Name: "a", InputPerMTok: 50_000, OutputPerMTok: 50_000}})
	env.StartPools(t)
	ctx := natstest.Context(t)
	log := slog.New(slog.DiscardHandler)

	tr, err := budget.Open(ctx, env.JS, budget.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := *env.Config
	cfg.Budgets = []config.Budget{{Tenant: "acme", DailyUSD: 1e-9, OnExceed: config.OnExceed{Reject: true}}}
	client := broker.NewClient(env.NC, env.JS, router.New(&cfg, router.Options{Budgets: tr}))
	counterDone := make(chan error, 1)
	go func() { counterDone <- tr.Run(ctx, env.JS) }()
	dispDone := make(chan error, 1)
	go func() { dispDone <- broker.NewDispatcher(client, env.JS, log).Run(ctx) }()

	// Both consumers work before the outage: a raw job is routed.
	submitRaw(t, ctx, env, "beta")

	// The outage: longer than the pull consumers' missed-heartbeat window.
	// (The wait is the fault injected, not a synchronisation.)
	addr := env.NATS.Addr().String()
	env.NATS.StopJetStream(t)
	select {
	case <-time.After(outage):
	case <-ctx.Done():
	}
	env.NATS.Restart(t)
	if env.NATS.Addr().String() != addr {
		t.Fatalf("restarted on %s, want %s", env.NATS.Addr(), addr)
	}
	select {
	case err := <-counterDone:
		t.Fatalf("budget counter stopped during the outage: %v", err)
	case err := <-dispDone:
		t.Fatalf("dispatcher stopped during the outage: %v", err)
	default:
	}

	// The dispatcher routes llm.submit jobs again; this one costs acme $1,
	// counted by the budget counter after the restart.
	submitRaw(t, ctx, env, "acme")
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		_, err := client.Submit(ctx, &schemas.Job{Route: "chat", Request: testenv.Chat("more"), Metadata: map[string]string{"tenant": "acme"}})
		if !errors.Is(err, router.ErrBudgetExceeded) {
			day, _ := tr.Spent("acme", time.Now())
			return fmt.Errorf("acme (spent $%v) submit: %v, want budget exceeded", day, err)
		}
		return nil
	})
}

// submitRaw publishes a raw job on llm.submit for tenant and waits for its
// succeeded Result, retrying the publish while the server is coming back.
func submitRaw(t *testing.T, ctx context.Context, env *testenv.Env, tenant string) {
	t.Helper()
	id := schemas.NewJobID()
	raw := fmt.Sprintf(`{"id":%q,"route":"chat","request":{"messages":[{"role":"user","content":"hi"}]},"metadata":{"tenant":%q}}`, id, tenant)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := env.JS.Publish(pctx, topology.SubjectSubmit, []byte(raw))
		return err
	})
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		res, err := env.Client.Result(ctx, id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if res.Status != schemas.StatusSucceeded {
			return fmt.Errorf("job %s: %+v", id, res)
		}
		return nil
	})
}

// TestConsumersRecreateDeletedConsumers deletes the durable consumers of the
// dispatcher and the budget counter under them (an operator's `nats consumer
// rm`, a consumer lost with a node): both re-create theirs and go on.
func TestConsumersRecreateDeletedConsumers(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a", InputPerMTok: 50_000, OutputPerMTok: 50_000}})
	env.StartPools(t)
	ctx := natstest.Context(t)
	tr, err := budget.Open(ctx, env.JS, budget.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := *env.Config
	cfg.Budgets = []config.Budget{{Tenant: "acme", DailyUSD: 1e-9, OnExceed: config.OnExceed{Reject: true}}}
	client := broker.NewClient(env.NC, env.JS, router.New(&cfg, router.Options{Budgets: tr}))
	go func() { _ = tr.Run(ctx, env.JS) }()
	go func() { _ = broker.NewDispatcher(client, env.JS, slog.New(slog.DiscardHandler)).Run(ctx) }()
	submitRaw(t, ctx, env, "beta")

	for _, c := range []struct{ stream, name string }{{topology.StreamJobs, topology.DispatcherConsumer}, {topology.StreamResults, budget.Consumer}} {
		if err := env.JS.DeleteConsumer(ctx, c.stream, c.name); err != nil {
			t.Fatalf("delete consumer %s: %v", c.name, err)
		}
	}
	submitRaw(t, ctx, env, "acme")
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		_, err := client.Submit(ctx, &schemas.Job{Route: "chat", Request: testenv.Chat("more"), Metadata: map[string]string{"tenant": "acme"}})
		if !errors.Is(err, router.ErrBudgetExceeded) {
			return fmt.Errorf("acme submit: %v, want budget exceeded", err)
		}
		return nil
	})
}
