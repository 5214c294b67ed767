package lanes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// provisioned starts a JetStream server with Switchboard's streams.
func provisioned(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	if err := topology.Ensure(context.Background(), js, config.Limits{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func setup(t *testing.T, perLane int) (jetstream.JetStream, []jetstream.Consumer) {
	t.Helper()
	js := provisioned(t)
	ctx := context.Background()
	// AckWait = timeout + 5s = 6s: a message the server sent to a pull that
	// Stop cancelled mid-flight comes back within the tests' 10s waits.
	p := config.Provider{Name: "p", Concurrency: 100, Timeout: time.Second}
	cons, err := topology.EnsureLaneConsumers(ctx, js, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, prio := range topology.Priorities {
		for i := 0; i < perLane; i++ {
			msg := &nats.Msg{Subject: topology.JobsLane("p", prio), Data: []byte(prio)}
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	return js, cons
}

// openSource opens a Source over js's connection.
func openSource(t *testing.T, js jetstream.JetStream, cons []jetstream.Consumer, weights []int, hb time.Duration, batch int) *Source {
	t.Helper()
	src, err := Open(js.Conn(), cons, weights, hb, batch)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestSaturatedPicksByWeight(t *testing.T) {
	js, cons := setup(t, 30)
	src := openSource(t, js, cons, Weights(config.Lanes{High: 6, Normal: 3, Low: 1}), time.Second, 1)
	defer src.Stop()
	var order []string
	left := map[string]int{"high": 30, "normal": 30, "low": 30}
	for i := 0; i < 60; i++ {
		// Saturation: by the time a worker frees up, every lane with work
		// has a message pulled and waiting.
		natstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
			for j, w := range src.held() {
				if left[topology.Priorities[j]] > 0 && !w {
					return fmt.Errorf("lane %s not ready", topology.Priorities[j])
				}
			}
			return nil
		})
		m, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(m.Data()))
		left[string(m.Data())]--
		_ = m.Ack()
	}
	count := func(from, to int) map[string]int {
		c := map[string]int{}
		for _, p := range order[from:to] {
			c[p]++
		}
		return c
	}
	// Once every lane has a message waiting, picks follow 6:3:1 exactly;
	// allow the first few picks for lanes still being fetched.
	c := count(10, 50)
	if c["high"] < 22 || c["low"] < 2 || c["low"] > 6 {
		t.Errorf("picks 10-50: %v, want about 24 high / 12 normal / 4 low", c)
	}
	// High drains first; low was served all along (no starvation).
	if c := count(0, 30); c["low"] == 0 {
		t.Errorf("low starved in the first 30 picks: %v", c)
	}
	lastHigh := -1
	for i, p := range order {
		if p == "high" {
			lastHigh = i
		}
	}
	if lastHigh > 50 {
		t.Errorf("last high at pick %d, want the high lane drained first", lastHigh)
	}
}

func TestDrainAndStop(t *testing.T) {
	js, cons := setup(t, 3)
	src := openSource(t, js, cons, []int{1, 1, 1}, time.Second, 1)
	got := 0
	for ; got < 5; got++ {
		m, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Ack()
	}
	src.Stop()
	if _, err := src.Next(); err != jetstream.ErrMsgIteratorClosed {
		t.Fatalf("Next after Stop = %v", err)
	}
	// Whatever was pulled but not returned went back (Nak, or after AckWait
	// when it was in flight to a cancelled pull): a new Source gets the
	// remaining 4 messages.
	src2 := openSource(t, js, cons, []int{1, 1, 1}, time.Second, 1)
	defer src2.Stop()
	for ; got < 9; got++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan error, 1)
		go func() {
			m, err := src2.Next()
			if err == nil {
				_ = m.Ack()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of 9 messages came back", got)
		}
		cancel()
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		s, err := js.Stream(context.Background(), topology.StreamJobs)
		if err != nil {
			return err
		}
		info, err := s.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d messages left", info.State.Msgs)
		}
		return nil
	})
	src2.Drain()
	if _, err := src2.Next(); err != jetstream.ErrMsgIteratorClosed {
		t.Fatalf("Next after Drain of an empty source = %v", err)
	}
}

// TestLanePullAnswers drives one lane's pull loop with a fake server (a
// subscriber on the consumer's next-message subject): a waiting request
// that goes silent is replaced before its expiry, a delivery for the
// request given up on is still handed out, heartbeats keep a request, and
// a 409 "consumer deleted" closes the Source.
func TestLanePullAnswers(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := srv.Connect(t)
	l, err := openLanePull(nc, "S", "c", 1)
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan *nats.Msg, 16)
	sub, err := nc.Subscribe(l.subject, func(m *nats.Msg) { requests <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const hb = 50 * time.Millisecond
	src := start([]*lanePull{l}, []int{1}, time.Second, hb, 1)
	defer src.Stop()
	next := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			m, err := src.Next()
			ch <- result{m, err}
		}()
		return ch
	}
	request := func() *nats.Msg {
		t.Helper()
		select {
		case r := <-requests:
			return r
		case <-time.After(laneWait / 2):
			t.Fatal("no pull request before half the lane's wait")
			return nil
		}
	}
	got := func(ch <-chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("Next is still waiting")
			return result{}
		}
	}

	// The first request waits with heartbeats; it goes silent, so a second
	// one is sent long before the first's expiry.
	first := request()
	if !strings.Contains(string(first.Data), `"idle_heartbeat":50000000`) {
		t.Fatalf("waiting request %s asks for no heartbeat", first.Data)
	}
	second := request()
	if second.Reply == first.Reply {
		t.Fatalf("the new request reuses reply subject %s", first.Reply)
	}
	// A delivery for the first request still reaches a worker.
	ch := next()
	// (A real delivery keeps its stream subject and reaches the inbox by
	// subscription id; the fake sends it to the request's reply subject.)
	if err := nc.PublishMsg(&nats.Msg{Subject: first.Reply, Reply: "fake.ack.1", Data: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if r := got(ch); r.err != nil || string(r.msg.Data()) != "late" {
		t.Fatalf("Next = %v, %v; want the late delivery", r.msg, r.err)
	}

	// Heartbeats keep a request: once the newest one gets them, no new one
	// comes for 5 heartbeat intervals (silence ends a request after 2).
	var req *nats.Msg
	deadline := time.Now().Add(5 * time.Second)
	for quiet := 0; quiet < 10; {
		select {
		case r := <-requests:
			req, quiet = r, 0
		case <-time.After(hb / 2):
			if req == nil {
				continue
			}
			if err := nc.PublishMsg(&nats.Msg{Subject: req.Reply, Header: nats.Header{"Status": {"100"}, "Description": {"Idle Heartbeat"}}}); err != nil {
				t.Fatal(err)
			}
			quiet++
		}
		if time.Now().After(deadline) {
			t.Fatal("new pull requests kept coming while the open one had heartbeats")
		}
	}

	// A refusal that says the consumer is gone closes the Source.
	ch = next()
	if err := nc.PublishMsg(&nats.Msg{Subject: req.Reply, Header: nats.Header{"Status": {"409"}, "Description": {"Consumer Deleted"}}}); err != nil {
		t.Fatal(err)
	}
	if r := got(ch); !errors.Is(r.err, jetstream.ErrMsgIteratorClosed) {
		t.Fatalf("Next after consumer deleted = %v, %v; want ErrMsgIteratorClosed", r.msg, r.err)
	}
}

// At a light load (idle workers, one job at a time) a lane sends one pull
// request per job: a delivery whose metadata says nothing more is pending
// is followed by a request that waits, not by one asking for what is
// ready (answered 404) and then one that waits.
func TestLightLoadOnePullPerJob(t *testing.T) {
	js, cons := setup(t, 0)
	ctx := context.Background()
	requests, err := js.Conn().SubscribeSync(nextSubject(topology.StreamJobs, topology.LaneConsumer("p", schemas.PriorityNormal)))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	src := openSource(t, js, cons, []int{6, 3, 1}, time.Second, 8)
	defer src.Stop()
	got := make(chan string, 64)
	for range 16 { // idle workers
		go func() {
			for {
				m, err := src.Next()
				if err != nil {
					return
				}
				_ = m.Ack()
				got <- string(m.Data())
			}
		}()
	}
	const jobs = 40
	for i := range jobs {
		if _, err := js.Publish(ctx, topology.JobsLane("p", schemas.PriorityNormal), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			if d != fmt.Sprint(i) {
				t.Fatalf("got job %s, want %d", d, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d not delivered", i)
		}
	}
	n, _, err := requests.Pending()
	if err != nil {
		t.Fatal(err)
	}
	// One per job, and the one waiting now (plus one per laneWait expiry).
	if n > jobs+jobs/8 {
		t.Errorf("%d pull requests for %d jobs one at a time, want about one each", n, jobs)
	}
	t.Logf("%d pull requests for %d jobs", n, jobs)
}
