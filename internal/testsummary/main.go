// Command testsummary reads `go test -json` on stdin and prints what
// `go test` prints without -v (a line per package, the output of failed
// tests and builds), then a summary of the tests that were skipped, grouped
// by reason, so a missing dependency is visible without -v. It exits 1
// when a test or a build failed, or when no test result arrived at all.
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

// summary accumulates the events of one run.
type summary struct {
	out      io.Writer
	output   map[key]*strings.Builder
	skipped  map[string][]string // reason -> tests
	failed   bool
	packages int
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, output: map[key]*strings.Builder{}, skipped: map[string][]string{}}
}

// location strips the "file_test.go:12: " prefix of a t.Log line.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

func (s *summary) add(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output":
		b := s.output[k]
		if b == nil {
			b = &strings.Builder{}
			s.output[k] = b
		}
		b.WriteString(e.Output)
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.failed = true
	case "fail":
		s.failed = true
		if e.Test != "" {
			fmt.Fprint(s.out, s.take(k))
			return
		}
		s.packages++
		out := s.take(k)
		fmt.Fprint(s.out, out)
		if !strings.Contains(out, "FAIL\t"+e.Package) {
			fmt.Fprintf(s.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
	case "pass":
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		s.take(k)
	case "skip":
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "?   \t%s\t[no test files]\n", e.Package)
			s.take(k)
			return
		}
		reason := s.reason(s.take(k))
		s.skipped[reason] = append(s.skipped[reason], e.Package+"."+e.Test)
	}
}

// take returns and forgets the output of a test.
func (s *summary) take(k key) string {
	b := s.output[k]
	delete(s.output, k)
	if b == nil {
		return ""
	}
	return b.String()
}

// reason is a skipped test's log without the framework's lines.
func (s *summary) reason(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		lines = append(lines, location.ReplaceAllString(l, ""))
	}
	if len(lines) == 0 {
		return "no reason given"
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// finish prints the skip summary and reports whether the run passed.
func (s *summary) finish() bool {
	if len(s.skipped) > 0 {
		reasons := make([]string, 0, len(s.skipped))
		total := 0
		for r, tests := range s.skipped {
			reasons = append(reasons, r)
			total += len(tests)
		}
		sort.Slice(reasons, func(i, j int) bool {
			a, b := s.skipped[reasons[i]], s.skipped[reasons[j]]
			if len(a) != len(b) {
				return len(a) > len(b)
			}
			return reasons[i] < reasons[j]
		})
		fmt.Fprintf(s.out, "SKIPPED %d test%s (CI=true makes a missing dependency fail):\n", total, plural(total))
		for _, r := range reasons {
			tests := s.skipped[r]
			sort.Strings(tests)
			shown := tests
			if len(shown) > 3 {
				shown = append(shown[:3:3], "...")
			}
			fmt.Fprintf(s.out, "  %3d × %s (%s)\n", len(tests), r, strings.Join(shown, ", "))
		}
	}
	if s.packages == 0 {
		fmt.Fprintln(s.out, "testsummary: no test results on stdin (did go test run with -json?)")
		return false
	}
	return !s.failed
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func run(in io.Reader, out io.Writer) bool {
	s := newSummary(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		s.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary:", err)
		return false
	}
	return s.finish()
}

func main() {
	if !run(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}
