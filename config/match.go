package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Match is a rule condition on one metadata key: an exact value or a list of
// accepted values.
type Match []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (m *Match) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*m = Match{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Match, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: list entries must be strings", c.Line)
			}
			out = append(out, c.Value)
		}
		*m = out
		return nil
	default:
		return fmt.Errorf("line %d: must be a string or a list of strings", n.Line)
	}
}

// Matches reports whether v is one of the accepted values.
func (m Match) Matches(v string) bool {
	for _, s := range m {
		if s == v {
			return true
		}
	}
	return false
}
