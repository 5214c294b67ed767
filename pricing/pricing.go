// Package pricing prices LLM calls in USD: a Table built from the config's
// models (USD per million tokens), optionally extended by an import of
// LiteLLM's model_prices_and_context_window.json. Config prices win. An
// unknown price is reported as unknown, never as zero. It owns the cost
// formula: billing (workers) and lowest-cost routing (router) both
// price with a Table, so they agree.
package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/switchboard-llm/switchboard/config"
)

// ErrPrices wraps a prices file that cannot be read or parsed.
var ErrPrices = errors.New("invalid prices file")

// Price is a model's price in USD per million tokens.
type Price struct {
	InputPerMTok  float64
	OutputPerMTok float64
	// Source is "config" or "litellm".
	Source string
}

// Cost prices in input and out output tokens.
func (p Price) Cost(in, out int64) float64 {
	return (float64(in)*p.InputPerMTok + float64(out)*p.OutputPerMTok) / 1e6
}

type key struct{ provider, model string }

// Table maps provider/model to prices. Build it once; lookups are safe for
// concurrent use.
type Table struct {
	// config holds prices from switchboard.yaml, keyed by provider name.
	config map[key]Price
	// litellm holds imported prices keyed by LiteLLM provider.
	litellm map[key]Price
	// byModel holds imported prices keyed by model name alone, when unique.
	byModel map[string]Price
	// kinds maps a configured provider name to its LiteLLM provider.
	kinds map[string]string
	// cfg is the config the table was built for.
	cfg *config.Config
}

// Config returns the config whose model prices the table holds.
func (t *Table) Config() *config.Config { return t.cfg }

// New builds a table from the config's models and provider kinds.
func New(cfg *config.Config) *Table {
	return (&Table{litellm: map[key]Price{}, byModel: map[string]Price{}}).For(cfg)
}

// For returns a table with cfg's models and provider kinds in place of t's,
// sharing t's imported LiteLLM prices: a reloaded config's prices over the
// import done once at start. t must not import more after For.
func (t *Table) For(cfg *config.Config) *Table {
	n := &Table{config: map[key]Price{}, litellm: t.litellm, byModel: t.byModel, kinds: map[string]string{}, cfg: cfg}
	n.setConfig(cfg)
	return n
}

func (t *Table) setConfig(cfg *config.Config) {
	if cfg == nil {
		return
	}
	for _, p := range cfg.Providers {
		t.kinds[p.Name] = litellmProvider(p.Kind)
	}
	for _, m := range cfg.Models {
		t.config[key{m.Provider, m.Name}] = Price{InputPerMTok: m.InputPerMTok, OutputPerMTok: m.OutputPerMTok, Source: "config"}
	}
}

// Load builds a table from the config and, when analytics.prices_file is
// set, imports that LiteLLM prices file.
func Load(cfg *config.Config) (*Table, error) {
	t := New(cfg)
	if cfg != nil && cfg.Analytics.PricesFile != "" {
		if _, err := t.ImportLiteLLMFile(cfg.Analytics.PricesFile); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// litellmProvider maps a provider kind to LiteLLM's litellm_provider.
func litellmProvider(kind string) string {
	switch kind {
	case config.KindOpenAI, config.KindAnthropic, config.KindGemini:
		return kind
	}
	return ""
}

// litellmEntry is one model of LiteLLM's model_prices_and_context_window.json.
type litellmEntry struct {
	InputCostPerToken  *float64 `json:"input_cost_per_token"`
	OutputCostPerToken *float64 `json:"output_cost_per_token"`
	LiteLLMProvider    string   `json:"litellm_provider"`
}

// ImportLiteLLMFile imports a local LiteLLM prices file.
func (t *Table) ImportLiteLLMFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrPrices, err)
	}
	defer f.Close()
	n, err := t.ImportLiteLLM(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ImportLiteLLM reads LiteLLM's model_prices_and_context_window.json format:
// an object of model name -> {input_cost_per_token, output_cost_per_token,
// litellm_provider, ...}. Entries without both token prices (images, audio,
// the "sample_spec" documentation entry) are skipped. It returns how many
// prices it imported; config prices keep winning over imported ones.
func (t *Table) ImportLiteLLM(r io.Reader) (int, error) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return 0, fmt.Errorf("%w: not a LiteLLM prices object: %v", ErrPrices, err)
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	models := map[string][]Price{}
	n := 0
	for _, name := range names {
		if name == "sample_spec" {
			continue
		}
		var e litellmEntry
		if err := json.Unmarshal(raw[name], &e); err != nil {
			continue // a field of an unexpected type in an entry we may not need
		}
		if e.InputCostPerToken == nil || e.OutputCostPerToken == nil || *e.InputCostPerToken < 0 || *e.OutputCostPerToken < 0 {
			continue
		}
		p := Price{InputPerMTok: *e.InputCostPerToken * 1e6, OutputPerMTok: *e.OutputCostPerToken * 1e6, Source: "litellm"}
		model := name
		// Keys such as "gemini/gemini-1.5-flash" carry their provider.
		if prefix, rest, ok := strings.Cut(name, "/"); ok && prefix == e.LiteLLMProvider {
			model = rest
		}
		t.litellm[key{e.LiteLLMProvider, model}] = p
		models[model] = append(models[model], p)
		n++
	}
	for model, ps := range models {
		if len(ps) == 1 {
			t.byModel[model] = ps[0]
		}
	}
	return n, nil
}

// Lookup returns the price of a configured provider's model: the config's
// price first, then LiteLLM's price for the provider's kind, then a LiteLLM
// price for the model name when only one provider lists it.
func (t *Table) Lookup(provider, model string) (Price, bool) {
	if p, ok := t.config[key{provider, model}]; ok {
		return p, true
	}
	if kind := t.kinds[provider]; kind != "" {
		if p, ok := t.litellm[key{kind, model}]; ok {
			return p, true
		}
	}
	if p, ok := t.litellm[key{provider, model}]; ok {
		return p, true
	}
	if p, ok := t.byModel[model]; ok {
		return p, true
	}
	return Price{}, false
}

// Cost prices a call; ok is false when the price is unknown, and the caller
// must then record the cost as unknown (NULL), not zero. It is the one cost
// of a call: workers bill with it (workers.Pricer) and lowest-cost routing
// ranks targets with it (router.Options.Prices).
func (t *Table) Cost(provider, model string, in, out int64) (float64, bool) {
	p, ok := t.Lookup(provider, model)
	if !ok {
		return 0, false
	}
	return p.Cost(in, out), true
}
