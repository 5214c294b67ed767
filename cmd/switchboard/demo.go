package main

import (
	"fmt"
	"os"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// demoProviders are the built-in mock providers of `up --demo`: one flaky,
// one slow, one healthy, so failover is visible without API keys.
var demoProviders = []struct {
	name, model string
	faults      mock.Faults
	in, out     float64
}{
	{"flaky", "flaky-large", mock.Faults{ErrorRate: 0.4, ErrorStatus: 503, Latency: 40 * time.Millisecond}, 2.50, 10.00},
	{"slow", "slow-medium", mock.Faults{Latency: 1500 * time.Millisecond, Jitter: 500 * time.Millisecond}, 0.80, 4.00},
	{"healthy", "healthy-small", mock.Faults{Latency: 80 * time.Millisecond, Jitter: 60 * time.Millisecond}, 0.15, 0.60},
}

// demoSeed seeds the demo providers' fault injection.
const demoSeed = 9

// startDemo starts the demo mock providers on loopback and returns a config
// that routes across them, plus a function that stops them.
func startDemo() (*config.Config, func(), error) {
	cfg := &config.Config{DefaultRoute: "chat"}
	var servers []*mock.Server
	stop := func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}
	var chat, fast []config.RouteTarget
	for _, d := range demoProviders {
		srv, err := mock.Listen("127.0.0.1:0", mock.Options{
			Faults: d.faults,
			Models: []string{d.model},
			Seed:   demoSeed, // the same first requests on every run (README)
		})
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("demo provider %s: %w", d.name, err)
		}
		servers = append(servers, srv)
		cfg.Providers = append(cfg.Providers, config.Provider{
			Name: d.name, Kind: config.KindMock, BaseURL: srv.URL() + "/v1",
			Concurrency: 32, Timeout: 10 * time.Second,
		})
		cfg.Models = append(cfg.Models, config.Model{Provider: d.name, Name: d.model, InputPerMTok: d.in, OutputPerMTok: d.out})
		chat = append(chat, config.RouteTarget{Provider: d.name, Model: d.model})
		if d.name != "flaky" {
			fast = append(fast, config.RouteTarget{Provider: d.name, Model: d.model})
		}
	}
	one := 1
	cfg.Routes = []config.Route{
		// "chat": a flaky 503 is retried once, then falls over to slow; slow
		// never answers within the 1s threshold, so healthy serves. Slow's
		// timeouts open its breaker after three, and jobs skip it.
		{Name: "chat", Targets: chat, Retries: &one, LatencyThreshold: time.Second},
		// "fast" moves on when the slow provider hasn't answered within 1s.
		{Name: "fast", Targets: fast, Retries: &one, LatencyThreshold: time.Second},
	}
	cfg.Breaker = config.Breaker{Failures: 3, Cooldown: 30 * time.Second}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		stop()
		return nil, nil, err
	}
	return cfg, stop, nil
}

// envKeyProviders are the providers `up` configures by itself when their key
// is in the environment and no config file exists.
var envKeyProviders = []struct {
	env, name, kind, baseURL, model string
}{
	{"OPENAI_API_KEY", "openai", config.KindOpenAI, "https://api.openai.com/v1", "gpt-4o-mini"},
	{"ANTHROPIC_API_KEY", "anthropic", config.KindAnthropic, "", "claude-3-5-haiku-latest"},
	{"GEMINI_API_KEY", "gemini", config.KindGemini, "", "gemini-2.0-flash"},
}

// configFromEnv builds a one-route config over the providers whose API keys
// are set, or returns nil when none is.
func configFromEnv() (*config.Config, error) {
	cfg := &config.Config{}
	var targets []config.RouteTarget
	for _, p := range envKeyProviders {
		if os.Getenv(p.env) == "" {
			continue
		}
		cfg.Providers = append(cfg.Providers, config.Provider{Name: p.name, Kind: p.kind, BaseURL: p.baseURL, APIKeyEnv: p.env})
		targets = append(targets, config.RouteTarget{Provider: p.name, Model: p.model})
	}
	if len(targets) == 0 {
		return nil, nil
	}
	cfg.Routes = []config.Route{{Name: "chat", Targets: targets}}
	cfg.ApplyDefaults()
	return cfg, cfg.Validate()
}
