package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

func twoProviders(t *testing.T) *testenv.Env {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}, {Name: "b"}})
	env.StartPools(t)
	return env
}

func TestCompleteSucceeds(t *testing.T) {
	env := twoProviders(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := env.Client.Complete(ctx, &schemas.Job{Route: "chat", Request: testenv.Chat("hello there")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusSucceeded || res.Provider != "a" {
		t.Fatalf("result = %+v", res)
	}
	if !strings.Contains(string(res.Response), "mock reply to: hello there") {
		t.Errorf("response = %s", res.Response)
	}
	// The stored result is readable too (the answer does not wait for its
	// store: workers/settle.go).
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		stored, err := env.Client.Result(ctx, res.ID)
		if err != nil || stored.ID != res.ID || !bytes.Equal(stored.Response, res.Response) {
			return fmt.Errorf("stored result: %v %+v", err, stored)
		}
		return nil
	})
}

func TestSubmitRejectsBadInput(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	ctx := natstest.Context(t)
	past := time.Now().Add(-time.Minute)
	cases := []struct {
		name string
		job  schemas.Job
		want string
	}{
		{"unknown route", schemas.Job{Route: "nope", Request: testenv.Chat("x")}, `route: unknown route "nope"`},
		{"unknown provider", schemas.Job{Model: "zzz/m", Request: testenv.Chat("x")}, `model: unknown provider "zzz"`},
		{"no messages", schemas.Job{Request: []byte(`{"messages":[]}`)}, "request.messages"},
		{"past deadline", schemas.Job{Request: testenv.Chat("x"), Deadline: &past}, "deadline exceeded"},
		{"request over the limit", schemas.Job{Request: testenv.Chat(strings.Repeat("x", 2<<20))}, "request: is 2097"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Client.Submit(ctx, &tc.job)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if n := env.StreamCount(t, topology.StreamJobs, "llm.jobs.>"); n != 0 {
		t.Errorf("rejected jobs reached the queue: %d", n)
	}
}

func TestQueueFullIsBackpressure(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	env.Config.Limits.JobsMaxMsgs = 3
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, env.JS, env.Config.Limits); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; i < 5 && full == nil; i++ {
		_, full = env.Client.Submit(ctx, &schemas.Job{Request: testenv.Chat("x")})
	}
	if !errors.Is(full, topology.ErrQueueFull) {
		t.Fatalf("want topology.ErrQueueFull, got %v", full)
	}
	if n := env.StreamCount(t, topology.StreamJobs, "llm.jobs.>"); n != 3 {
		t.Errorf("queue holds %d jobs, want the 3 accepted", n)
	}
}

func TestDispatcherRoutesRawJobs(t *testing.T) {
	env := twoProviders(t)
	ctx := natstest.Context(t)
	go func() { _ = broker.NewDispatcher(env.Client, env.JS, nil).Run(ctx) }()

	id := schemas.NewJobID()
	sub, err := env.NC.SubscribeSync(topology.Result("", id))
	if err != nil {
		t.Fatal(err)
	}
	// A raw producer: plain JSON on llm.submit, as `nats pub` would send.
	raw := fmt.Sprintf(`{"id":%q,"request":{"messages":[{"role":"user","content":"from nats pub"}]},"metadata":{"tenant":"acme"}}`, id)
	if _, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res, err := schemas.DecodeResult(msg.Data)
	if err != nil || res.Status != schemas.StatusSucceeded || res.Metadata["tenant"] != "acme" || res.Route != "chat" {
		t.Fatalf("result = %+v, %v", res, err)
	}

	// A broken one: dead-lettered with its reason, and the dispatcher goes on.
	if _, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(`{"request": nope`)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := env.StreamCount(t, topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != 1 {
			return fmt.Errorf("poison dead letters = %d", n)
		}
		return nil
	})
	s, _ := env.JS.Stream(ctx, topology.StreamDLQ)
	dl, err := s.GetLastMsgForSubject(ctx, topology.DLQ(topology.DLQPoison))
	if err != nil {
		t.Fatal(err)
	}
	if reason := dl.Header.Get(topology.HeaderError); !strings.Contains(reason, "invalid JSON") || string(dl.Data) != `{"request": nope` {
		t.Errorf("dead letter reason %q payload %q", reason, dl.Data)
	}

	// An unroutable job with an id gets a failed Result its producer can read.
	bad := schemas.NewJobID()
	if _, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(fmt.Sprintf(`{"id":%q,"route":"nope","request":{"messages":[{"role":"user","content":"x"}]}}`, bad))); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		res, err := env.Client.Result(ctx, bad)
		if err != nil {
			return err
		}
		if res.Status != schemas.StatusFailed || res.Error.Type != schemas.ErrInvalidRequest || !strings.Contains(res.Error.Message, "unknown route") {
			return fmt.Errorf("result = %+v", res)
		}
		return nil
	})
}

func TestServiceRequestReply(t *testing.T) {
	env := twoProviders(t)
	ctx := natstest.Context(t)
	go func() { _ = broker.NewService(env.Client, nil).Run(ctx) }()
	nc, _ := env.NATS.Connect(t)

	var reply *nats.Msg
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var err error
		reply, err = nc.Request(topology.SubjectComplete, []byte(`{"route":"chat","request":{"messages":[{"role":"user","content":"sync over nats"}]}}`), 5*time.Second)
		return err
	})
	var res schemas.Result
	if err := json.Unmarshal(reply.Data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusSucceeded || !strings.Contains(string(res.Response), "sync over nats") {
		t.Fatalf("reply = %s", reply.Data)
	}

	// Bad input: a failed Result naming the field, with micro's error headers.
	reply, err := nc.Request(topology.SubjectComplete, []byte(`{"route":"chat","request":{"messages":[]}}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "400" {
		t.Errorf("error code header = %q", code)
	}
	if err := json.Unmarshal(reply.Data, &res); err != nil || res.Status != schemas.StatusFailed || !strings.Contains(res.Error.Message, "request.messages") {
		t.Errorf("reply = %s", reply.Data)
	}
}

func TestFailoverAcrossProviders(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a", Faults: mock.Faults{ErrorRate: 1, ErrorStatus: 503}}, {Name: "b"}})
	env.StartPools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := env.Client.Complete(ctx, &schemas.Job{Request: testenv.Chat("fail over")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusSucceeded || res.Provider != "b" {
		t.Fatalf("result = %+v", res)
	}
	if len(res.Attempts) != 3 || res.Attempts[0].Provider != "a" || res.Attempts[2].Provider != "b" {
		t.Fatalf("attempts = %+v", res.Attempts)
	}
}
