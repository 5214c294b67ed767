package config

import (
	"errors"
	"strings"
	"testing"
)

// A YAML syntax error is reported at the line it is on, not where the
// enclosing block starts.
func TestYAMLErrorNamesTheLine(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"providers:\n  - name: a\n    kind: mock\n   base_url: http://x\nroutes: []\n", `line 4 ("   base_url: http://x")`},
		{"providers:\n  - name: a\n    kind: mock\n  base_url: http://x\n", "line 4"},
		{"providers:\n  - name: a\n    kind: mock\n    base_url: http://x\n     timeout: 3s\n", "line 5"},
		{"routes: [a, b\n", "invalid YAML"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}
