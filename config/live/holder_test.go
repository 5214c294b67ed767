package live_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func cfgYAML(concurrency int) string {
	return fmt.Sprintf(`
providers: [{name: a, kind: mock, concurrency: %d}]
routes: [{name: chat, targets: [{provider: a, model: m}]}]
`, concurrency)
}

const invalidYAML = `
providers: [{name: a, kind: mock}]
routes: [{name: chat, targets: [{provider: nope, model: m}]}]
`

func concurrency(h *live.Holder) int { return h.Load().Providers[0].Concurrency }

func TestHolderApply(t *testing.T) {
	first, err := config.Parse([]byte(cfgYAML(1)))
	if err != nil {
		t.Fatal(err)
	}
	h := live.NewHolder(first)
	var seen []int
	h.OnChange(func(old, cur *config.Config) {
		seen = append(seen, old.Providers[0].Concurrency, cur.Providers[0].Concurrency)
	})
	if _, err := h.Apply([]byte(cfgYAML(2)), "test"); err != nil {
		t.Fatal(err)
	}
	if concurrency(h) != 2 || fmt.Sprint(seen) != "[1 2]" {
		t.Errorf("after apply: %d, callbacks %v", concurrency(h), seen)
	}
	_, err = h.Apply([]byte(invalidYAML), "edit.yaml")
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), `edit.yaml: routes[0].targets[0].provider: unknown provider "nope"`) ||
		!strings.Contains(err.Error(), "keeping the running config") {
		t.Errorf("invalid apply: %v", err)
	}
	if concurrency(h) != 2 || len(seen) != 2 {
		t.Errorf("invalid config changed the live one: %d %v", concurrency(h), seen)
	}
}

func TestHolderSIGHUP(t *testing.T) {
	guard := make(chan os.Signal, 16) // keep SIGHUP from killing the test binary
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	first, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := live.NewHolder(first)
	ctx := natstest.Context(t)
	go h.WatchSignals(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := os.WriteFile(path, []byte(invalidYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
	if err := os.WriteFile(path, []byte(cfgYAML(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if c := concurrency(h); c != 7 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
			return fmt.Errorf("concurrency %d, want 7", c)
		}
		return nil
	})
}

func TestHolderKV(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := natstest.Context(t)
	first, _ := config.Parse([]byte(cfgYAML(1)))
	h := live.NewHolder(first)
	if _, _, err := live.Publish(ctx, js, []byte(cfgYAML(3))); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() { _ = h.WatchKV(ctx, js, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	<-ready
	if c := concurrency(h); c != 3 {
		t.Fatalf("stored config not applied at start: %d", c)
	}
	if _, _, err := live.Publish(context.Background(), js, []byte(invalidYAML)); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("publish invalid: %v", err)
	}
	// Someone bypasses Publish and stores garbage: refused, old one stays.
	kv, err := js.KeyValue(ctx, live.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, live.Key, []byte(invalidYAML)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := live.Publish(ctx, js, []byte(cfgYAML(9))); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if c := concurrency(h); c != 9 {
			return fmt.Errorf("concurrency %d, want 9", c)
		}
		return nil
	})
}
