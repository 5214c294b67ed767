package gateway_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/internal/testenv"
)

// dashStub stands in for analytics/dashboard (tested there): these tests
// are about who the gateway lets through.
var dashStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard "+r.URL.Path) })

func dashGateway(t *testing.T, extra string, getenv func(string) string, dash http.Handler) http.Handler {
	t.Helper()
	cfg := parseConfig(t, extra)
	te := testenv.StartConfig(t, cfg)
	gw, err := gateway.New(gateway.Options{Config: cfg, Conn: te.NC, JS: te.JS, Getenv: getenv, QueueDepthTTL: time.Millisecond, Dashboard: dash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw.Handler()
}

func serve(h http.Handler, method, path, remote, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func basic(pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+pass))
}

func TestDashboardOpenOnLoopbackWithoutKeys(t *testing.T) {
	h := dashGateway(t, "", nil, dashStub)
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000"} {
		for _, path := range []string{"/", "/api/overview"} {
			if w := serve(h, "GET", path, remote, ""); w.Code != http.StatusOK || w.Body.String() != "dashboard "+path {
				t.Errorf("%s from %s: %d %s", path, remote, w.Code, w.Body)
			}
		}
	}
	w := serve(h, "GET", "/api/overview", "192.0.2.7:5000", "")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin: true") {
		t.Errorf("from a remote address: %d %s, want 403 naming admin keys", w.Code, w.Body)
	}
	if w := serve(h, "GET", "/unknown", "127.0.0.1:5000", ""); w.Code != http.StatusNotFound {
		t.Errorf("other paths: %d, want the gateway's 404", w.Code)
	}
}

func TestDashboardNeedsAnAdminKey(t *testing.T) {
	keys := map[string]string{"SB_ADMIN": "admin-secret", "SB_APP": "app-secret"}
	h := dashGateway(t, `
gateway:
  api_keys:
    - {key_env: SB_ADMIN, admin: true}
    - {key_env: SB_APP, tenant: a}
`, func(k string) string { return keys[k] }, dashStub)
	const remote = "192.0.2.7:5000" // keys apply wherever the client is
	cases := []struct {
		name, auth string
		want       int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"wrong key", "Bearer nope", http.StatusUnauthorized},
		{"wrong basic password", basic("nope"), http.StatusUnauthorized},
		{"app key", "Bearer app-secret", http.StatusForbidden},
		{"app key as basic", basic("app-secret"), http.StatusForbidden},
		{"admin bearer", "Bearer admin-secret", http.StatusOK},
		{"admin basic", basic("admin-secret"), http.StatusOK},
	}
	for _, c := range cases {
		for _, path := range []string{"/", "/api/jobs"} {
			w := serve(h, "GET", path, remote, c.auth)
			if w.Code != c.want {
				t.Errorf("%s %s: %d %s, want %d", c.name, path, w.Code, w.Body, c.want)
			}
			if strings.Contains(w.Body.String(), "secret") {
				t.Errorf("%s: the answer shows a key: %s", c.name, w.Body)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: 401 without a Basic challenge (a browser could not log in)", c.name)
			}
		}
	}
	// An admin key is still a gateway key.
	if w := serve(h, "GET", "/v1/models", remote, "Bearer admin-secret"); w.Code != http.StatusOK {
		t.Errorf("admin key on /v1/models: %d", w.Code)
	}
}

func TestNoDashboardNoRoot(t *testing.T) {
	h := dashGateway(t, "", nil, nil)
	if w := serve(h, "GET", "/", "127.0.0.1:5000", ""); w.Code != http.StatusNotFound {
		t.Errorf("GET / without a dashboard: %d, want 404", w.Code)
	}
}
