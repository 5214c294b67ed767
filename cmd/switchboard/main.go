// Command switchboard is the LLM failover broker: one binary for the
// all-in-one server, worker pools, the gateway, the ingester and the tools.
// This package only wires; the behaviour lives in broker, workers and
// analytics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one subcommand: it parses args and runs until ctx ends.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the explicit registry of subcommands.
var commands = map[string]command{
	"bench":   {summary: "load a gateway with chat completions beside the same provider called directly (latency, throughput)", run: runBench},
	"config":  {summary: "push a config file to the cluster (KV sb_config) or show the one there", run: runConfig},
	"dlq":     {summary: "list or replay dead-lettered jobs", run: runDLQ},
	"ingest":  {summary: "load telemetry from NATS into ClickHouse (batched, deduplicated)", run: runIngest},
	"migrate": {summary: "create or upgrade the ClickHouse schema (idempotent)", run: runMigrate},
	"stats":   {summary: "requests, success/fallback rate, latency, tokens, cost from ClickHouse", run: runStats},
	"gateway": {summary: "serve the HTTP API, the llm.complete service and the llm.submit dispatcher", run: runGateway},
	"mock":    {summary: "run the fault-injecting mock provider (OpenAI/Anthropic/Gemini shapes)", run: runMock},
	"up":      {summary: "run everything in one process (embedded NATS, gateway, workers, ingester); --demo for mock providers", run: runUp},
	"worker":  {summary: "run the worker pool of one provider (--provider NAME), or of every provider (--all)", run: runWorker},
	"submit":  {summary: "run an OpenAI Batch JSONL file through the broker (resumable)", run: runSubmit},
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage error")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		// `help up` is `up --help`; `help dlq list` is `dlq list --help`.
		args = append(append([]string{}, args[1:]...), "--help")
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:], stdout, stderr)
	var help *helpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		printHelp(stdout, help.name, help.fs)
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "switchboard %s: %v\nrun 'switchboard %s --help' for its usage\n", args[0], err, args[0])
		return exitUsage
	default:
		fmt.Fprintf(stderr, "switchboard %s: %v\n", args[0], err)
		return exitFail
	}
}

// newFlags returns a flag set whose parse errors are usage errors and whose
// -h/--help prints the command's help (see helps).
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(fs.Output(), name, fs) }
	return fs
}

// parseFlags parses args, turning flag errors into errUsage and -h/--help
// into a *helpError. Flags may come before or after positional arguments
// (`submit FILE.jsonl --out X`); "--" ends the flags. The positional
// arguments are left in fs.Args(); for a command that takes none (see
// helps) any is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// run prints the error (and the help, on stdout, when asked for it).
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return &helpError{name: commandName(fs), fs: fs}
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if len(positional) > 0 {
		if helps[commandName(fs)].noArgs {
			return fmt.Errorf("%w: unexpected argument %q (%s takes no arguments; flags start with --)", errUsage, positional[0], commandName(fs))
		}
		// Re-parse with only "--" and the positionals so fs.Args() holds them.
		_ = fs.Parse(append([]string{"--"}, positional...))
	}
	return nil
}
