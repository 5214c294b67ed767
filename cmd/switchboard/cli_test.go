package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// runCLI runs the real entry point with args and returns its exit code and
// outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// flagLine is how help lists a flag: "  --name" and its value's type.
var flagLine = regexp.MustCompile(`^  --[a-z][a-z-]*( (string|int|uint|float|duration|value))?$`)

// Every command's --help (and `help CMD`) prints its own usage, flags with
// their value's type (never words taken from the usage text) and the
// variables it reads, on stdout, with exit status 0.
func TestHelpOfEveryCommand(t *testing.T) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range append(names, "dlq list", "dlq replay") {
		args := strings.Fields(name)
		code, stdout, stderr := runCLI(t, append(args, "--help")...)
		if code != exitOK || stderr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", name, code, stderr)
		}
		if !strings.HasPrefix(stdout, "usage: switchboard "+name) {
			t.Errorf("%s --help starts %q", name, firstLine(stdout))
		}
		for _, line := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(line, "  -") && !flagLine.MatchString(line) {
				t.Errorf("%s --help: flag line %q", name, line)
			}
		}
		code, viaHelp, _ := runCLI(t, append([]string{"help"}, args...)...)
		if code != exitOK || viaHelp != stdout {
			t.Errorf("help %s: exit %d, output differs from %s --help:\n%s", name, code, name, viaHelp)
		}
		if code, short, _ := runCLI(t, append(args, "-h")...); code != exitOK || short != stdout {
			t.Errorf("%s -h: exit %d, output differs from --help", name, code)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Exit codes: 0 ok, 1 failure, 2 usage error; what each case prints.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args        []string
		code        int
		stdout      []string // each must appear
		notStdout   []string
		stderr      []string
		emptyStdout bool
	}{
		{args: nil, code: exitUsage, stderr: []string{"usage: switchboard <command>"}, emptyStdout: true},
		{args: []string{"--help"}, code: exitOK, stdout: []string{"usage: switchboard <command>", "SWITCHBOARD_NATS", "SWITCHBOARD_CLICKHOUSE",
			"SWITCHBOARD_NATS_*", "SWITCHBOARD_HTTP", "SWITCHBOARD_LOG", "exit status: 0 ok, 1 failure, 2 usage error", "switchboard --version"}},
		{args: []string{"help"}, code: exitOK, stdout: []string{"usage: switchboard <command>"}},
		{args: []string{"--version"}, code: exitOK, stdout: []string{"switchboard ", " go1."}},
		{args: []string{"version"}, code: exitOK, stdout: []string{"switchboard ", " go1."}},
		{args: []string{"frobnicate"}, code: exitUsage, stderr: []string{`unknown command "frobnicate"`}, emptyStdout: true},
		{args: []string{"help", "frobnicate"}, code: exitUsage, stderr: []string{`unknown command "frobnicate"`}},
		{args: []string{"help", "up"}, code: exitOK, stdout: []string{"usage: switchboard up", "--nats-listen", "SWITCHBOARD_HTTP", "OPENAI_API_KEY"},
			notStdout: []string{"commands:", "env SWITCHBOARD_NATS)"}}, // up's --nats is the flag only
		{args: []string{"stats", "--help"}, code: exitOK, stdout: []string{"  --clickhouse string\n", "  --data-dir string\n", "SWITCHBOARD_CLICKHOUSE"},
			notStdout: []string{"-clickhouse up", "-data-dir switchboard"}},
		{args: []string{"gateway", "--help"}, code: exitOK, stdout: []string{"SWITCHBOARD_NATS ", "SWITCHBOARD_NATS_TOKEN", "SWITCHBOARD_NATS_CREDS", "SWITCHBOARD_HTTP", "SWITCHBOARD_CLICKHOUSE"}},
		{args: []string{"submit", "--help"}, code: exitOK, stdout: []string{"usage: switchboard submit FILE.jsonl", "exit status: 0 when every line succeeded; 1 when any line failed"}},
		{args: []string{"dlq"}, code: exitUsage, stderr: []string{"dlq needs a subcommand: list or replay", "switchboard dlq --help"}, emptyStdout: true},
		{args: []string{"dlq", "--help"}, code: exitOK, stdout: []string{"usage: switchboard dlq list", "switchboard dlq replay SEQ...", "subcommands:"}},
		{args: []string{"dlq", "help"}, code: exitOK, stdout: []string{"subcommands:"}},
		{args: []string{"dlq", "purge"}, code: exitUsage, stderr: []string{`unknown dlq subcommand "purge"`}},
		{args: []string{"dlq", "list", "--help"}, code: exitOK, stdout: []string{"--limit int", "--json"}, notStdout: []string{"--all"}},
		{args: []string{"dlq", "replay", "--help"}, code: exitOK, stdout: []string{"--all"}, notStdout: []string{"--limit", "--json"}},
		{args: []string{"dlq", "replay", "--data-dir", dir}, code: exitUsage, stderr: []string{"name the sequence numbers to replay, or --all"}},
		{args: []string{"dlq", "replay", "x1", "--data-dir", dir}, code: exitUsage, stderr: []string{`"x1" is not a sequence number`}},
		{args: []string{"dlq", "list", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"up", "extra-arg"}, code: exitUsage, stderr: []string{`unexpected argument "extra-arg" (up takes no arguments`, "run 'switchboard up --help'"}, emptyStdout: true},
		{args: []string{"up", "--demo", "extra-arg"}, code: exitUsage, stderr: []string{`unexpected argument "extra-arg"`}, emptyStdout: true},
		{args: []string{"gateway", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"worker", "extra", "--provider", "p"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"worker"}, code: exitUsage, stderr: []string{"give --provider NAME or --all"}},
		{args: []string{"worker", "--all", "--provider", "p"}, code: exitUsage, stderr: []string{"give --provider NAME or --all"}},
		{args: []string{"ingest", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"migrate", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"stats", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"mock", "extra"}, code: exitUsage, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"submit"}, code: exitUsage, stderr: []string{"submit takes exactly one input file"}},
		{args: []string{"submit", "a.jsonl", "b.jsonl"}, code: exitUsage, stderr: []string{"submit takes exactly one input file"}},
		{args: []string{"stats", "--bogus"}, code: exitUsage, stderr: []string{"flag provided but not defined: -bogus", "run 'switchboard stats --help'"},
			emptyStdout: true},
		{args: []string{"stats", "--by", "colour"}, code: exitUsage},
		// A failure (ClickHouse not answering) is 1.
		{args: []string{"stats", "--clickhouse", "clickhouse://127.0.0.1:1/none", "--data-dir", dir}, code: exitFail, stderr: []string{"did not answer"}},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		name := strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, tc.code, stdout, stderr)
			continue
		}
		for _, s := range tc.stdout {
			if !strings.Contains(stdout, s) {
				t.Errorf("%q: stdout lacks %q:\n%s", name, s, stdout)
			}
		}
		for _, s := range tc.notStdout {
			if strings.Contains(stdout, s) {
				t.Errorf("%q: stdout has %q:\n%s", name, s, stdout)
			}
		}
		for _, s := range tc.stderr {
			if !strings.Contains(stderr, s) {
				t.Errorf("%q: stderr lacks %q:\n%s", name, s, stderr)
			}
		}
		if tc.emptyStdout && stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", name, stdout)
		}
	}
}

