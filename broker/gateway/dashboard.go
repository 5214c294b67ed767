package gateway

import (
	"encoding/base64"
	"net"
	"net/http"
	"strings"
)

// mountDashboard serves Options.Dashboard at GET / and under /api/, behind
// adminOnly.
func (s *Server) mountDashboard(mux *http.ServeMux) {
	if s.dash == nil {
		return
	}
	h := s.adminOnly(s.dash)
	mux.Handle("GET /{$}", h)
	mux.Handle("/api/", h)
}

// adminOnly lets through, when gateway keys are configured, only requests
// carrying a key with admin: true — as a bearer token or as the password of
// HTTP Basic auth (what a browser can send; any user name) — and, without
// keys, only requests from a loopback address.
func (s *Server) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.keys) == 0 {
			if !loopback(r.RemoteAddr) {
				writeError(w, &apiError{Status: http.StatusForbidden, Type: typeAuthentication, Code: "dashboard_forbidden",
					Message: "the dashboard is open only to loopback clients while no gateway keys are configured; configure gateway.api_keys with a key marked admin: true to open it to others"})
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		key, ok := s.authenticate(dashboardBearer(r))
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", `Basic realm="Switchboard dashboard", charset="UTF-8"`)
			writeError(w, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: "invalid_api_key",
				Message: "the dashboard needs a gateway key marked admin: true (as Authorization: Bearer KEY, or as the password of HTTP Basic auth)"})
		case !key.admin:
			writeError(w, &apiError{Status: http.StatusForbidden, Type: typeAuthentication, Code: "not_admin",
				Message: "this gateway key is not an admin key; the dashboard needs a key marked admin: true in gateway.api_keys"})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// dashboardBearer returns the Authorization header as "Bearer KEY", taking
// the key from the password of HTTP Basic auth when that is what was sent.
func dashboardBearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if enc, ok := strings.CutPrefix(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return ""
		}
		_, pass, _ := strings.Cut(string(raw), ":")
		return "Bearer " + pass
	}
	return h
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
