package workers

import (
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/schemas"
)

// The logged bodies redact every key the config names (providers' and the
// gateway's) before cutting; a failed job's response is its error.
func TestBodiesRedactAndCut(t *testing.T) {
	t.Setenv("BODIES_PROVIDER_KEY", "sk-provider-0123456789")
	t.Setenv("BODIES_SECOND_KEY", "sk-second-0123456789")
	t.Setenv("BODIES_GATEWAY_KEY", "gw-key-0123456789")
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "p", APIKeyEnv: "BODIES_PROVIDER_KEY", APIKeyEnvs: []string{"BODIES_SECOND_KEY"}}},
		Gateway:   config.Gateway{APIKeys: []config.GatewayKey{{KeyEnv: "BODIES_GATEWAY_KEY"}}},
		Analytics: config.Analytics{LogBodies: true, LogBodyBytes: 120},
	}
	job := &schemas.Job{Request: []byte(`{"messages":[{"role":"user","content":"sk-provider-0123456789 sk-second-0123456789 gw-key-0123456789 ` +
		strings.Repeat("x", 200) + `"}]}`)}
	res := &schemas.Result{Status: schemas.StatusFailed, Error: &schemas.ErrorInfo{Type: "auth", Message: "bad key sk-provider-0123456789", StatusCode: 401}}
	req, resp := bodies(cfg, job, res)
	for _, body := range []string{req, resp} {
		for _, key := range []string{"sk-provider", "sk-second", "gw-key"} {
			if strings.Contains(body, key) {
				t.Errorf("body shows %s: %q", key, body)
			}
		}
	}
	if len(req) > 120 || !strings.HasSuffix(req, redact.Ellipsis) || strings.Count(req, redact.Placeholder) != 3 {
		t.Errorf("request (%d bytes) = %q, want 3 keys redacted and the rest cut to 120 bytes", len(req), req)
	}
	if resp != `{"type":"auth","message":"bad key `+redact.Placeholder+`","status_code":401}` {
		t.Errorf("response = %q, want the error with the key redacted", resp)
	}
	res = &schemas.Result{Status: schemas.StatusSucceeded, Response: []byte(`{"choices":[]}`)}
	if _, resp := bodies(cfg, job, res); resp != `{"choices":[]}` {
		t.Errorf("response = %q", resp)
	}
}
