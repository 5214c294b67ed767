package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/batch"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/router"
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: submit takes exactly one input file", errUsage)
	}
	input := fs.Arg(0)
	if *out == "" {
		*out = input + ".results.jsonl"
	}
	given, err := c.givenConfig(fs, stderr)
	if err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-submit")
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg, err := c.sharedConfig(ctx, given, js, stderr)
	if err != nil {
		return err
	}
	opts := batch.Options{Input: input, Output: *out, Route: *routeName, BatchID: *batchID}
	if *tenant != "" {
		opts.Metadata = map[string]string{"tenant": *tenant}
	}
	if !*noProgress && term.IsTerminal(int(os.Stderr.Fd())) {
		opts.Progress = stderr
	}
	prices, err := pricing.Load(cfg) // lowest-cost routing prices as billing does
	if err != nil {
		return err
	}
	sum, err := batch.Run(ctx, broker.NewClient(nc.Conn, js, router.New(cfg, router.Options{Prices: prices})), js, opts)
	if sum != nil {
		fmt.Fprintf(stdout, "batch %s: %d lines, %d succeeded, %d failed, %d invalid, %d from an earlier run -> %s\n",
			sum.BatchID, sum.Total, sum.Succeeded, sum.Failed, sum.Invalid, sum.Resumed, *out)
	}
	if err != nil || sum == nil {
		return err
	}
	// Lines answered with an error, this run's and an earlier one's: any
	// makes the exit status 1, so scripts notice.
	if sum.ErrorLines > 0 {
		return fmt.Errorf("%d of %d lines failed, see their errors in %s", sum.ErrorLines, sum.Total, *out)
	}
	return nil
}
