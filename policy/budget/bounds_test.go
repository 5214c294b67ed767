package budget

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// TestSpendKeysExpire: a counted job's marker expires after its TTL (it is
// a dedup marker, not a record), and every write of a counter, updates
// included, carries its TTL.
func TestSpendKeysExpire(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	tr, err := Open(ctx, js, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr.markerTTL.Store(int64(time.Second))
	now := time.Now()
	for _, id := range []string{"job-1", "job-2"} {
		if ok, err := tr.Add(ctx, id, "acme", 0.25, now); err != nil || !ok {
			t.Fatalf("add %s: %v %v", id, ok, err)
		}
	}
	if e, err := tr.kv.Get(ctx, kvstate.Key("j", "job-1")); err != nil || string(e.Value()) != markerDone {
		t.Fatalf("marker after counting: %v", err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, id := range []string{"job-1", "job-2"} {
			if _, err := tr.kv.Get(ctx, kvstate.Key("j", id)); !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("marker of %s still there (%v)", id, err)
			}
		}
		return nil
	})
	s, err := js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]time.Duration{dayKey("acme", now): dayTTL, monthKey("acme", now): monthTTL} {
		m, err := s.GetLastMsgForSubject(ctx, "$KV."+Bucket+"."+key)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("Nats-TTL"); got != want.String() && got != fmt.Sprint(int64(want.Seconds())) {
			t.Errorf("%s written (twice) with TTL %q, want %s", key, got, want)
		}
	}
	if d, _ := tr.Spent("acme", now); d != 0.5 {
		t.Errorf("spent %v, want 0.5", d)
	}
}
