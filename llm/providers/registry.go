// Package providers builds provider adapters from config: an explicit map
// from config kind to constructor, plus the shared HTTP client.
package providers

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/anthropic"
	"github.com/switchboard-llm/switchboard/llm/gemini"
	"github.com/switchboard-llm/switchboard/llm/openai"
)

// Constructor builds the adapter for one configured provider; key is the
// provider's API key (possibly empty) and hc the HTTP client to use.
type Constructor func(p config.Provider, key string, hc *http.Client) (llm.Completer, error)

// constructors maps config kind to adapter constructor.
var constructors = map[string]Constructor{
	config.KindOpenAI:    newOpenAI,
	config.KindAnthropic: newAnthropic,
	config.KindGemini:    newGemini,
	config.KindMock:      newMock,
}

// Kinds lists the provider kinds New accepts, sorted.
func Kinds() []string {
	out := make([]string, 0, len(constructors))
	for k := range constructors {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds the adapter for p, reading its key from the environment
// (p.APIKey). A nil hc means NewHTTPClient(). Errors never contain the key.
// Adapters that can stream also implement llm.Streamer.
func New(p config.Provider, hc *http.Client) (llm.Completer, error) {
	ctor, ok := constructors[p.Kind]
	if !ok {
		return nil, fmt.Errorf("provider %q: %w %q (want one of %s)", p.Name, ErrUnknownKind, p.Kind, strings.Join(Kinds(), ", "))
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	key := p.APIKey()
	c, err := ctor(p, key, hc)
	if err == nil && key == "" && p.APIKeyEnv != "" {
		c = withKeyHint(c, p.APIKeyEnv)
	}
	return c, err
}

func newOpenAI(p config.Provider, key string, hc *http.Client) (llm.Completer, error) {
	return openai.New(openai.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: key, HTTPClient: hc}), nil
}

func newAnthropic(p config.Provider, key string, hc *http.Client) (llm.Completer, error) {
	return anthropic.New(anthropic.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: key, HTTPClient: hc}), nil
}

func newGemini(p config.Provider, key string, hc *http.Client) (llm.Completer, error) {
	return gemini.New(gemini.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: key, HTTPClient: hc}), nil
}

// newMock is the OpenAI adapter pointed at a mock provider's base_url.
func newMock(p config.Provider, key string, hc *http.Client) (llm.Completer, error) {
	if p.BaseURL == "" {
		return nil, fmt.Errorf("provider %q (kind mock): %w", p.Name, ErrBaseURLRequired)
	}
	return openai.New(openai.Config{Name: p.Name, BaseURL: p.BaseURL, APIKey: key, HTTPClient: hc}), nil
}

// NewHTTPClient returns an HTTP client tuned for many concurrent calls to a
// few hosts. It has no overall Timeout: each call's deadline comes from its
// context, set by the worker pool.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}
