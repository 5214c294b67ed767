package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/broker/embedded"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/router"
)

// runUp runs everything in one process: embedded NATS with JetStream (or an
// external server with --nats), the gateway, the dispatcher, the llm.complete
// service, a worker pool per provider and the ClickHouse ingester.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fset := newFlags("up", stderr)
	var c commonFlags
	c.register(fset, true, true)
	natsListen := fset.String("nats-listen", "127.0.0.1:4222", "embedded NATS listen address (ignored with --nats)")
	natsNoAuth := fset.Bool("nats-no-auth", false, "run the embedded NATS server without its token (only on a loopback --nats-listen)")
	fset.Lookup("nats").Usage = "external NATS server URL, instead of the embedded server"
	fset.Lookup("data-dir").Usage = "data directory (JetStream store, the embedded NATS server's token and URL, managed ClickHouse)"
	demo := fset.Bool("demo", false, "run built-in mock providers (flaky, slow, healthy) instead of real ones")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	// Addresses in use fail here, before anything starts or is announced.
	httpLn, err := listenHTTP(c.httpAddr)
	if err != nil {
		return err
	}
	defer httpLn.Close()
	c.httpAddr = httpLn.Addr().String() // the port, when --http asked for port 0
	if !flagGiven(fset, "nats") {
		if err := checkNATSListen(*natsListen); err != nil {
			return err
		}
	}
	log := newLogger()
	tuneGC() // up runs the ingester
	cfg, stopDemo, err := upConfig(c.config, *demo, flagGiven(fset, "config"), stdout)
	if err != nil {
		return err
	}
	if stopDemo != nil {
		defer stopDemo()
	}

	natsURL := natsconn.RedactURL(c.natsURL) // printed below
	var nopts natsconn.Options
	if flagGiven(fset, "nats") {
		if nopts, err = c.natsOptions(fset, "switchboard-up"); err != nil {
			return err
		}
	} else {
		if cfg.NATS.Replicas > 1 {
			return fmt.Errorf("%w: nats.replicas is %d, but the embedded NATS server is one node: use 1, or a cluster with --nats", errUsage, cfg.NATS.Replicas)
		}
		var stopNATS func()
		nopts, stopNATS, err = startEmbeddedNATS(fset, &c, *natsListen, *natsNoAuth, stdout, log)
		if err != nil {
			return err
		}
		defer stopNATS()
		natsURL = nopts.URL
	}
	nc, js, err := connectNATS(ctx, nopts)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = nc.Cause(err) }() // a lost connection is the failure, whatever noticed it
	if js, err = provision(ctx, js, cfg, true, log); err != nil {
		return err
	}
	// Other commands (worker, submit, dlq, ingest) read it from the cluster.
	if err := publishConfig(ctx, js, cfg, log); err != nil {
		return err
	}

	// Components stop on SIGTERM (ctx); the shared state they watch lives
	// until they all have.
	a := newApp(ctx, nc, log)
	tuneMemory(a)
	defer a.close()
	opts, err := routingPolicies(a, js, cfg)
	if err != nil {
		return err
	}
	// Routes, retries, breakers and limits reload on SIGHUP or from KV
	// sb_config; an invalid config is refused and the running one stays.
	holder := live.NewHolder(cfg)
	opts.Live = holder.Load // the resolver reads each reload itself
	resolver := router.New(cfg, opts)
	client := broker.NewClient(nc.Conn, js, resolver)
	defer client.Close()
	dash, err := newDashboard(a, js, resolver, c.clickhouse)
	if err != nil {
		return err
	}
	defer dash.Close()
	// One pool per provider, following reloads (added, removed, changed).
	// The pools answer the gateway's waiting requests in process (the
	// gateway is made below, before the fleet runs).
	var gw *gateway.Server
	fleet := newFleet(a, nc.Conn, js, holder, func(subject string, data []byte) bool {
		return gw.DeliverReply(subject, data)
	}, log)
	an, err := startAnalytics(a.stateCtx, cfg, js, c.clickhouse, c.dataDir, log)
	if err != nil {
		return err
	}
	defer an.Close()
	// One /metrics for the whole process: the gateway's, the pools' and
	// the ingester's.
	collectors := []prometheus.Collector{fleet.Collector()}
	if an.Ingester != nil {
		collectors = append(collectors, an.Ingester.Collector())
	}
	gw, err = gateway.New(gateway.Options{Config: cfg, Resolver: resolver, Conn: nc.Conn, JS: js, Logger: log, Dashboard: dash, Collectors: collectors})
	if err != nil {
		return err
	}
	dash.SetDSN(an.DSN)
	if an.Server != nil {
		// `switchboard stats` run beside `up` finds the managed server here.
		dsnFile := managedDSNFile(c.dataDir)
		if err := os.WriteFile(dsnFile, []byte(an.DSN+"\n"), 0o600); err != nil {
			log.Warn("analytics: could not record the managed ClickHouse DSN", "file", dsnFile, "err", err)
		}
		defer os.Remove(dsnFile)
	}

	holder.OnChange(func(_, cur *config.Config) { fleet.Apply(cur) })
	configFile := c.config
	if *demo || stopDemo != nil {
		configFile = "" // the demo config has no file to reload
	}
	a.WatchConfig(js, holder, "")
	publishOnSIGHUP(a, js, holder, configFile) // up publishes its file for the cluster

	a.Go(func(ctx context.Context) error { return gw.Serve(ctx, httpLn) })
	a.Go(func(ctx context.Context) error { return broker.NewDispatcher(client, js, log).Run(ctx) })
	a.Go(func(ctx context.Context) error {
		return broker.NewService(client, log).Run(ctx)
	})
	a.Go(func(ctx context.Context) error { return fleet.Run(ctx, cfg) })
	a.Go(an.Run)

	fmt.Fprintf(stdout, "switchboard is up: OpenAI-compatible API at http://%s/v1 (routes: %v), NATS at %s\n", c.httpAddr, routeNames(cfg), natsURL)
	fmt.Fprintf(stdout, "dashboard: http://%s/\n", c.httpAddr)
	if an.DSN != "" {
		fmt.Fprintf(stdout, "analytics: ClickHouse at %s (try: switchboard stats --clickhouse %s)\n", an.DSN, an.DSN)
	}
	fmt.Fprintf(stdout, "try: curl -s http://%s/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'\n", c.httpAddr, cfg.DefaultRoute)
	return a.Wait()
}

