package providers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
)

// A provider whose api_key_env is unset: the start-up check names the
// variable, and so does the auth error of every call.
func TestUnsetKeyIsNamed(t *testing.T) {
	srv, err := mock.Listen("127.0.0.1:0", mock.Options{APIKey: "right-key"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Setenv("SB_HINT_UNSET", "")
	t.Setenv("SB_HINT_WRONG", "wrong-key")
	p := config.Provider{Name: "oa", Kind: config.KindOpenAI, BaseURL: srv.URL() + "/v1", APIKeyEnv: "SB_HINT_UNSET", APIKeyEnvs: []string{"SB_HINT_WRONG"}}
	if got := UnsetKeyEnvs(p); len(got) != 1 || got[0] != "SB_HINT_UNSET" {
		t.Fatalf("UnsetKeyEnvs = %v, want [SB_HINT_UNSET]", got)
	}
	req := &llm.Request{Model: "m", Body: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)}
	c, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Complete(context.Background(), req)
	if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrAuth || !strings.Contains(pe.Message, "SB_HINT_UNSET") {
		t.Fatalf("call without a key: %v, want an auth error naming SB_HINT_UNSET", err)
	}
	s, ok := c.(llm.Streamer)
	if !ok {
		t.Fatal("the hint hid the adapter's streaming")
	}
	_, err = s.Stream(context.Background(), req, func(json.RawMessage) error { return nil })
	if pe, ok := llm.AsProviderError(err); !ok || !strings.Contains(pe.Message, "SB_HINT_UNSET") {
		t.Fatalf("stream without a key: %v", err)
	}
	// A key that is set but wrong is the provider's answer alone.
	p.APIKeyEnv = "SB_HINT_WRONG"
	c, _ = New(p, nil)
	_, err = c.Complete(context.Background(), req)
	if pe, ok := llm.AsProviderError(err); !ok || pe.Type != schemas.ErrAuth || strings.Contains(pe.Message, "not set") || strings.Contains(pe.Message, "wrong-key") {
		t.Fatalf("call with a wrong key: %v", err)
	}
}
