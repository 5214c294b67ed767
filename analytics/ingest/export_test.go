package ingest

import (
	"encoding/json"
	"fmt"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// The library decoders measured against the hand-written one
// (BenchmarkDecoders, BenchmarkIngestDecoders): each unmarshals into
// schemas.Event and then runs the same checks. On a batch that does not
// unmarshal whole they fall back to one element at a time, so a bad element
// still only costs itself. They are not what the scan tests assert
// (checked 2026-12: both reject 1e3 for an integer, clear cost_usd on null
// and report type errors in their own words, not "attempt: want a number,
// got \"x\""; sonic stops at 4096 levels of nesting, where the tests
// accept 10000; go-json matches keys ignoring case, so "ATTEMPT" overrides
// "attempt"): the benchmarks measure their fast path only, which favours
// them.

// unmarshaler is what each library offers.
type unmarshaler func(data []byte, v any) error

var sonicCaseSensitive = sonic.Config{CaseSensitive: true, ValidateString: true}.Froze()

// LibDecoders are the candidate decoders by name.
var LibDecoders = map[string]func(subject string, data []byte) ([]*schemas.Event, []BadEvent, error){
	"encoding_json": libDecoder(json.Unmarshal),
	"sonic":         libDecoder(sonicCaseSensitive.Unmarshal),
	"go_json":       libDecoder(gojson.Unmarshal),
}

func libDecoder(unmarshal unmarshaler) func(subject string, data []byte) ([]*schemas.Event, []BadEvent, error) {
	one := func(subject string, data []byte) (*schemas.Event, error) {
		ev := new(schemas.Event)
		if err := unmarshal(data, ev); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
		}
		if err := checkEvent(subject, ev); err != nil {
			return nil, err
		}
		if ev.CostUSD != nil && *ev.CostUSD < 0 {
			return nil, fmt.Errorf("%w: cost_usd: %v is not a cost", ErrBadEvent, *ev.CostUSD)
		}
		return ev, nil
	}
	return func(subject string, data []byte) ([]*schemas.Event, []BadEvent, error) {
		if subject != topology.TelemetryBatch {
			ev, err := one(subject, data)
			if err != nil {
				return nil, nil, err
			}
			return []*schemas.Event{ev}, nil, nil
		}
		var evs []schemas.Event
		if err := unmarshal(data, &evs); err == nil {
			out := make([]*schemas.Event, 0, len(evs))
			var bad []BadEvent
			for i := range evs {
				err := checkEvent("", &evs[i])
				if err == nil && evs[i].CostUSD != nil && *evs[i].CostUSD < 0 {
					err = fmt.Errorf("%w: cost_usd: %v is not a cost", ErrBadEvent, *evs[i].CostUSD)
				}
				if err != nil {
					raw, _ := json.Marshal(&evs[i])
					bad = append(bad, BadEvent{Index: i, Raw: raw, Err: fmt.Errorf("event[%d]: %w", i, err)})
					continue
				}
				out = append(out, &evs[i])
			}
			return out, bad, nil
		}
		var elems []json.RawMessage
		if err := unmarshal(data, &elems); err != nil {
			return nil, nil, errInvalidJSON
		}
		var out []*schemas.Event
		var bad []BadEvent
		for i, raw := range elems {
			ev, err := one("", raw)
			if err != nil {
				bad = append(bad, BadEvent{Index: i, Raw: raw, Err: fmt.Errorf("event[%d]: %w", i, err)})
				continue
			}
			out = append(out, ev)
		}
		return out, bad, nil
	}
}

// UseDecoder makes ingesters decode with the named library decoder ("" =
// the hand-written DecodeMessage) until the returned restore is called.
func UseDecoder(name string) (restore func()) {
	prev := decodeMessage
	if name != "" {
		decodeMessage = LibDecoders[name]
	}
	return func() { decodeMessage = prev }
}
