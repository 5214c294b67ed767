// Package natstest runs a real in-process nats-server with JetStream on a
// temp dir for tests, plus polling and measuring helpers.
package natstest

import (
	"context"
	"syscall"
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
	StoreDir  string
	configure func(*server.Options)
	addr      string
}

// Start runs a JetStream server without auth on a free loopback port, shut
// down with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith runs a JetStream server like Start after configure (if not nil)
// changed its options: auth (Authorization, Username/Password, Nkeys,
// TrustedOperators), TLS, limits. Restart applies it again.
func StartWith(t testing.TB, configure func(*server.Options)) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{StoreDir: dir, configure: configure}
	s.Server = s.run(t, "127.0.0.1:-1", true)
	s.addr = s.Addr().String()
	return s
}

func (s *Server) run(t testing.TB, listen string, jetStream bool) *server.Server {
	t.Helper()
	so, err := embedded.ServerOptions(embedded.Options{Listen: listen, StoreDir: s.StoreDir, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.configure != nil {
		s.configure(so)
	}
	so.JetStream = jetStream
	ns, err := embedded.Run(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Restart shuts the server down and starts a new one on the same port and
// store, as after a crash or a rolling restart. It also starts a server
// shut down earlier (an outage of any length).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	s.Server = s.run(t, s.addr, true)
}

// StopJetStream shuts the server down and starts it on the same port
// without JetStream: clients reconnect, but no JetStream request or pull is
// answered, as when a node is up while its JetStream is not (still
// recovering, or the stream's leader lost). Restart brings JetStream back on
// the same store.
func (s *Server) StopJetStream(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	s.Server = s.run(t, s.addr, false)
}

// Reconfigure reloads the running server with configure applied to fresh
// options (same address and store), as a config reload would: e.g. a new
// token, after which clients holding the old one are disconnected.
func (s *Server) Reconfigure(t testing.TB, configure func(*server.Options)) {
	t.Helper()
	so, err := embedded.ServerOptions(embedded.Options{Listen: s.Addr().String(), StoreDir: s.StoreDir, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(so)
	}
	if err := s.ReloadOptions(so); err != nil {
		t.Fatal(err)
	}
	s.configure = configure
}

// Connect opens a client connection closed with the test.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return s.ConnectWith(t)
}

// ConnectWith opens a client connection with extra options (credentials,
// TLS), closed with the test.
func (s *Server) ConnectWith(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return connect(t, s.ClientURL(), opts...)
}

// connect opens a client connection to url (a comma-separated list fails
// over between its servers) that reconnects forever, closed with the test.
func connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
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

// ProcessCPU is the user and system CPU time the process has used so far
// (benchmarks report CPU per job as its difference around the work).
func ProcessCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
