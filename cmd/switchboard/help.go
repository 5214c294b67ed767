package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/switchboard-llm/switchboard/analytics/chserver"
	"github.com/switchboard-llm/switchboard/broker/natsconn"
)

// version is the release this binary was built from; `make build` sets it
// (-ldflags "-X main.version=..."). When empty, the module version and VCS
// stamp that the Go toolchain records are used.
var version = ""

// cmdHelp is what `switchboard NAME --help` says besides the flags.
type cmdHelp struct {
	usage  string   // synopsis after "switchboard "
	about  string   // what the command does
	noArgs bool     // positional arguments are a usage error
	env    []string // variables beyond those of its flags, "NAME\twhat"
	notes  string   // printed after the flags (exit codes and the like)
	// noEnv are flags whose variable this command ignores (up's --nats:
	// only the flag turns the embedded server off).
	noEnv []string
}

// logEnv is the variable every command that logs reads.
const logEnv = "SWITCHBOARD_LOG\tjson switches the logs on stderr to JSON"

// helps describes every command and dlq subcommand, keyed by flag set name.
var helps = map[string]cmdHelp{
	"up": {usage: "up [--demo] [--config FILE] [--http ADDR] [--nats-listen ADDR | --nats URL] [flags]", noArgs: true, noEnv: []string{"nats"},
		about: "Runs everything in one process: an embedded NATS server with JetStream (or the one --nats names),\n" +
			"the gateway with its OpenAI-compatible API and dashboard on --http, a worker pool per configured\n" +
			"provider and the ClickHouse ingester (a local clickhouse-server when installed, or --clickhouse).\n" +
			"Without a config file it serves the providers whose API keys are set, else the demo providers.",
		env: []string{logEnv,
			chserver.BinaryEnv + "\tthe clickhouse-server binary to run (default: clickhouse-server or clickhouse on PATH)",
			"OPENAI_API_KEY\twith no config file, serve OpenAI; likewise ANTHROPIC_API_KEY and GEMINI_API_KEY",
			"and the variables the config names: providers' api_key_env, the gateway keys' key_env"}},
	"gateway": {usage: "gateway [--config FILE] [--nats URL] [--http ADDR] [--clickhouse DSN] [flags]", noArgs: true,
		about: "Serves the HTTP API (OpenAI-compatible), the llm.complete request-reply service, the llm.submit\n" +
			"dispatcher and the dashboard (history from --clickhouse). Run as many as needed.",
		env: []string{logEnv, "and the variables the config's gateway keys name (key_env)"}},
	"worker": {usage: "worker --provider NAME | --all [--config FILE] [--nats URL] [flags]", noArgs: true,
		about: "Runs the worker pool of one provider from the config, or with --all one per provider, following\n" +
			"the cluster's config (KV sb_config): a provider added gets a pool, one removed drains, one changed\n" +
			"restarts with its new settings. Run as many as needed, on any machine.",
		env: []string{logEnv, "and the variables the providers' api_key_env name (their API keys)"}},
	"ingest": {usage: "ingest [--config FILE] [--nats URL] [--clickhouse DSN] [flags]", noArgs: true,
		about: "Loads telemetry from the NATS stream TELEMETRY into ClickHouse, batched and deduplicated.",
		env:   []string{logEnv}},
	"migrate": {usage: "migrate [--clickhouse DSN]", noArgs: true,
		about: "Creates or upgrades the ClickHouse schema (idempotent)."},
	"stats": {usage: "stats [--since 24h] [--by provider|model|route|tenant|status] [--format table|json|csv] [--clickhouse DSN]", noArgs: true,
		about: "Prints requests, success and fallback rates, latency percentiles, tokens and cost from ClickHouse."},
	"submit": {usage: "submit FILE.jsonl [--out RESULTS.jsonl] [--route R] [--tenant T] [flags]",
		about: "Runs an OpenAI Batch input file through the broker and writes the OpenAI Batch output format.\n" +
			"Re-running the same file resumes: lines already answered are kept.",
		env:   []string{logEnv},
		notes: "exit status: 0 when every line succeeded; 1 when any line failed or was invalid (each one's\nerror is in the results file) or the run stopped; 2 on a usage error."},
	"bench": {usage: "bench [--via http|submit|complete] [--gateway URL | --nats URL] [--direct URL | --mock ADDR] [--rate N] [--requests N] [--raw N] [--json]", noArgs: true,
		about: "Loads a gateway with chat completions side by side with the same provider called directly (open\n" +
			"loop at --rate per target, latency counted from each request's scheduled time; --rate 0 runs\n" +
			"flat out, each target alone) and prints requests, errors, req/s, p50/p90/p99/max and the added latency.\n" +
			"--via submit|complete drives jobs over NATS instead (llm.submit, each timed until its Result\n" +
			"arrives, or llm.complete request-reply) and first publishes --raw job-sized messages to a scratch\n" +
			"JetStream stream flat out, the server's own speed, printed beside them.",
		notes: "exit status: 0 when every request was answered with 200; 1 otherwise; 2 on a usage error."},
	"mock": {usage: "mock [--listen ADDR] [--error-rate P --error-status N --latency D --hang ...]", noArgs: true,
		about: "Serves the fault-injecting mock provider (OpenAI, Anthropic and Gemini shapes) until stopped."},
	"dlq": {usage: "dlq list [--limit N] [--json] [flags]\n       switchboard dlq replay SEQ... | --all [flags]",
		about: "Lists or replays dead-lettered jobs and telemetry (the DLQ stream).\n\n" +
			"subcommands:\n  list    print the dead letters: sequence, time, subject, job, route, reason\n" +
			"  replay  re-route jobs from their route's first target, return telemetry to the ingester\n\n" +
			"run 'switchboard dlq list --help' or 'switchboard dlq replay --help' for their flags"},
	"dlq list": {usage: "dlq list [--limit N] [--json] [flags]", noArgs: true,
		about: "Prints the dead letters, oldest first: sequence, time, subject, job, route and reason.",
		env:   []string{logEnv}},
	"dlq replay": {usage: "dlq replay SEQ... | --all [flags]",
		about: "Re-routes each dead-lettered job from its route's first target (its attempt history kept), returns\n" +
			"dead-lettered telemetry to its subject, and deletes each dead letter once it is queued again.",
		env:   []string{logEnv},
		notes: "exit status: 0 when every dead letter was replayed, 1 when any was not, 2 on a usage error."},
	"config": {usage: "config push FILE | config show [flags]",
		about: "Shares the config through the cluster (KV sb_config): push validates FILE and stores it (every\n" +
			"running process reloads it; worker, submit, dlq and ingest read it, and refuse a --config FILE that\n" +
			"differs from it); show prints it.",
		env: []string{logEnv}},
}

