package workers

// Pricer prices a call's tokens. ok is false when the price of provider/model
// is unknown; callers then record no cost (nil), never a silent zero.
// Implemented by *pricing.Table (pricing), the one cost formula,
// which lowest-cost routing ranks targets with too.
type Pricer interface {
	Cost(provider, model string, inputTokens, outputTokens int64) (usd float64, ok bool)
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
