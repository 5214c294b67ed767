package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
)

// ErrNoSharedConfig means KV sb_config holds no config yet (nothing pushed,
// no `up` or `gateway` started).
var ErrNoSharedConfig = errors.New("no config in kv " + Bucket + " (start `switchboard up` or `gateway`, or run `switchboard config push FILE`)")

// Load reads and validates the shared config from sb_config; it returns
// the config, its YAML and its revision.
func Load(ctx context.Context, js jetstream.JetStream) (*config.Config, []byte, uint64, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil, 0, ErrNoSharedConfig
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("kv bucket %s: %w", Bucket, err)
	}
	e, err := kv.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, 0, ErrNoSharedConfig
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read %s/%s: %w", Bucket, Key, err)
	}
	cfg, err := config.Parse(e.Value())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("kv %s/%s rev %d: %w", Bucket, Key, e.Revision(), err)
	}
	return cfg, e.Value(), e.Revision(), nil
}

// Publish validates data and stores it as the shared config unless sb_config
// already holds exactly it; it returns the revision holding data and
// whether it wrote.
func Publish(ctx context.Context, js jetstream.JetStream, data []byte) (uint64, bool, error) {
	if _, cur, rev, err := Load(ctx, js); err == nil && bytes.Equal(cur, data) {
		return rev, false, nil
	}
	if _, err := config.Parse(data); err != nil {
		return 0, false, err
	}
	kv, err := openKV(ctx, js)
	if err != nil {
		return 0, false, err
	}
	rev, err := kv.Put(ctx, Key, data)
	if err != nil {
		return 0, false, fmt.Errorf("store config: %w", err)
	}
	return rev, true, nil
}
