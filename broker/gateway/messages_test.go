package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Error messages read as written: "<key>" is not sent as "\u003ckey\u003e".
func TestErrorMessagesAreNotHTMLEscaped(t *testing.T) {
	cfg := parseConfig(t, `
gateway:
  api_keys:
    - {key_env: SB_KEY_A, tenant: a}
`)
	e := newEnv(t, cfg, func(string) string { return "secret-key-a" })
	a := e.must("GET", "/v1/models", "", nil)
	if a.status != http.StatusUnauthorized {
		t.Fatalf("status %d", a.status)
	}
	if !strings.Contains(string(a.body), "Authorization: Bearer <key>") || strings.Contains(string(a.body), `\u003c`) {
		t.Errorf("401 body = %s", a.body)
	}
}
