package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

func TestMetricsBehindKeys(t *testing.T) {
	keys := map[string]string{"SB_KEY_A": "secret-key-a"}
	getenv := func(k string) string { return keys[k] }
	const withKeys = "gateway:\n  api_keys: [{key_env: SB_KEY_A, tenant: a}]\n"

	e := newEnv(t, parseConfig(t, withKeys), getenv)
	for name, auth := range map[string]string{"no key": "", "wrong key": "Bearer nope"} {
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		a := e.must("GET", "/metrics", "", h)
		if a.status != http.StatusUnauthorized {
			t.Errorf("%s: /metrics answered %d, want 401 (keys are configured): %.200s", name, a.status, a.body)
		}
	}
	a := e.must("GET", "/metrics", "", map[string]string{"Authorization": "Bearer secret-key-a"})
	if a.status != http.StatusOK || !strings.Contains(string(a.body), "switchboard_gateway_in_flight") {
		t.Errorf("/metrics with a good key: %d %.200s", a.status, a.body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if a := e.must("GET", path, "", nil); a.status != http.StatusOK {
			t.Errorf("%s without a key: %d, want 200 (probes stay open)", path, a.status)
		}
	}

	pub := newEnv(t, parseConfig(t, withKeys+"  public_metrics: true\n"), getenv)
	if a := pub.must("GET", "/metrics", "", nil); a.status != http.StatusOK {
		t.Errorf("public_metrics: /metrics without a key answered %d, want 200", a.status)
	}
	if a := pub.must("GET", "/v1/models", "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("public_metrics: /v1/models without a key answered %d, want 401", a.status)
	}
}

func TestHealthzWhenNATSClosed(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	if a := e.must("GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Fatalf("healthz while connected: %d %s", a.status, a.body)
	}
	e.nc.Close()
	a := e.must("GET", "/healthz", "", nil)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "closed") {
		t.Errorf("healthz with the NATS connection closed: %d %s, want 503 naming the closed connection", a.status, a.body)
	}
	if a := e.must("GET", "/readyz", "", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("readyz with the NATS connection closed: %d %s", a.status, a.body)
	}
}

// The server itself can close a connection for good: a control line over
// its 4 KiB limit gets "-ERR maximum control line exceeded", and nats.go
// closes the connection instead of reconnecting.
func TestHealthzWhenServerClosesTheConnection(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	if a := e.must("GET", "/healthz", "", nil); a.status != http.StatusOK {
		t.Fatalf("healthz while connected: %d %s", a.status, a.body)
	}
	_ = e.nc.Publish(strings.Repeat("s", 5000), nil)
	_ = e.nc.Flush()
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !e.nc.IsClosed() {
			return fmt.Errorf("connection %s", e.nc.Status())
		}
		return nil
	})
	if a := e.must("GET", "/healthz", "", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("healthz after the server closed the connection: %d %s, want 503", a.status, a.body)
	}
}

// countingListener counts, per accepted connection, the bytes the server
// has read from it.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := new(atomic.Int64)
	l.mu.Lock()
	l.conns = append(l.conns, n)
	l.mu.Unlock()
	return &countingConn{Conn: c, n: n}, nil
}

// readPast is how many connections the server has read more than n bytes of.
func (l *countingListener) readPast(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := 0
	for _, c := range l.conns {
		if c.Load() > int64(n) {
			k++
		}
	}
	return k
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// serveGateway serves a gateway of e's config over real HTTP on loopback
// (not httptest: the server's own read timeouts are under test).
func serveGateway(t *testing.T, e *env) (addr string, ln *countingListener) {
	t.Helper()
	gw, err := gateway.New(gateway.Options{Config: e.cfg, Conn: e.nc, JS: e.js, ShutdownGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln = &countingListener{Listener: listen(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), ln
}

// trickler is a client sending its request one byte at a time.
type trickler struct {
	conn     net.Conn
	start    time.Time
	closed   chan struct{}
	closedAt time.Time
	answer   strings.Builder
}

// trickle connects to addr, sends head at once, then one byte of filler
// every 10ms until the server closes the connection or the test ends.
func trickle(t *testing.T, addr, head string, filler byte) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trickler{conn: conn, start: time.Now(), closed: make(chan struct{})}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); conn.Close(); <-tr.closed })
	go func() {
		_, _ = io.Copy(&tr.answer, conn)
		tr.closedAt = time.Now()
		close(tr.closed)
	}()
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tr.closed:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{filler}); err != nil {
					return
				}
			}
		}
	}()
	return tr
}

func (tr *trickler) isClosed() bool {
	select {
	case <-tr.closed:
		return true
	default:
		return false
	}
}

