package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/dlq"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/router"
)

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		return fmt.Errorf("%w: dlq needs a subcommand: list or replay", errUsage)
	case isHelpArg(args[0]):
		return &helpError{name: "dlq"}
	case args[0] == "list":
		return dlqList(ctx, args[1:], stdout, stderr)
	case args[0] == "replay":
		return dlqReplay(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown dlq subcommand %q: list or replay", errUsage, args[0])
}

// dlqList prints the dead letters, as a table or JSON lines.
func dlqList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dlq list", stderr)
	var c commonFlags
	c.register(fs, false, false)
	limit := fs.Int("limit", 100, "at most this many entries (0 = all)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	entries, err := dlq.List(ctx, js, 0, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tJOB\tROUTE\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format("2006-01-02T15:04:05Z07:00"), e.Subject, e.JobID, e.Route, e.Reason)
	}
	return tw.Flush()
}

// dlqReplay replays the named dead letters (or --all).
func dlqReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dlq replay", stderr)
	var c commonFlags
	c.register(fs, false, false)
	all := fs.Bool("all", false, "every replayable dead letter")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var seqs []uint64
	for _, a := range fs.Args() {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %q is not a sequence number", errUsage, a)
		}
		seqs = append(seqs, n)
	}
	if len(seqs) == 0 && !*all {
		return fmt.Errorf("%w: name the sequence numbers to replay, or --all", errUsage)
	}
	given, err := c.givenConfig(fs, stderr)
	if err != nil {
		return err
	}
	nc, js, err := c.connect(ctx, fs, "switchboard-dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg, err := c.sharedConfig(ctx, given, js, stderr)
	if err != nil {
		return err
	}
	prices, err := pricing.Load(cfg) // lowest-cost routing prices as billing does
	if err != nil {
		return err
	}
	client := broker.NewClient(nc.Conn, js, router.New(cfg, router.Options{Prices: prices}))
	if *all {
		entries, err := dlq.List(ctx, js, 0, 0)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.JobID != "" {
				seqs = append(seqs, e.Seq)
			}
		}
	}
	if len(seqs) == 0 {
		fmt.Fprintln(stdout, "no replayable dead letters")
		return nil
	}
	failed := 0
	for _, seq := range seqs {
		done, err := dlq.Replay(ctx, js, client, seq)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "dlq %d: %v\n", seq, err)
			continue
		}
		fmt.Fprintf(stdout, "replayed dead letter %d as %s\n", seq, done)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters not replayed", failed, len(seqs))
	}
	return nil
}
