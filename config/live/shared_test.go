package live_test

import (
	"errors"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// TestSharedConfigRoundTrip: the example config, encoded and stored in KV,
// reads back the same; storing it again does not write; an empty bucket is
// ErrNoSharedConfig.
func TestSharedConfigRoundTrip(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	if _, _, _, err := live.Load(ctx, js); !errors.Is(err, live.ErrNoSharedConfig) {
		t.Fatalf("empty cluster: %v, want ErrNoSharedConfig", err)
	}
	want, err := config.Load("../../deploy/switchboard.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := config.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	rev, wrote, err := live.Publish(ctx, js, data)
	if err != nil || !wrote {
		t.Fatalf("publish: rev %d, wrote %v, %v", rev, wrote, err)
	}
	got, _, gotRev, err := live.Load(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if gotRev != rev || string(again) != string(data) || len(got.Budgets) != 2 || got.Budgets[0].OnExceed.Route != "cheap" || !got.Budgets[1].OnExceed.Reject {
		t.Fatalf("read back rev %d (want %d):\n%s\nwant\n%s", gotRev, rev, again, data)
	}
	if rev2, wrote, err := live.Publish(ctx, js, data); err != nil || wrote || rev2 != rev {
		t.Fatalf("same config again: rev %d, wrote %v, %v; want rev %d unwritten", rev2, wrote, err, rev)
	}
	if _, _, err := live.Publish(ctx, js, []byte("providers: [")); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("invalid config: %v, want ErrInvalid", err)
	}
}
