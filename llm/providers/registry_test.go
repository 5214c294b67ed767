package providers

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
)

func TestNew(t *testing.T) {
	const secret = "sk-registry-SECRET"
	t.Setenv("SB_TEST_KEY", secret)
	tests := []struct {
		name    string
		p       config.Provider
		wantErr error
	}{
		{"openai", config.Provider{Name: "oa", Kind: "openai", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "SB_TEST_KEY"}, nil},
		{"anthropic", config.Provider{Name: "an", Kind: "anthropic", APIKeyEnv: "SB_TEST_KEY"}, nil},
		{"gemini", config.Provider{Name: "ge", Kind: "gemini", APIKeyEnv: "SB_TEST_KEY"}, nil},
		{"mock", config.Provider{Name: "m", Kind: "mock", BaseURL: "http://127.0.0.1:9", APIKeyEnv: "SB_TEST_KEY"}, nil},
		{"mock without base_url", config.Provider{Name: "m", Kind: "mock", APIKeyEnv: "SB_TEST_KEY"}, ErrBaseURLRequired},
		{"unknown kind", config.Provider{Name: "x", Kind: "cohere", APIKeyEnv: "SB_TEST_KEY"}, ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.p, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("key leaked: %v", err)
				}
				if !strings.Contains(err.Error(), tt.p.Name) {
					t.Fatalf("error %q does not name the provider", err)
				}
				return
			}
			if _, ok := c.(llm.Streamer); !ok {
				t.Fatalf("%T does not stream", c)
			}
		})
	}
}

func TestNewHTTPClient(t *testing.T) {
	hc := NewHTTPClient()
	if hc.Timeout != 0 {
		t.Fatalf("overall timeout %v; deadlines come from ctx", hc.Timeout)
	}
	tr, ok := hc.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost < 100 {
		t.Fatalf("transport %+v", hc.Transport)
	}
}
