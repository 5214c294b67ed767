package lanes_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
)

// TestGlobalConcurrencyCap queues jobs of every priority for one provider
// with concurrency 4, then runs two worker pools (as two processes would:
// each its own connection and 4 workers) on them: the mock never sees more
// than 4 calls at once, high-priority jobs are done before the low ones,
// and the low ones still finish.
func TestGlobalConcurrencyCap(t *testing.T) {
	const concurrency, perLane = 4, 40
	env := testenv.Start(t, []testenv.Provider{{Name: "p", Concurrency: concurrency, Timeout: 5 * time.Second,
		Faults: mock.Faults{Latency: 30 * time.Millisecond}}})
	ctx := natstest.Context(t)

	var mu sync.Mutex
	finished := map[string]time.Time{}
	sub, err := env.NC.Subscribe("llm.results.>", func(m *nats.Msg) {
		mu.Lock()
		finished[m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]] = time.Now()
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	prio := map[string]string{}
	for i := range perLane {
		for _, p := range []string{schemas.PriorityLow, schemas.PriorityNormal, schemas.PriorityHigh} {
			id, err := env.Client.Submit(ctx, &schemas.Job{Route: "chat", Priority: p, Request: testenv.Chat(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			prio[id] = p
		}
	}
	env.StartPool(t, "p")
	env.StartPool(t, "p")
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(finished) < len(prio) {
			return fmt.Errorf("%d of %d jobs finished", len(finished), len(prio))
		}
		return nil
	})

	st := env.Mocks["p"].Stats()
	t.Logf("%d calls, max in flight %d (concurrency %d, two pools of %d workers)", st.Requests, st.MaxInFlight, concurrency, concurrency)
	if st.MaxInFlight > concurrency {
		t.Errorf("mock saw %d calls in flight, over the provider's concurrency %d", st.MaxInFlight, concurrency)
	}
	last := map[string]time.Time{}
	sum := map[string]time.Duration{}
	var start time.Time
	for _, at := range finished {
		if start.IsZero() || at.Before(start) {
			start = at
		}
	}
	for id, at := range finished {
		p := prio[id]
		if at.After(last[p]) {
			last[p] = at
		}
		sum[p] += at.Sub(start)
	}
	for _, p := range []string{schemas.PriorityHigh, schemas.PriorityNormal, schemas.PriorityLow} {
		t.Logf("%s: last done at +%v, mean +%v", p, last[p].Sub(start).Round(time.Millisecond), (sum[p] / perLane).Round(time.Millisecond))
	}
	if !last[schemas.PriorityHigh].Before(last[schemas.PriorityLow]) || sum[schemas.PriorityHigh] >= sum[schemas.PriorityLow] {
		t.Errorf("high jobs did not finish before low ones: last high %v, last low %v", last[schemas.PriorityHigh], last[schemas.PriorityLow])
	}
}
