package workers

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// awaitConfirmed returns each message's confirmation in order, whether it
// had come before the call (no timer) or comes during it; a publish that
// failed is sent again and its error named.
func TestAwaitConfirmed(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	send := func(subjects ...string) ([]*nats.Msg, []jetstream.PubAckFuture) {
		msgs := make([]*nats.Msg, len(subjects))
		futs := make([]jetstream.PubAckFuture, len(subjects))
		for i, s := range subjects {
			msgs[i] = &nats.Msg{Subject: s, Data: []byte(s)}
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: s, Data: []byte(s)})
			if err != nil {
				t.Fatal(err)
			}
			futs[i] = f
		}
		return msgs, futs
	}

	// Confirmed before the call, and confirmed during it.
	msgs, futs := send("t.a", "t.b", "t.c")
	<-js.PublishAsyncComplete()
	later, laterFuts := send("t.d", "t.e")
	msgs, futs = append(msgs, later...), append(futs, laterFuts...)
	acks, err := awaitConfirmed(js, msgs, futs, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, ack := range acks {
		if ack == nil || ack.Stream != "T" || ack.Sequence != uint64(i+1) {
			t.Fatalf("ack %d: %+v, want stream T sequence %d", i, ack, i+1)
		}
	}

	// A future that failed (no stream takes the subject) is published
	// again, and that error is returned naming the subject.
	msgs, futs = send("t.f", "nostream.x")
	_, err = awaitConfirmed(js, msgs, futs, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "publish to nostream.x") {
		t.Fatalf("err %v, want the unstored publish named", err)
	}

	// A missing future (the async publish was refused) is published now.
	msgs = []*nats.Msg{{Subject: "t.g", Data: []byte("g")}}
	acks, err = awaitConfirmed(js, msgs, []jetstream.PubAckFuture{nil}, 5*time.Second)
	if err != nil || acks[0] == nil || acks[0].Sequence != 7 {
		t.Fatalf("acks %v err %v, want t.g stored as sequence 7", acks, err)
	}
	info, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 7 {
		t.Fatalf("stream holds %d messages, want 7 (nothing sent twice)", n)
	}
}
