package config

import (
	"strings"
	"testing"
	"time"
)

func TestConductKeys(t *testing.T) {
	c, err := Parse([]byte(`
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", stream_idle_timeout: 5s, retry_on: [rate_limited]}
  - {name: an, kind: anthropic}
models:
  - {provider: oa, name: mistral-like, prefill: true}
  - {provider: an, name: claude-opus-4, prefill: false}
routes:
  - name: chat
    targets: [{provider: oa, model: gpt-4o}, {provider: an, model: claude}]
    stream_idle_timeout: 2s
    retry_on: [timeout, server_error]
  - name: plain
    targets: [{provider: oa, model: gpt-4o}]
`))
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := c.Route("chat")
	plain, _ := c.Route("plain")
	oa, _ := c.Provider("oa")
	an, _ := c.Provider("an")
	if got := StreamIdle(chat, oa); got != 2*time.Second {
		t.Errorf("route idle %s, want 2s", got)
	}
	if got := StreamIdle(plain, oa); got != 5*time.Second {
		t.Errorf("provider idle %s, want 5s", got)
	}
	if got := StreamIdle(plain, an); got != DefaultStreamIdleTimeout {
		t.Errorf("default idle %s", got)
	}
	if got := strings.Join(RetryOnFor(chat, oa), ","); got != "timeout,server_error" {
		t.Errorf("route retry_on %s", got)
	}
	if got := strings.Join(RetryOnFor(plain, oa), ","); got != "rate_limited" {
		t.Errorf("provider retry_on %s", got)
	}
	if got := strings.Join(RetryOnFor(nil, an), ","); got != strings.Join(DefaultRetryOn, ",") || strings.Contains(got, "timeout") {
		t.Errorf("default retry_on %s (a timeout must not be retried by default)", got)
	}
	for _, tc := range []struct {
		provider, model string
		want, explicit  bool
	}{
		{"oa", "mistral-like", true, true},
		{"oa", "gpt-4o", false, false},
		{"an", "claude-opus-4", false, true},
		{"an", "claude", true, false},
	} {
		if ok, explicit := c.Prefill(tc.provider, tc.model); ok != tc.want || explicit != tc.explicit {
			t.Errorf("Prefill(%s, %s) = %v, %v; want %v, %v", tc.provider, tc.model, ok, explicit, tc.want, tc.explicit)
		}
	}
	for _, want := range []string{"context_length", "bad_response", "stream_broken"} {
		if !contains(DefaultFallbackOn, want) {
			t.Errorf("default fallback_on lacks %s", want)
		}
	}
}

func TestConductKeysValidated(t *testing.T) {
	_, err := Parse([]byte(`
providers:
  - {name: oa, kind: openai, base_url: "https://x/v1", stream_idle_timeout: -1s, retry_on: [nope]}
routes:
  - name: chat
    targets: [{provider: oa, model: m}]
    retry_on: [sometimes]
`))
	if err == nil {
		t.Fatal("bad conduct keys accepted")
	}
	for _, want := range []string{"providers[0].stream_idle_timeout: must not be negative", `providers[0].retry_on[0]: unknown error type "nope"`, `routes[0].retry_on[0]: unknown error type "sometimes"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
