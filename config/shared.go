package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"

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

// Diff names the first difference between two configs as they encode
// (e.g. `providers[0].concurrency: 8 here, 16 there`), or returns "" when
// they are the same.
func Diff(here, there *Config) string {
	var a, b any
	for _, v := range []struct {
		c   *Config
		out *any
	}{{here, &a}, {there, &b}} {
		data, err := yaml.Marshal(v.c)
		if err == nil {
			err = yaml.Unmarshal(data, v.out)
		}
		if err != nil {
			return "cannot compare: " + err.Error()
		}
	}
	return diffValue("", a, b)
}

func diffValue(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if d := diffValue(p, x[k], y[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := range max(len(x), len(y)) {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(y):
				return p + ": only here"
			case i >= len(x):
				return p + ": only there"
			}
			if d := diffValue(p, x[i], y[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return fmt.Sprintf("%s: %s here, %s there", path, shortValue(a), shortValue(b))
}

// shortValue shows a scalar; a section is only named.
func shortValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "unset"
	case map[string]any, []any:
		return "a section"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}