// flagEnv names the variable each flag falls back to.
var flagEnv = func() map[string]string {
	m := map[string]string{"nats": "SWITCHBOARD_NATS", "http": "SWITCHBOARD_HTTP", "clickhouse": "SWITCHBOARD_CLICKHOUSE"}
	for _, f := range natsAuthFlagList {
		m[f.name] = f.env
	}
	return m
}()

// helpError is what parseFlags returns for -h/--help: run prints the help
// of the command the flag set (or, for dlq, the name) belongs to, on stdout.
type helpError struct {
	name string
	fs   *flag.FlagSet // nil for a command without flags of its own (dlq)
}

func (e *helpError) Error() string { return "help requested" }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// commandName is the name a flag set of newFlags was given ("up", "dlq list").
func commandName(fs *flag.FlagSet) string { return strings.TrimPrefix(fs.Name(), "switchboard ") }

// isHelpArg reports whether arg asks for help.
func isHelpArg(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// printHelp writes a command's help: synopsis, what it does, its flags (each
// with the variable it falls back to), the other variables it reads and its
// notes.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	h := helps[name]
	synopsis := h.usage
	if synopsis == "" {
		synopsis = name + " [flags]"
	}
	fmt.Fprintf(w, "usage: switchboard %s\n", synopsis)
	if h.about != "" {
		fmt.Fprintf(w, "\n%s\n", h.about)
	}
	var env []string
	if fs != nil {
		fmt.Fprintln(w, "\nflags:")
		fs.VisitAll(func(f *flag.Flag) {
			v := flagEnv[f.Name]
			if slices.Contains(h.noEnv, f.Name) {
				v = ""
			}
			printFlag(w, f, v)
			if v != "" {
				env = append(env, v+"\t--"+f.Name)
			}
		})
	}
	env = append(env, h.env...)
	if len(env) > 0 {
		fmt.Fprintln(w, "\nenvironment (a flag given wins over its variable):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range env {
			fmt.Fprintf(tw, "  %s\n", e)
		}
		_ = tw.Flush()
	}
	if h.notes != "" {
		fmt.Fprintf(w, "\n%s\n", h.notes)
	}
}

// printFlag writes one flag as "  --name TYPE" and its usage, its default
// and env, the variable it falls back to. Unlike flag.PrintDefaults, backquotes in the usage are
// text (flag would take `up --data-dir` for the value's name), and URLs in
// defaults have their user information redacted (a default can come from a
// variable holding a password).
func printFlag(w io.Writer, f *flag.Flag, env string) {
	plain := *f
	plain.Usage = strings.ReplaceAll(f.Usage, "`", "")
	typ, _ := flag.UnquoteUsage(&plain)
	line := "  --" + f.Name
	if typ != "" {
		line += " " + typ
	}
	usage := f.Usage
	switch f.DefValue {
	case "", "0", "0s", "false":
	default:
		def := f.DefValue
		if strings.Contains(def, "://") {
			def = natsconn.RedactURL(def)
		}
		if typ == "string" {
			def = strconv.Quote(def)
		}
		usage += " (default " + def + ")"
	}
	if env != "" && !strings.Contains(usage, env) {
		usage += " (env " + env + ")"
	}
	fmt.Fprintf(w, "%s\n      %s\n", line, strings.ReplaceAll(usage, "\n", "\n      "))
}

// usage writes the top-level help.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchboard <command> [flags]\n       switchboard help <command>\n       switchboard --version\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(w, `
environment (a flag given wins over its variable):
  SWITCHBOARD_NATS        --nats: NATS server URL (not up's: it runs its own server unless --nats is given)
  SWITCHBOARD_NATS_*      the NATS credential and TLS flags (CREDS, NKEY, USER, PASSWORD, TOKEN, TLS_CA, TLS_CERT, TLS_KEY)
  SWITCHBOARD_HTTP        --http: the HTTP listen address of up and gateway
  SWITCHBOARD_CLICKHOUSE  --clickhouse: ClickHouse DSN
  SWITCHBOARD_LOG         json switches the logs on stderr to JSON

exit status: 0 ok, 1 failure, 2 usage error

run 'switchboard <command> --help' (or 'switchboard help <command>') for a command's flags
`)
}

// versionString says which build this is: the release (or module version),
// the commit and its time when the toolchain recorded them, and Go's version.
func versionString() string {
	v := version
	var rev, when string
	modified := false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	var extra []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		extra = append(extra, "commit "+rev)
	}
	if when != "" {
		extra = append(extra, when)
	}
	if modified {
		extra = append(extra, "modified")
	}
	s := "switchboard " + v
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s + " " + runtime.Version()
}
