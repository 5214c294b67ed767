// Package natstest runs a real in-process nats-server with JetStream on a
// temp dir for tests, plus polling helpers.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/embedded"
)

// Server is a running test server.
type Server struct {
	*server.Server
	StoreDir string
}

// Start runs a JetStream server on a free loopback port, shut down with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	s, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return &Server{Server: s, StoreDir: dir}
}

// Restart shuts the server down and starts a new one on the same port and
// store, as after a crash or a rolling restart.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	addr := s.Addr().String()
	s.Shutdown()
	s.WaitForShutdown()
	ns, err := embedded.Start(embedded.Options{Listen: addr, StoreDir: s.StoreDir})
	if err != nil {
		t.Fatal(err)
	}
	s.Server = ns
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
}

// Connect opens a client connection closed with the test.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// CheckFor polls f every interval until it returns nil or total elapses,
// then fails the test with f's last error.
func CheckFor(t testing.TB, total, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(interval)
	}
}

// Context returns a context cancelled with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
