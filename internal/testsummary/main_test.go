package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A real `go test -json` run of a small module with a passing, a skipped
// and (optionally) a failing test.
func goTestJSON(t *testing.T, failing bool) []byte {
	t.Helper()
	dir := t.TempDir()
	src := `package x

import "testing"

func TestOK(t *testing.T) {}
func TestNeedsDB(t *testing.T) { t.Skip("db not installed (apt-get install db)") }
func TestNeedsDBToo(t *testing.T) { t.Skip("db not installed (apt-get install db)") }
`
	if failing {
		src += "func TestBad(t *testing.T) { t.Log(\"details\"); t.Fatal(\"boom\") }\n"
	}
	for name, content := range map[string]string{"go.mod": "module x\n\ngo 1.22\n", "x_test.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, _ := cmd.Output()
	return out
}

func TestSummary(t *testing.T) {
	var out bytes.Buffer
	if !run(bytes.NewReader(goTestJSON(t, false)), &out) {
		t.Fatalf("a passing run failed:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{"ok  \tx\t", "SKIPPED 2 tests", "2 × db not installed (apt-get install db) (x.TestNeedsDB, x.TestNeedsDBToo)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	if run(bytes.NewReader(goTestJSON(t, true)), &out) {
		t.Fatalf("a failing run passed:\n%s", out.String())
	}
	for _, want := range []string{"--- FAIL: TestBad", "boom", "FAIL\tx\t"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("failure output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if run(strings.NewReader(""), &out) {
		t.Error("no input passed")
	}
}
