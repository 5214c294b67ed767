package workers

import "github.com/switchboard-llm/switchboard/broker/config"

// Pricer prices a call's tokens. ok is false when the price of provider/model
// is unknown; callers then record no cost (nil), never a silent zero.
type Pricer interface {
	Cost(provider, model string, inputTokens, outputTokens int64) (usd float64, ok bool)
}

// ConfigPricer prices calls from the models section of the config (USD per
// million tokens).
type ConfigPricer struct {
	Config *config.Config
}

var _ Pricer = ConfigPricer{}

// Cost implements Pricer.
func (p ConfigPricer) Cost(provider, model string, inputTokens, outputTokens int64) (float64, bool) {
	if p.Config == nil {
		return 0, false
	}
	m, ok := p.Config.Price(provider, model)
	if !ok {
		return 0, false
	}
	return (float64(inputTokens)*m.InputPerMTok + float64(outputTokens)*m.OutputPerMTok) / 1e6, true
}

// costOf returns the cost of a call as a pointer, nil when unknown.
func costOf(p Pricer, provider, model string, in, out int64) *float64 {
	if p == nil {
		return nil
	}
	usd, ok := p.Cost(provider, model, in, out)
	if !ok {
		return nil
	}
	return &usd
}
