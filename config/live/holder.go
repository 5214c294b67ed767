// Package live holds the running config of a process and keeps it current:
// a Holder swaps in a new config only when it parses and validates, from the
// config file on SIGHUP or from the cluster's shared copy in KV sb_config.
// This package does the I/O; package config itself is pure.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
)

// Holder holds the live config behind an atomic pointer: readers call Load
// on every use and never see a half-applied config; Apply swaps in a new
// one only if it parses and validates, otherwise the old one stays.
type Holder struct {
	cur  atomic.Pointer[config.Config]
	mu   sync.Mutex // serialises Apply and the OnChange callbacks
	subs []func(old, cur *config.Config)
}

// NewHolder returns a Holder serving cfg.
func NewHolder(cfg *config.Config) *Holder {
	h := &Holder{}
	h.cur.Store(cfg)
	return h
}

// Load returns the live config. Treat it as read-only.
func (h *Holder) Load() *config.Config { return h.cur.Load() }

// OnChange registers f, called (serially, after the swap) with the old and
// new config on every successful reload.
func (h *Holder) OnChange(f func(old, cur *config.Config)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs = append(h.subs, f)
}

// Apply parses and validates data; when valid and different from the live
// config it becomes the live config and the OnChange callbacks run. An invalid config returns an error
// (wrapping config.ErrInvalid, naming source) and changes nothing.
func (h *Holder) Apply(data []byte, source string) (*config.Config, error) {
	cfg, err := config.Parse(data)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			ce.Source = source
		}
		return nil, fmt.Errorf("reload refused, keeping the running config: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.cur.Load(); config.Equal(cur, cfg) {
		return cur, nil // e.g. the version this process published itself
	}
	old := h.cur.Swap(cfg)
	for _, f := range h.subs {
		f(old, cfg)
	}
	return cfg, nil
}

// ReloadFile applies the config file at path.
func (h *Holder) ReloadFile(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reload refused, keeping the running config: read %s: %w", path, err)
	}
	return h.Apply(data, path)
}

// WatchSignals reloads the file at path on every SIGHUP until ctx ends;
// failures are logged and the old config stays.
func (h *Holder) WatchSignals(ctx context.Context, path string, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if _, err := h.ReloadFile(path); err != nil {
				log.Error("config reload", "source", path, "err", err)
				continue
			}
			log.Info("config reloaded", "source", path)
		}
	}
}

// KV location of a config shared by every process.
const (
	// Bucket is the KV bucket holding the shared config.
	Bucket = "sb_config"
	// Key is the key of the config YAML in Bucket.
	Key = "switchboard.yaml"
)

// openKV opens (creating if needed) the shared config bucket.
func openKV(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "switchboard: shared config (YAML)", History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// WatchKV applies every new version of the shared config in sb_config
// until ctx ends (the version present at start is applied too, so a
// process started with a stale file converges). Invalid versions are
// logged and skipped; ready is closed once the current version is handled.
func (h *Holder) WatchKV(ctx context.Context, js jetstream.JetStream, log *slog.Logger, ready chan<- struct{}) error {
	kv, err := openKV(ctx, js)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, Key)
	if err != nil {
		return fmt.Errorf("watch %s: %w", Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				if ready != nil {
					close(ready)
					ready = nil
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			source := fmt.Sprintf("kv %s/%s rev %d", Bucket, Key, e.Revision())
			if _, err := h.Apply(e.Value(), source); err != nil {
				log.Error("config reload", "source", source, "err", err)
				continue
			}
			log.Info("config reloaded", "source", source)
		}
	}
}