// startEmbeddedNATS starts the embedded server under --data-dir: with the
// token kept in <data-dir>/nats.token (made on first start, mode 0600), or
// without auth when --nats-no-auth is given on a loopback --nats-listen. It
// records the client URL in <data-dir>/nats.url for the other commands and
// returns the options up's own components connect with: in process, over
// an in-memory pipe, with the same token.
func startEmbeddedNATS(fset *flag.FlagSet, c *commonFlags, listen string, noAuth bool, stdout io.Writer, log *slog.Logger) (natsconn.Options, func(), error) {
	if given := c.natsAuth.resolve(fset); len(given) > 0 {
		return natsconn.Options{}, nil, fmt.Errorf("%w: %s apply to an external server (--nats URL); the embedded server's token is %s",
			errUsage, strings.Join(given, ", "), natsconn.TokenFile(c.dataDir))
	}
	eo := embedded.Options{Listen: listen, StoreDir: filepath.Join(c.dataDir, "jetstream"), NoAuth: noAuth}
	if !noAuth {
		tok, err := natsconn.EnsureToken(c.dataDir)
		if err != nil {
			return natsconn.Options{}, nil, err
		}
		eo.Token = tok
	}
	if err := eo.Validate(); err != nil {
		if errors.Is(err, embedded.ErrNoAuthNotLoopback) {
			return natsconn.Options{}, nil, fmt.Errorf("%w: --nats-no-auth with --nats-listen %s: %v; drop --nats-no-auth (clients then use the token in %s)",
				errUsage, listen, embedded.ErrNoAuthNotLoopback, natsconn.TokenFile(c.dataDir))
		}
		return natsconn.Options{}, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	ns, err := embedded.Start(eo)
	if err != nil {
		return natsconn.Options{}, nil, err
	}
	url := ns.ClientURL()
	urlFile := natsconn.URLFile(c.dataDir)
	if err := natsconn.WriteURL(c.dataDir, url); err != nil {
		log.Warn("could not record the embedded NATS URL", "file", urlFile, "err", err)
	}
	stop := func() {
		os.Remove(urlFile)
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	log.Info("embedded NATS with JetStream", "url", url, "store", eo.StoreDir, "auth", !noAuth)
	if noAuth {
		fmt.Fprintf(stdout, "NATS at %s has no auth (--nats-no-auth): any local process can read and publish everything\n", url)
		return natsconn.Options{URL: url, Name: "switchboard-up", InProcess: ns}, stop, nil
	}
	if host, _, _ := net.SplitHostPort(listen); !natsconn.IsLoopbackHost(host) {
		log.Warn("the embedded NATS server is reachable from the network without TLS: its token and traffic travel in clear; use an external NATS server with TLS (--nats, --nats-tls-*) across machines", "listen", listen)
	}
	fmt.Fprintf(stdout, "NATS at %s requires the token in %s: switchboard commands run with --data-dir %s use it by themselves; "+
		"elsewhere pass --nats-token or SWITCHBOARD_NATS_TOKEN (nats CLI: nats -s \"nats://$(cat %s)@%s\" ...)\n",
		url, natsconn.TokenFile(c.dataDir), c.dataDir, natsconn.TokenFile(c.dataDir), strings.TrimPrefix(url, "nats://"))
	return natsconn.Options{URL: url, Name: "switchboard-up", Token: eo.Token, InProcess: ns}, stop, nil
}

// upConfig picks the config: --demo, else the config file (required to exist
// when --config is given), else the providers whose API keys are in the
// environment, else the demo.
func upConfig(path string, demo, explicit bool, stdout io.Writer) (*config.Config, func(), error) {
	if !demo {
		if _, err := os.Stat(path); err == nil || explicit {
			cfg, err := loadConfig(path)
			return cfg, nil, err
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		cfg, err := configFromEnv()
		if err != nil {
			return nil, nil, err
		}
		if cfg != nil {
			fmt.Fprintf(stdout, "no %s: serving route \"chat\" over the providers whose API keys are set (%v)\n", path, providerNames(cfg))
			return cfg, nil, nil
		}
		fmt.Fprintf(stdout, "no %s and no provider API keys set: running the demo providers (flaky, slow, healthy)\n", path)
	}
	return startDemo()
}

func routeNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		names = append(names, r.Name)
	}
	return names
}

// managedDSNFile is where `up` records the DSN of the ClickHouse it manages.
func managedDSNFile(dataDir string) string { return filepath.Join(dataDir, "clickhouse.dsn") }
