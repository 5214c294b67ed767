package testenv

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/llm/mock"
)

// StartMock serves a mock provider on a free loopback port until the test
// ends. Its OpenAI base URL is URL()+"/v1".
func StartMock(t testing.TB, opts mock.Options) *mock.Server {
	t.Helper()
	srv, err := mock.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// ServeMock serves m (from mock.New) on a free loopback port until the test
// ends, calling observe (if not nil) with every request before m answers
// it, and returns the server's URL (http://127.0.0.1:PORT), to which an
// OpenAI base URL adds "/v1". It is for tests that watch the calls as they
// arrive (when, how many).
func ServeMock(t testing.TB, m *mock.Server, observe func(*http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if observe != nil {
			observe(r)
		}
		m.ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String()
}
