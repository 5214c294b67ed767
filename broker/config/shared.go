package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"
)

// ErrNoSharedConfig means KV sb_config holds no config yet (nothing pushed,
// no `up` or `gateway` started).
var ErrNoSharedConfig = errors.New("no config in kv " + ConfigBucket + " (start `switchboard up` or `gateway`, or run `switchboard config push FILE`)")

// LoadKV reads and validates the shared config from sb_config; it returns
// the config, its YAML and its revision.
func LoadKV(ctx context.Context, js jetstream.JetStream) (*Config, []byte, uint64, error) {
	kv, err := js.KeyValue(ctx, ConfigBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil, 0, ErrNoSharedConfig
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("kv bucket %s: %w", ConfigBucket, err)
	}
	e, err := kv.Get(ctx, ConfigKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, 0, ErrNoSharedConfig
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read %s/%s: %w", ConfigBucket, ConfigKey, err)
	}
	cfg, err := Parse(e.Value())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("kv %s/%s rev %d: %w", ConfigBucket, ConfigKey, e.Revision(), err)
	}
	return cfg, e.Value(), e.Revision(), nil
}

// Marshal encodes a valid config as YAML that Parse reads back to the same
// config (for a config built in code, such as up's demo or from the
// environment, to be shared).
func Marshal(c *Config) ([]byte, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if _, err := Parse(data); err != nil {
		return nil, fmt.Errorf("encoded config does not read back: %w", err)
	}
	return data, nil
}

// PublishIfChanged stores data as the shared config unless sb_config
// already holds exactly it; it returns the revision holding data and
// whether it wrote.
func PublishIfChanged(ctx context.Context, js jetstream.JetStream, data []byte) (uint64, bool, error) {
	if _, cur, rev, err := LoadKV(ctx, js); err == nil && bytes.Equal(cur, data) {
		return rev, false, nil
	}
	if _, err := Parse(data); err != nil {
		return 0, false, err
	}
	kv, err := ConfigKV(ctx, js)
	if err != nil {
		return 0, false, err
	}
	rev, err := kv.Put(ctx, ConfigKey, data)
	if err != nil {
		return 0, false, fmt.Errorf("store config: %w", err)
	}
	return rev, true, nil
}

// MarshalYAML writes OnExceed as UnmarshalYAML reads it.
func (o OnExceed) MarshalYAML() (any, error) {
	if o.Route != "" {
		return map[string]string{"route": o.Route}, nil
	}
	return "reject", nil
}

// sameConfig reports whether a and b encode to the same YAML.
func sameConfig(a, b *Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, err1 := yaml.Marshal(a)
	y, err2 := yaml.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
