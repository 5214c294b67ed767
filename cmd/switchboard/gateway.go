package main

import (
	"context"
	"io"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/router"
)

// runGateway serves the broker's front doors: the OpenAI-compatible HTTP API,
// the llm.complete request-reply service and the llm.submit dispatcher. Run
// as many as needed; NATS queue groups and the shared consumer spread work.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("gateway", stderr)
	var c commonFlags
	c.register(fs, true, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ln, err := listenHTTP(c.httpAddr) // an address in use fails before anything starts
	if err != nil {
		return err
	}
	defer ln.Close()
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	log := newLogger()
	nc, js, err := c.connect(ctx, fs, "switchboard-gateway")
	if err != nil {
		return err
	}
	defer nc.Drain()
	defer func() { err = nc.Cause(err) }() // a lost connection is the failure, whatever noticed it
	// Streams only: jobs queue durably even before any worker pool runs.
	if js, err = provision(ctx, js, cfg, false, log); err != nil {
		return err
	}
	// Other commands (worker, submit, dlq, ingest) read it from the cluster.
	if err := publishConfig(ctx, js, cfg, log); err != nil {
		return err
	}
	// Routes, providers and models reload on SIGHUP or from KV sb_config;
	// the gateway section (keys, limits) is read once at start.
	a := newApp(ctx, nc, log)
	defer a.close()
	policies, err := routingPolicies(a, js, cfg) // breakers, latency, budgets
	if err != nil {
		return err
	}
	holder := live.NewHolder(cfg)
	policies.Live = holder.Load // the resolver reads each reload itself
	resolver := router.New(cfg, policies)
	a.WatchConfig(js, holder, "")
	publishOnSIGHUP(a, js, holder, c.config) // the gateway publishes its file for the cluster
	dash, err := newDashboard(a, js, resolver, c.clickhouse)
	if err != nil {
		return err
	}
	defer dash.Close()
	srv, err := gateway.New(gateway.Options{Config: cfg, Resolver: resolver, Conn: nc.Conn, JS: js, Logger: log, Dashboard: dash})
	if err != nil {
		return err
	}
	client := broker.NewClient(nc.Conn, js, resolver)
	defer client.Close()
	a.Go(func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	a.Go(func(ctx context.Context) error { return broker.NewDispatcher(client, js, log).Run(ctx) })
	a.Go(func(ctx context.Context) error {
		return broker.NewService(client, log).Run(ctx)
	})
	return a.Wait()
}
