package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/config"
)

// commonFlags are the flags shared by the long-running commands.
type commonFlags struct {
	config     string
	natsURL    string
	httpAddr   string
	dataDir    string
	clickhouse string
}

func (c *commonFlags) register(fs *flag.FlagSet, withHTTP, withClickHouse bool) {
	fs.StringVar(&c.config, "config", "switchboard.yaml", "config file")
	fs.StringVar(&c.natsURL, "nats", envOr("SWITCHBOARD_NATS", nats.DefaultURL), "NATS server URL")
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

// connectNATS connects with unlimited reconnects and returns a JetStream
// context; the connection drains when ctx ends.
func connectNATS(ctx context.Context, url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.Timeout(5*time.Second),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// newLogger returns the process logger (JSON to stderr when SWITCHBOARD_LOG=json).
func newLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_LOG") == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
