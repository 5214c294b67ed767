package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/topology"
)

// commonFlags are the flags shared by the long-running commands.
type commonFlags struct {
	config     string
	natsURL    string
	httpAddr   string
	dataDir    string
	clickhouse string
	natsAuth   natsAuthFlags
}

func (c *commonFlags) register(fs *flag.FlagSet, withHTTP, withClickHouse bool) {
	fs.StringVar(&c.config, "config", "switchboard.yaml", "config file")
	fs.StringVar(&c.natsURL, "nats", envOr("SWITCHBOARD_NATS", nats.DefaultURL), "NATS server URL (env SWITCHBOARD_NATS; without either, the URL a running `up` recorded under --data-dir)")
	fs.StringVar(&c.dataDir, "data-dir", ".switchboard", "data directory of a local `switchboard up` (its NATS URL and token are used when none is given)")
	c.natsAuth.register(fs)
	if withHTTP {
		fs.StringVar(&c.httpAddr, "http", envOr("SWITCHBOARD_HTTP", "127.0.0.1:8080"), "HTTP listen address")
	}
	if withClickHouse {
		fs.StringVar(&c.clickhouse, "clickhouse", os.Getenv("SWITCHBOARD_CLICKHOUSE"), "ClickHouse DSN (clickhouse://host:9000/db)")
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// loadConfig reads and validates the config file.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// natsAuthFlags are the NATS credential and TLS flags every command that
// connects to NATS takes, each also as a SWITCHBOARD_NATS_* variable.
type natsAuthFlags struct {
	creds, nkey, user, password, token, tlsCA, tlsCert, tlsKey string
}

// natsAuthFlag is one of them: flag name, variable, usage.
type natsAuthFlag struct {
	name, env, usage string
	value            func(*natsAuthFlags) *string
}

var natsAuthFlagList = []natsAuthFlag{
	{"nats-creds", "SWITCHBOARD_NATS_CREDS", "NATS user credentials file (JWT + nkey seed)", func(a *natsAuthFlags) *string { return &a.creds }},
	{"nats-nkey", "SWITCHBOARD_NATS_NKEY", "NATS nkey seed file", func(a *natsAuthFlags) *string { return &a.nkey }},
	{"nats-user", "SWITCHBOARD_NATS_USER", "NATS user (with --nats-password)", func(a *natsAuthFlags) *string { return &a.user }},
	{"nats-password", "SWITCHBOARD_NATS_PASSWORD", "NATS password (prefer the variable: flags show in ps)", func(a *natsAuthFlags) *string { return &a.password }},
	{"nats-token", "SWITCHBOARD_NATS_TOKEN", "NATS token (prefer the variable: flags show in ps)", func(a *natsAuthFlags) *string { return &a.token }},
	{"nats-tls-ca", "SWITCHBOARD_NATS_TLS_CA", "PEM CA file the NATS server's certificate must chain to (turns TLS on)", func(a *natsAuthFlags) *string { return &a.tlsCA }},
	{"nats-tls-cert", "SWITCHBOARD_NATS_TLS_CERT", "PEM client certificate for NATS (with --nats-tls-key)", func(a *natsAuthFlags) *string { return &a.tlsCert }},
	{"nats-tls-key", "SWITCHBOARD_NATS_TLS_KEY", "PEM key of --nats-tls-cert", func(a *natsAuthFlags) *string { return &a.tlsKey }},
}

// register adds the flags. Their defaults stay empty (the variables are
// read by resolve) so that -h never prints a secret.
func (a *natsAuthFlags) register(fs *flag.FlagSet) {
	for _, f := range natsAuthFlagList {
		fs.StringVar(f.value(a), f.name, "", f.usage+" (env "+f.env+")")
	}
}

// resolve fills the flags not given on the command line from the
// environment and returns the names of those that were given.
func (a *natsAuthFlags) resolve(fs *flag.FlagSet) (given []string) {
	for _, f := range natsAuthFlagList {
		if flagGiven(fs, f.name) {
			given = append(given, "--"+f.name)
			continue
		}
		*f.value(a) = os.Getenv(f.env)
	}
	return given
}

// natsOptions turns the flags (and variables) into connection options.
// With no --nats and no SWITCHBOARD_NATS it uses the URL a local `up`
// recorded under --data-dir; with no credentials at all and a loopback
// URL, the token `up` keeps there (never sent to another machine). A bad
// combination is a usage error.
func (c *commonFlags) natsOptions(fs *flag.FlagSet, name string) (natsconn.Options, error) {
	c.natsAuth.resolve(fs)
	a := c.natsAuth
	o := natsconn.Options{URL: c.natsURL, Name: name, CredsFile: a.creds, NKeyFile: a.nkey, User: a.user,
		Password: a.password, Token: a.token, TLSCA: a.tlsCA, TLSCert: a.tlsCert, TLSKey: a.tlsKey}
	if !flagGiven(fs, "nats") && os.Getenv("SWITCHBOARD_NATS") == "" {
		u, err := natsconn.ReadURL(c.dataDir)
		if err != nil {
			return o, err
		}
		if u != "" {
			o.URL = u
		}
	}
	if !o.HasAuth() && natsconn.IsLocalURL(o.URL) {
		tok, err := natsconn.ReadToken(c.dataDir)
		if err != nil {
			return o, err
		}
		o.Token = tok
	}
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	return o, nil
}

// connect connects to NATS as the flags say (see natsOptions).
func (c *commonFlags) connect(ctx context.Context, fs *flag.FlagSet, name string) (*natsconn.Conn, jetstream.JetStream, error) {
	o, err := c.natsOptions(fs, name)
	if err != nil {
		return nil, nil, err
	}
	return connectNATS(ctx, o)
}

// connectNATS connects with unlimited reconnects, logging disconnects and
// reconnects, and returns a JetStream context. Long-running commands run
// under nc.Run (or beside nc.Watch) so that a connection closed for good
// stops them (exit 1).
func connectNATS(ctx context.Context, o natsconn.Options) (*natsconn.Conn, jetstream.JetStream, error) {
	nc, err := natsconn.Connect(ctx, o, newLogger())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	// Never shrinks a replicated stream; retries publishes across a
	// cluster's leader elections. Commands with a config re-wrap it with
	// nats.replicas (provision).
	return nc, topology.Replicated(js, 1), nil
}

// newLogger returns the process logger (JSON to stderr when SWITCHBOARD_LOG=json).
func newLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_LOG") == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
