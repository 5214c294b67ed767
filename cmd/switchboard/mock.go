package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchboard-llm/switchboard/llm/mock"
)

// runMock serves the fault-injecting mock provider until ctx ends.
func runMock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mock", stderr)
	listen := fs.String("listen", "127.0.0.1:9999", "listen address (port 0 picks a free port)")
	var f mock.Faults
	fs.Float64Var(&f.ErrorRate, "error-rate", 0, "probability 0..1 that a call fails")
	fs.IntVar(&f.ErrorStatus, "error-status", 500, "HTTP status of injected errors")
	fs.IntVar(&f.FailFirst, "fail-first", 0, "fail the first N calls, then succeed")
	fs.DurationVar(&f.RetryAfter, "retry-after", 0, "Retry-After on injected errors")
	fs.DurationVar(&f.Latency, "latency", 0, "fixed delay before every answer")
	fs.DurationVar(&f.Jitter, "jitter", 0, "random extra delay in [0, jitter)")
	fs.BoolVar(&f.Hang, "hang", false, "never answer (until the client gives up)")
	fs.BoolVar(&f.Malformed, "malformed", false, "answer 200 with broken JSON")
	fs.IntVar(&f.ErrorAfterChunks, "error-after-chunks", 0, "streams fail after N content chunks")
	fs.DurationVar(&f.TTFB, "ttfb", 0, "streams: delay before the first event")
	fs.DurationVar(&f.ChunkDelay, "chunk-delay", 0, "streams: delay between chunks")
	fs.IntVar(&f.CutAfterChunks, "cut-after-chunks", 0, "streams: drop the connection after N content chunks")
	fs.BoolVar(&f.CutWithFinish, "cut-with-finish", false, "streams: send the finish reason before the --cut-after-chunks cut")
	fs.IntVar(&f.StallAfterChunks, "stall-after-chunks", 0, "streams: go silent after N content chunks")
	fs.IntVar(&f.MalformedAfterChunks, "malformed-after-chunks", 0, "streams: one malformed event after N content chunks")
	fs.BoolVar(&f.NoDone, "no-done", false, "streams: end without [DONE] / message_stop")
	fs.BoolVar(&f.ContextLength, "context-length", false, "answer 400 with the vendor's context-length error")
	fs.BoolVar(&f.RejectPrefill, "reject-prefill", false, "answer a final assistant message (prefill) with 400")
	keyEnv := fs.String("api-key-env", "", "require the API key held in this environment variable")
	seed := fs.Uint64("seed", 0, "random seed for error-rate and jitter (0: time-based)")
	reply := fs.String("reply-prefix", "mock reply to: ", "reply text before the last user message")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	opts := mock.Options{Faults: f, Seed: *seed}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	if prefix := *reply; prefix != "mock reply to: " {
		opts.Reply = func(p string) string { return prefix + p }
	}
	if *keyEnv != "" {
		opts.APIKey = os.Getenv(*keyEnv)
		if opts.APIKey == "" {
			return fmt.Errorf("%w: --api-key-env %s: variable is empty or unset", errUsage, *keyEnv)
		}
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	srv, err := mock.Listen(*listen, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mock provider listening on %s\n", srv.URL())
	fmt.Fprintf(stdout, "  openai:    %s/v1\n  anthropic: %s\n  gemini:    %s/v1beta\n  control:   %s/_mock/{stats,faults,reset,last}\n",
		srv.URL(), srv.URL(), srv.URL(), srv.URL())
	<-ctx.Done()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	return nil
}