// A secret in a variable that is a flag's default never shows in the help.
func TestHelpRedactsDefaultsFromTheEnvironment(t *testing.T) {
	t.Setenv("SWITCHBOARD_CLICKHOUSE", "clickhouse://u:hunter2@ch.example:9000/db")
	t.Setenv("SWITCHBOARD_NATS", "nats://s3cret-token@nats.example:4222")
	t.Setenv("SWITCHBOARD_NATS_TOKEN", "tok-abc")
	for _, name := range []string{"stats", "migrate", "ingest", "gateway", "up"} {
		code, stdout, _ := runCLI(t, name, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", name, code)
		}
		for _, secret := range []string{"hunter2", "s3cret-token", "tok-abc"} {
			if strings.Contains(stdout, secret) {
				t.Errorf("%s --help shows %q:\n%s", name, secret, stdout)
			}
		}
	}
}

// `submit` exits 1 when any line failed, saying how many and where their
// errors are; the summary line still shows on stdout.
func TestSubmitFailedLinesExitOne(t *testing.T) {
	cfg := mockConfig(t)
	dataDir := t.TempDir()
	startUp(t, cfg, dataDir)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	lines := `{"custom_id":"ok","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"hi"}]}}
{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":"hi"}}
{"custom_id":"nowhere","method":"POST","url":"/v1/chat/completions","body":{"model":"no-such-route","messages":[{"role":"user","content":"hi"}]}}
`
	if err := os.WriteFile(in, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"submit", in, "--out", out, "--config", cfg, "--data-dir", dataDir, "--no-progress"}
	code, stdout, stderr := runCLI(t, args...)
	if code != exitFail || !strings.Contains(stderr, "2 of 3 lines failed, see their errors in "+out) ||
		!strings.Contains(stdout, "3 lines, 1 succeeded") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// A re-run resumes every line, and the failures still count.
	code, stdout, stderr = runCLI(t, args...)
	if code != exitFail || !strings.Contains(stderr, "2 of 3 lines failed") || !strings.Contains(stdout, "from an earlier run") {
		t.Fatalf("re-run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// All good is 0.
	good := filepath.Join(dir, "good.jsonl")
	if err := os.WriteFile(good, []byte(strings.SplitAfter(lines, "\n")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "submit", good, "--config", cfg, "--data-dir", dataDir, "--no-progress"); code != exitOK {
		t.Fatalf("good batch: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// An address in use is reported at once, naming it, before anything is
// started or announced: up's HTTP and NATS addresses and the gateway's.
func TestAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--demo", "--data-dir", dir, "--http", addr, "--nats-listen", "127.0.0.1:-1", "--clickhouse", ""},
			"cannot listen on HTTP address " + addr + " (--http)"},
		{[]string{"up", "--demo", "--data-dir", dir, "--http", "127.0.0.1:0", "--nats-listen", addr, "--clickhouse", ""},
			"cannot listen on NATS address " + addr + " (--nats-listen)"},
		// Before connecting to NATS (nothing listens on port 1).
		{[]string{"gateway", "--nats", "nats://127.0.0.1:1", "--http", addr}, "cannot listen on HTTP address " + addr + " (--http)"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitFail || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "address already in use") ||
			!strings.Contains(stderr, "pick another address with --") {
			t.Errorf("%v: exit %d, stderr:\n%s", tc.args, code, stderr)
		}
		if stdout != "" {
			t.Errorf("%v: announced %q before failing", tc.args, stdout)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: more than the one error line:\n%s", tc.args, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !os.IsNotExist(err) {
		t.Errorf("up started the NATS server's store before failing: %v", err)
	}
}
