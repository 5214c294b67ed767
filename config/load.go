package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every config error.
var ErrInvalid = errors.New("invalid config")

// Error lists every problem found in a config, each prefixed by its key path.
type Error struct {
	Source   string
	Problems []string
}

func (e *Error) Error() string {
	prefix := "config"
	if e.Source != "" {
		prefix = e.Source
	}
	return prefix + ": " + strings.Join(e.Problems, "; ")
}

// Unwrap makes every config Error match ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Load reads, strictly decodes, defaults and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.Source = path
		}
		return nil, err
	}
	return c, nil
}

// Parse strictly decodes, defaults and validates config YAML.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: []string{yamlProblem(data, err)}}
	}
	c := &Config{}
	if len(root.Content) > 0 {
		if problems := checkNode(root.Content[0], reflect.TypeOf(c).Elem(), ""); len(problems) > 0 {
			return nil, &Error{Problems: problems}
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, &Error{Problems: []string{err.Error()}}
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlLine is the "line N: " yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^line \d+: `)

// yamlProblem describes a YAML syntax error at the line it is on. yaml.v3
// reports some errors at the line where the enclosing block starts (an
// indentation slip on line 4 of a list begun on line 1 says "line 1"), so
// the line is found again: the first line whose prefix of the document
// fails with the same error.
func yamlProblem(data []byte, err error) string {
	msg := yamlLine.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
	lines := strings.SplitAfter(string(data), "\n")
	for k := 1; k <= len(lines); k++ {
		var n yaml.Node
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n)
		if perr != nil && yamlLine.ReplaceAllString(strings.TrimPrefix(perr.Error(), "yaml: "), "") == msg {
			return fmt.Sprintf("invalid YAML at line %d (%q): %s", k, strings.TrimRight(lines[k-1], "\r\n"), msg)
		}
	}
	return "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkNode walks the YAML tree beside the Go type, reporting unknown keys and
// values that do not decode, each with its key path.
func checkNode(n *yaml.Node, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	name := path
	if name == "" {
		name = "config"
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return decodeProblem(n, t, name)
	}
	switch t.Kind() {
	case reflect.Struct:
		if t.PkgPath() == "time" { // time.Duration is int64; struct case is time.Time
			return decodeProblem(n, t, name)
		}
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return []string{fmt.Sprintf("%s: must be a mapping (line %d)", name, n.Line)}
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = f
			}
		}
		var out []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			f, ok := fields[key]
			if !ok {
				out = append(out, fmt.Sprintf("%s: unknown key (line %d)", join(path, key), n.Content[i].Line))
				continue
			}
			out = append(out, checkNode(n.Content[i+1], f.Type, join(path, key))...)
		}
		return out
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return nil
			}
			return []string{fmt.Sprintf("%s: must be a list (line %d)", name, n.Line)}
		}
		var out []string
		for i, c := range n.Content {
			out = append(out, checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", name, i))...)
		}
		return out
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return nil
			}
			return []string{fmt.Sprintf("%s: must be a mapping (line %d)", name, n.Line)}
		}
		var out []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, checkNode(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
		return out
	default:
		return decodeProblem(n, t, name)
	}
}

func decodeProblem(n *yaml.Node, t reflect.Type, path string) []string {
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
		if t.String() == "time.Duration" {
			msg = fmt.Sprintf("%q is not a duration like 30s or 2m (line %d)", n.Value, n.Line)
		}
		return []string{path + ": " + msg}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
