package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

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

// MarshalYAML writes OnExceed as UnmarshalYAML reads it.
func (o OnExceed) MarshalYAML() (any, error) {
	if o.Route != "" {
		return map[string]string{"route": o.Route}, nil
	}
	return "reject", nil
}

// Equal reports whether a and b encode to the same YAML.
func Equal(a, b *Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, err1 := yaml.Marshal(a)
	y, err2 := yaml.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
