package keys

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/llm/openai"
	"github.com/switchboard-llm/switchboard/schemas"
)

func startMock(t *testing.T, opts mock.Options) *mock.Server {
	t.Helper()
	srv, err := mock.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func adapter(srv *mock.Server, key string) llm.Completer {
	return openai.New(openai.Config{Name: "p", BaseURL: srv.URL() + "/v1", APIKey: key})
}

func call(t *testing.T, c llm.Completer) error {
	t.Helper()
	_, err := c.Complete(context.Background(), &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)})
	return err
}

func TestRotateOn429(t *testing.T) {
	limited := startMock(t, mock.Options{Faults: mock.Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: time.Minute}})
	healthy := startMock(t, mock.Options{})
	r := New("p", []llm.Completer{adapter(limited, "k1"), adapter(healthy, "k2")})
	err := call(t, r)
	pe, ok := llm.AsProviderError(err)
	if !ok || pe.Type != schemas.ErrRateLimited || !pe.Retryable || pe.RetryAfter != 0 {
		t.Fatalf("first call: %v, want a retryable 429 without Retry-After (another key is free)", err)
	}
	for i := 0; i < 4; i++ {
		if err := call(t, r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := limited.Stats().Requests; n != 1 {
		t.Errorf("rate-limited key used %d times, want 1 (resting for its Retry-After)", n)
	}
	if got := strings.Join(r.Status(), ","); got != "resting,ok" {
		t.Errorf("status = %s", got)
	}
}

func TestRevokeOn401(t *testing.T) {
	srv := startMock(t, mock.Options{APIKey: "right-secret"})
	r := New("p", []llm.Completer{adapter(srv, "wrong-secret"), adapter(srv, "right-secret")})
	err := call(t, r)
	pe, ok := llm.AsProviderError(err)
	if !ok || pe.Type != schemas.ErrAuth || !pe.Retryable {
		t.Fatalf("first call: %v, want a retryable auth error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks a key: %v", err)
	}
	for i := 0; i < 5; i++ {
		if err := call(t, r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := srv.Stats().Unauthorized; n != 1 {
		t.Errorf("revoked key used again: %d unauthorized calls", n)
	}
	// The last key revoked: the error is the plain, final auth error.
	only := New("p", []llm.Completer{adapter(srv, "wrong-secret")})
	err = call(t, only)
	if pe, ok := llm.AsProviderError(err); !ok || pe.Retryable {
		t.Errorf("single bad key: %v, want a non-retryable auth error", err)
	}
	err = call(t, only)
	if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrAuth {
		t.Errorf("no key left: %v", err)
	}
	if n := srv.Stats().Unauthorized; n != 2 {
		t.Errorf("a revoked key was called: %d unauthorized", n)
	}
}

func TestBuildFromEnv(t *testing.T) {
	srv := startMock(t, mock.Options{})
	t.Setenv("SB_K1", "a")
	t.Setenv("SB_K2", "b")
	t.Setenv("SB_K3", "a") // same key twice: used once
	var built []string
	c, err := Build(config.Provider{Name: "p", APIKeyEnv: "SB_K1", APIKeyEnvs: []string{"SB_K2", "SB_K3"}}, func(q config.Provider) (llm.Completer, error) {
		built = append(built, q.APIKey())
		return adapter(srv, q.APIKey()), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(llm.Streamer); !ok {
		t.Error("rotator over streaming adapters must stream")
	}
	if strings.Join(built, ",") != "a,b" {
		t.Errorf("built %v", built)
	}
	single, _ := Build(config.Provider{Name: "p", APIKeyEnv: "SB_K1"}, func(q config.Provider) (llm.Completer, error) { return adapter(srv, q.APIKey()), nil })
	if _, ok := single.(*Rotator); ok {
		t.Error("one key needs no rotator")
	}
}
