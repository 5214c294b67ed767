package main

import (
	"context"
	"io"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/broker/streams"
)

// runGateway serves the OpenAI-compatible HTTP front door.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gateway", stderr)
	var c commonFlags
	c.register(fs, true, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(ctx, c.natsURL, "switchboard-gateway")
	if err != nil {
		return err
	}
	defer nc.Drain()
	// Streams only: jobs queue durably even before any worker pool runs.
	if err := streams.Ensure(ctx, js, cfg.Limits); err != nil {
		return err
	}
	srv, err := gateway.New(gateway.Options{Config: cfg, Conn: nc, JS: js, Logger: newLogger()})
	if err != nil {
		return err
	}
	return srv.Run(ctx, c.httpAddr)
}
