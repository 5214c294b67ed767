package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// Jobs over NATS, both ways, through a real broker (dispatcher, service,
// worker pool, instant mock): every job is answered and timed; a route
// whose provider fails every call counts errors; the raw anchor confirms
// every message.
func TestJobTargetsOverNATS(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a", Concurrency: 16},
		{Name: "down", Faults: mock.Faults{ErrorRate: 1, ErrorStatus: 400}}})
	env.StartPools(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = broker.NewDispatcher(env.Client, env.JS, nil).Run(ctx) }()
	go func() { _ = broker.NewService(env.Client, nil).Run(ctx) }()
	request := json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)
	for _, via := range []string{ViaSubmit, ViaComplete} {
		tg, closeTarget, err := JobTarget(env.NC, env.JS, via, "a/a-model", request)
		if err != nil {
			t.Fatal(err)
		}
		stats, err := Run(ctx, Options{Rate: 200, Requests: 40, Timeout: 20 * time.Second}, tg)
		closeTarget()
		if err != nil {
			t.Fatal(err)
		}
		if s := stats[0]; s.Requests != 40 || s.Errors != 0 || s.P50 <= 0 {
			t.Errorf("via %s: %+v, want 40 answered", via, s)
		}
		bad, closeBad, err := JobTarget(env.NC, env.JS, via, "down/down-model", request)
		if err != nil {
			t.Fatal(err)
		}
		stats, err = Run(ctx, Options{Rate: 0, Requests: 5, Timeout: 20 * time.Second}, bad)
		closeBad()
		if err != nil {
			t.Fatal(err)
		}
		if s := stats[0]; s.Errors != 5 {
			t.Errorf("via %s to a failing provider: %+v, want 5 errors", via, s)
		}
	}
	raw, err := RawPublish(ctx, env.JS, 2000, JobSize("chat", request))
	if err != nil || raw.Requests != 2000 || raw.Errors != 0 || raw.Throughput <= 0 {
		t.Errorf("raw publish: %+v, %v", raw, err)
	}
	if _, _, err := JobTarget(env.NC, env.JS, "carrier-pigeon", "chat", request); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown via: %v, want ErrInvalid", err)
	}
}
