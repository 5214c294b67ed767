// Package embedded runs an in-process nats-server with JetStream, for
// `switchboard up` and for tests.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	// Listen is host:port for clients; port -1 picks a free one.
	Listen string
	// StoreDir holds JetStream's file store.
	StoreDir string
	// ServerName names the server (defaults to "switchboard").
	ServerName string
}

// Start runs a nats-server with JetStream and waits until it accepts clients.
func Start(opts Options) (*server.Server, error) {
	host, port := "127.0.0.1", -1
	if opts.Listen != "" {
		h, p, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", opts.Listen, err)
		}
		if h != "" {
			host = h
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", p, err)
		}
	}
	if opts.StoreDir == "" {
		return nil, errors.New("embedded nats: a store dir is required")
	}
	name := opts.ServerName
	if name == "" {
		name = "switchboard"
	}
	s, err := server.NewServer(&server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		MaxPayload: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats: not ready for connections after 10s")
	}
	return s, nil
}
