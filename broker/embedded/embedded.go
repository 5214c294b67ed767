// Package embedded runs an in-process nats-server with JetStream, for
// `switchboard up` and for tests. It requires a token unless told to run
// without auth, which it only allows on a loopback address.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-llm/switchboard/broker/natsconn"
)

// Options configure the embedded server.
type Options struct {
	// Listen is host:port for clients; port -1 picks a free one. The host
	// defaults to 127.0.0.1; an empty host (":4222") means every interface.
	Listen string
	// StoreDir holds JetStream's file store.
	StoreDir string
	// ServerName names the server (defaults to "switchboard").
	ServerName string
	// Token is the secret every client must present. Required unless NoAuth.
	Token string
	// NoAuth runs the server without authentication: any process that can
	// reach it may read and publish everything. Refused unless Listen is a
	// loopback address.
	NoAuth bool
}

// Validate checks the options: a store dir, a parseable listen address,
// and a token unless NoAuth on a loopback address.
func (o Options) Validate() error {
	host, _, err := o.hostPort()
	if err != nil {
		return err
	}
	if o.StoreDir == "" {
		return ErrNoStoreDir
	}
	switch {
	case o.NoAuth && o.Token != "":
		return fmt.Errorf("embedded nats: %w", ErrTokenAndNoAuth)
	case o.NoAuth && !natsconn.IsLoopbackHost(host):
		return fmt.Errorf("embedded nats: listen address %q: %w", o.Listen, ErrNoAuthNotLoopback)
	case !o.NoAuth && o.Token == "":
		return fmt.Errorf("embedded nats: %w", ErrNoToken)
	}
	return nil
}

func (o Options) hostPort() (string, int, error) {
	if o.Listen == "" {
		return "127.0.0.1", -1, nil
	}
	h, p, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("nats listen port %q: %w", p, err)
	}
	return h, port, nil
}

// ServerOptions validates opts and returns the nats-server options for them.
func ServerOptions(opts Options) (*server.Options, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	host, port, _ := opts.hostPort()
	if host == "" {
		host = "0.0.0.0"
	}
	name := opts.ServerName
	if name == "" {
		name = "switchboard"
	}
	return &server.Options{
		ServerName:    name,
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      opts.StoreDir,
		NoSigs:        true,
		MaxPayload:    8 << 20,
		Authorization: opts.Token,
	}, nil
}

// Start runs a nats-server with JetStream and waits until it accepts clients.
func Start(opts Options) (*server.Server, error) {
	so, err := ServerOptions(opts)
	if err != nil {
		return nil, err
	}
	return Run(so)
}

// Run starts a nats-server with the given options and waits until it
// accepts clients.
func Run(so *server.Options) (*server.Server, error) {
	s, err := server.NewServer(so)
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
