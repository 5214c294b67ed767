package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/switchboard-llm/switchboard"

// layers are the layers of ARCHITECTURE.md, lowest first. A package is in
// the layer of its longest listed prefix; a package under no prefix fails
// the test, so a new package must be placed on purpose.
var layers = []struct {
	name     string
	packages []string
}{
	{"base", []string{"internal/backoff", "internal/redact", "internal/supervise", "internal/kvstate",
		"internal/syncbuf", "internal/metrics", "internal/conduct", "internal/testsummary",
		"internal/archtest", "internal/wmjs", "internal/memlimit", "deploy"}},
	{"contracts", []string{"schemas", "config", "topology"}},
	{"parts", []string{"config/live", "llm", "pricing", "policy", "router", "workers/lanes", "workers/prefill",
		"workers/sim", "broker/messages", "broker/natsconn", "broker/embedded",
		"analytics/store", "analytics/stats", "analytics/chserver", "internal/loadgen"}},
	{"services", []string{"broker", "workers", "analytics/ingest"}},
	{"front doors", []string{"broker/gateway", "broker/batch", "broker/dlq", "analytics/dashboard"}},
	{"test harnesses", []string{"internal/natstest", "internal/testenv", "internal/chtest", "llm/conformance"}},
	{"commands", []string{"cmd"}},
}

// layerOf returns the layer index of a package path inside the module.
func layerOf(rel string) (int, bool) {
	best, bestLen := -1, -1
	for i, l := range layers {
		for _, p := range l.packages {
			if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > bestLen {
				best, bestLen = i, len(p)
			}
		}
	}
	return best, best >= 0
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; want the whole module", len(pkgs))
	}
	return pkgs
}

func rel(path string) (string, bool) {
	if !strings.HasPrefix(path, module+"/") {
		return "", false
	}
	return strings.TrimPrefix(path, module+"/"), true
}

// TestImportsPointDown fails when a package imports one of a higher layer,
// or when a package is in no layer. Test files may also use the test
// harnesses; nothing but cmd may import cmd.
func TestImportsPointDown(t *testing.T) {
	harnesses, _ := layerOf("internal/testenv")
	var graph []string
	for _, p := range listPackages(t) {
		from, _ := rel(p.ImportPath)
		fl, ok := layerOf(from)
		if !ok {
			t.Errorf("package %s is in no layer: add it to layers (and ARCHITECTURE.md)", from)
			continue
		}
		var deps []string
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, ok := rel(imp)
				if !ok || to == from {
					continue
				}
				tl, ok := layerOf(to)
				if !ok {
					continue // reported as its own package
				}
				if !test {
					deps = append(deps, to)
				}
				limit := fl
				if test && limit < harnesses {
					limit = harnesses
				}
				if tl > limit {
					kind := "imports"
					if test {
						kind = "tests import"
					}
					t.Errorf("%s (%s) %s %s (%s): imports must point down the layers", from, layers[fl].name, kind, to, layers[tl].name)
				}
			}
		}
		check(p.Imports, false)
		check(append(append([]string{}, p.TestImports...), p.XTestImports...), true)
		sort.Strings(deps)
		graph = append(graph, layers[fl].name+" | "+from+" -> "+strings.Join(deps, " "))
	}
	sort.Strings(graph)
	t.Logf("import graph (layer | package -> module imports):\n%s", strings.Join(graph, "\n"))
}

func TestLayerOf(t *testing.T) {
	cases := []struct {
		pkg   string
		layer string
	}{
		{"schemas", "contracts"},
		{"config/live", "parts"},
		{"llm/openai", "parts"},
		{"broker", "services"},
		{"broker/gateway", "front doors"},
		{"broker/route", "services"}, // a new broker package lands with the broker unless listed
		{"cmd/switchboard", "commands"},
	}
	for _, c := range cases {
		l, ok := layerOf(c.pkg)
		if !ok || layers[l].name != c.layer {
			t.Errorf("layerOf(%s) = %d %v, want %s", c.pkg, l, ok, c.layer)
		}
	}
	if _, ok := layerOf("nowhere/new"); ok {
		t.Error("an unlisted top-level package got a layer")
	}
}
