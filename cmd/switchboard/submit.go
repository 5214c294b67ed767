package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/batch"
	"github.com/switchboard-llm/switchboard/broker/route"
)

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("submit", stderr)
	var c commonFlags
	c.register(fs, false, false)
	out := fs.String("out", "", "output file (OpenAI Batch output format); default FILE.results.jsonl")
	routeName := fs.String("route", "", "route for every line (default: each body's model)")
	batchID := fs.String("batch", "", "batch id (default: derived from the input's content, so re-runs resume)")
	tenant := fs.String("tenant", "", "tenant metadata for every job")
	noProgress := fs.Bool("no-progress", false, "never draw the progress bar")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard submit FILE.jsonl [--out results.jsonl] [--route R] [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: submit takes exactly one input file", errUsage)
	}
	input := fs.Arg(0)
	if *out == "" {
		*out = input + ".results.jsonl"
	}
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-submit")
	if err != nil {
		return err
	}
	defer nc.Close()
	opts := batch.Options{Input: input, Output: *out, Route: *routeName, BatchID: *batchID}
	if *tenant != "" {
		opts.Metadata = map[string]string{"tenant": *tenant}
	}
	if !*noProgress && term.IsTerminal(int(os.Stderr.Fd())) {
		opts.Progress = stderr
	}
	sum, err := batch.Run(ctx, broker.NewClient(nc.Conn, js, route.New(cfg)), js, opts)
	if sum != nil {
		fmt.Fprintf(stdout, "batch %s: %d lines, %d succeeded, %d failed, %d invalid, %d from an earlier run -> %s\n",
			sum.BatchID, sum.Total, sum.Succeeded, sum.Failed, sum.Invalid, sum.Resumed, *out)
	}
	return err
}
