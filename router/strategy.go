package router

import (
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Weighted orders a route's targets by weighted sampling without replacement,
// seeded by the job id: the first target is target i with probability
// weight_i / sum(weights), the same job id always gets the same plan, and the
// remaining targets follow as fallbacks (their order weighted the same way).
func Weighted(rt *config.Route, jobID string) []schemas.Target {
	type keyed struct {
		t   schemas.Target
		key float64
		idx int
	}
	ks := make([]keyed, 0, len(rt.Targets))
	for i, t := range rt.Targets {
		k := math.Inf(-1)
		if t.Weight > 0 {
			// Efraimidis-Spirakis: key = u^(1/w), highest keys first.
			u := unitHash(jobID, i)
			k = math.Log(u) / float64(t.Weight)
		}
		ks = append(ks, keyed{schemas.Target{Provider: t.Provider, Model: t.Model}, k, i})
	}
	sort.SliceStable(ks, func(a, b int) bool {
		if ks[a].key != ks[b].key {
			return ks[a].key > ks[b].key
		}
		return ks[a].idx < ks[b].idx
	})
	plan := make([]schemas.Target, len(ks))
	for i, k := range ks {
		plan[i] = k.t
	}
	return plan
}

// unitHash maps (id, i) to a uniform number in (0, 1).
func unitHash(id string, i int) float64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{'#'})
	h.Write([]byte(strconv.Itoa(i)))
	x := splitmix64(h.Sum64())
	return (float64(x>>11) + 0.5) / (1 << 53)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// LeastLatency orders targets by their recent observed latency, fastest
// first. Targets never observed go first (so every target gets measured);
// ties keep configuration order.
func LeastLatency(rt *config.Route, l Latencies) []schemas.Target {
	plan := Plan(rt)
	if l == nil {
		return plan
	}
	lat := make([]time.Duration, len(plan))
	for i, t := range plan {
		if d, ok := l.Latency(t.Provider, t.Model); ok {
			lat[i] = d
		}
	}
	idx := make([]int, len(plan))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return lat[idx[a]] < lat[idx[b]] })
	out := make([]schemas.Target, len(plan))
	for i, j := range idx {
		out[i] = plan[j]
	}
	return out
}

// LowestCost orders targets by the estimated cost of the job (price x
// estimated tokens, priced by prices), cheapest first; targets without a
// known price go last; ties keep configuration order.
func LowestCost(rt *config.Route, prices *pricing.Table, inTokens, outTokens int) []schemas.Target {
	plan := Plan(rt)
	cost := make([]float64, len(plan))
	for i, t := range plan {
		cost[i] = EstimateCost(prices, t, inTokens, outTokens)
	}
	idx := make([]int, len(plan))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return cost[idx[a]] < cost[idx[b]] })
	out := make([]schemas.Target, len(plan))
	for i, j := range idx {
		out[i] = plan[j]
	}
	return out
}

// EstimateCost is the USD cost of inTokens+outTokens on t, priced by prices
// (what the workers bill), +Inf when t's price is unknown.
func EstimateCost(prices *pricing.Table, t schemas.Target, inTokens, outTokens int) float64 {
	usd, ok := prices.Cost(t.Provider, t.Model, int64(inTokens), int64(outTokens))
	if !ok {
		return math.Inf(1)
	}
	return usd
}
