package broker_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// A raw job whose routed publish is refused (JOBS full) is retried with
// backoff (watermill's Retry, then a redelivery), not dead-lettered, and
// runs once the queue has room again.
func TestDispatcherRetriesWhileQueueFull(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	env.Config.Limits.JobsMaxMsgs = 3
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, env.JS, env.Config.Limits); err != nil {
		t.Fatal(err)
	}
	// Two routed jobs wait for a pool that is not running yet; the raw job
	// makes three: its routed copy does not fit.
	for range 2 {
		if _, err := env.Client.Submit(ctx, &schemas.Job{Request: testenv.Chat("waiting")}); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncbuf.Buffer
	go func() {
		_ = broker.NewDispatcher(env.Client, env.JS, slog.New(slog.NewTextHandler(&logs, nil))).Run(ctx)
	}()
	id := schemas.NewJobID()
	raw := fmt.Sprintf(`{"id":%q,"request":{"messages":[{"role":"user","content":"queued"}]}}`, id)
	if _, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), topology.ErrQueueFull.Error()) {
			return fmt.Errorf("no retry of the full queue logged yet:\n%s", logs.String())
		}
		return nil
	})
	env.StartPools(t)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		res, err := env.Client.Result(ctx, id)
		if err != nil {
			return err
		}
		if res.Status != schemas.StatusSucceeded {
			return fmt.Errorf("result %+v", res)
		}
		return nil
	})
	if n := env.StreamCount(t, topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != 0 {
		t.Fatalf("%d poison dead letters for a full queue", n)
	}
}
