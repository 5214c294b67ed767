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
	"sort"
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
	"dlq":     {summary: "list or replay dead-lettered jobs", run: runDLQ},
	"ingest":  {summary: "load telemetry from NATS into ClickHouse (batched, deduplicated)", run: runIngest},
	"migrate": {summary: "create or upgrade the ClickHouse schema (idempotent)", run: runMigrate},
	"stats":   {summary: "requests, success/fallback rate, latency, tokens, cost from ClickHouse", run: runStats},
	"gateway": {summary: "serve the HTTP API, the llm.complete service and the llm.submit dispatcher", run: runGateway},
	"mock":    {summary: "run the fault-injecting mock provider (OpenAI/Anthropic/Gemini shapes)", run: runMock},
	"up":      {summary: "run everything in one process (embedded NATS, gateway, workers, ingester); --demo for mock providers", run: runUp},
	"worker":  {summary: "run the worker pool of one provider (--provider NAME)", run: runWorker},
	"submit":  {summary: "run an OpenAI Batch JSONL file through the broker (resumable)", run: runSubmit},
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage error")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
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
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "switchboard %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "switchboard %s: %v\n", args[0], err)
		return exitFail
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchboard <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nrun 'switchboard <command> -h' for a command's flags")
}

// newFlags returns a flag set whose parse errors are usage errors.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning flag errors into errUsage. Flags may come
// before or after positional arguments (`submit FILE.jsonl --out X`); "--"
// ends the flags. The positional arguments are left in fs.Args().
func parseFlags(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
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
		// Re-parse with only "--" and the positionals so fs.Args() holds them.
		_ = fs.Parse(append([]string{"--"}, positional...))
	}
	return nil
}