// slowBodyHead is a chat request whose 100,000-byte body is still to come.
func slowBodyHead(host string) string {
	return "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
}

// chatOK sends one normal chat completion and wants 200.
func chatOK(t *testing.T, addr string) {
	t.Helper()
	req, err := http.NewRequestWithContext(natstest.Context(t), "POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(hello))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a normal request among slow clients answered %d, want 200: %s", resp.StatusCode, b)
	}
}

// waitClosed polls until every trickler's connection is closed by the
// server, and returns the longest time one stayed open.
func waitClosed(t *testing.T, trs []*trickler, within time.Duration) time.Duration {
	t.Helper()
	natstest.CheckFor(t, within, 20*time.Millisecond, func() error {
		open := 0
		for _, tr := range trs {
			if !tr.isClosed() {
				open++
			}
		}
		if open > 0 {
			return fmt.Errorf("%d of %d slow connections still open", open, len(trs))
		}
		return nil
	})
	var longest time.Duration
	for _, tr := range trs {
		longest = max(longest, tr.closedAt.Sub(tr.start))
	}
	return longest
}

const slowClients = 8

// Slow bodies are read before the request takes an in-flight slot: with
// max_in_flight 2 and 8 clients stuck sending bodies, a normal request is
// served, not 429.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	backend := startMock(t, mock.Options{})
	cfg := stackConfig(t, backend, backend, "gateway: {max_in_flight: 2, read_body_timeout: 1m}\n")
	e := newEnv(t, cfg, nil)
	e.startPools()
	addr, ln := serveGateway(t, e)

	head := slowBodyHead(addr)
	var trs []*trickler
	for range slowClients {
		trs = append(trs, trickle(t, addr, head, ' '))
	}
	// Every slow request is in its handler: the server has read its headers
	// and some of its body.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := ln.readPast(len(head) + 1); n < slowClients {
			return fmt.Errorf("server reading the body of %d of %d slow requests", n, slowClients)
		}
		return nil
	})
	for range 3 {
		chatOK(t, addr)
	}
	for i, tr := range trs {
		if tr.isClosed() {
			t.Fatalf("slow client %d was closed before the normal requests were served (%q)", i, tr.answer.String())
		}
	}
}

// A client sending its body a byte at a time is answered 408 and
// disconnected once gateway.read_body_timeout passes.
func TestSlowBodiesAreCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	backend := startMock(t, mock.Options{})
	cfg := stackConfig(t, backend, backend, fmt.Sprintf("gateway: {max_in_flight: 2, read_body_timeout: %s}\n", timeout))
	e := newEnv(t, cfg, nil)
	e.startPools()
	addr, _ := serveGateway(t, e)

	var trs []*trickler
	for range slowClients {
		trs = append(trs, trickle(t, addr, slowBodyHead(addr), ' '))
	}
	chatOK(t, addr)
	longest := waitClosed(t, trs, 5*time.Second)
	t.Logf("read_body_timeout %s: %d slow-body connections closed, the last after %s", timeout, len(trs), longest)
	for i, tr := range trs {
		if open := tr.closedAt.Sub(tr.start); open < timeout*9/10 { // the server's clock starts a hair after ours
			t.Errorf("slow client %d cut after %s, before read_body_timeout %s", i, open, timeout)
		}
		status, err := bufio.NewReader(strings.NewReader(tr.answer.String())).ReadString('\n')
		if err != nil || !strings.Contains(status, "408") {
			t.Errorf("slow client %d: answer %q, want a 408 status line", i, tr.answer.String())
		}
	}
	chatOK(t, addr)
}

// A client sending its headers a byte at a time is disconnected once
// gateway.read_header_timeout passes, and never holds a slot.
func TestSlowHeadersAreCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	backend := startMock(t, mock.Options{})
	cfg := stackConfig(t, backend, backend, fmt.Sprintf("gateway: {max_in_flight: 2, read_header_timeout: %s}\n", timeout))
	e := newEnv(t, cfg, nil)
	e.startPools()
	addr, _ := serveGateway(t, e)

	var trs []*trickler
	for range slowClients {
		trs = append(trs, trickle(t, addr, "POST /v1/chat/completions HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: ", 'a'))
	}
	chatOK(t, addr)
	longest := waitClosed(t, trs, 5*time.Second)
	t.Logf("read_header_timeout %s: %d slow-header connections closed, the last after %s", timeout, len(trs), longest)
	for i, tr := range trs {
		if open := tr.closedAt.Sub(tr.start); open < timeout*9/10 { // the server's clock starts a hair after ours
			t.Errorf("slow client %d cut after %s, before read_header_timeout %s", i, open, timeout)
		}
	}
	chatOK(t, addr)
}
