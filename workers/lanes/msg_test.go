package lanes

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMetadataParsedOnce(t *testing.T) {
	m := &jsMsg{msg: &nats.Msg{Sub: &nats.Subscription{}, Subject: "llm.jobs.fake", Reply: "$JS.ACK.JOBS.fake_normal.3.41.17.1764709200000000000.5"}}
	first, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	want := jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 41, Consumer: 17}, NumDelivered: 3, NumPending: 5,
		Stream: "JOBS", Consumer: "fake_normal", Timestamp: first.Timestamp}
	if *first != want || first.Timestamp.UnixNano() != 1764709200000000000 {
		t.Fatalf("metadata %+v, want %+v", *first, want)
	}
	again, err := m.Metadata()
	if err != nil || again != first {
		t.Fatalf("second call: %p %v, want the first result %p", again, err, first)
	}

	bad := &jsMsg{msg: &nats.Msg{Sub: &nats.Subscription{}, Subject: "x", Reply: "_INBOX.abc"}}
	for range 2 { // a failure is not cached as a success
		if _, err := bad.Metadata(); !errors.Is(err, jetstream.ErrNotJSMessage) {
			t.Fatalf("err %v, want ErrNotJSMessage", err)
		}
	}
}
