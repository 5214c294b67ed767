package ingest

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/tidwall/gjson"

	"github.com/switchboard-llm/switchboard/broker/streams"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Decode parses and checks a telemetry event received on subject
// llm.telemetry.<kind>. Errors wrap ErrBadEvent and say what is wrong.
//
// It reads schemas.Event's JSON fields with a one-pass scanner (several
// times faster than encoding/json, which matters at 100k events/s) and is as
// strict about types: a field of the wrong JSON type is an error naming it.
// Unknown fields are ignored, as encoding/json would.
func Decode(subject string, data []byte) (*schemas.Event, error) {
	if !gjson.ValidBytes(data) {
		return nil, fmt.Errorf("%w: invalid JSON", ErrBadEvent)
	}
	return decodeEvent(subject, gjson.ParseBytes(data))
}

// BadEvent is an element of a telemetry batch that cannot be ingested.
type BadEvent struct {
	// Index is the element's position in the batch.
	Index int
	// Raw is the element's JSON.
	Raw []byte
	// Err wraps ErrBadEvent and says what is wrong.
	Err error
}

// DecodeMessage decodes a telemetry message: one event on
// llm.telemetry.<kind>, or a JSON array of events on llm.telemetry.batch.
// A message that cannot be read at all returns an error wrapping
// ErrBadEvent; the bad elements of a readable batch come back in bad, beside
// the good events, so one bad event never holds back the others.
func DecodeMessage(subject string, data []byte) (events []*schemas.Event, bad []BadEvent, err error) {
	if subject != streams.TelemetryBatch {
		ev, err := Decode(subject, data)
		if err != nil {
			return nil, nil, err
		}
		return []*schemas.Event{ev}, nil, nil
	}
	if !gjson.ValidBytes(data) {
		return nil, nil, fmt.Errorf("%w: invalid JSON", ErrBadEvent)
	}
	root := gjson.ParseBytes(data)
	if !root.IsArray() {
		return nil, nil, fmt.Errorf("%w: a batch on %s must be a JSON array of events", ErrBadEvent, subject)
	}
	i := 0
	root.ForEach(func(_, v gjson.Result) bool {
		ev, err := decodeEvent("", v)
		if err != nil {
			bad = append(bad, BadEvent{Index: i, Raw: []byte(v.Raw), Err: fmt.Errorf("event[%d]: %w", i, err)})
		} else {
			events = append(events, ev)
		}
		i++
		return true
	})
	if i == 0 {
		return nil, nil, fmt.Errorf("%w: empty batch", ErrBadEvent)
	}
	return events, bad, nil
}

// decodeEvent checks and reads one event object.
func decodeEvent(subject string, root gjson.Result) (*schemas.Event, error) {
	if !root.IsObject() {
		return nil, fmt.Errorf("%w: invalid JSON: not an object", ErrBadEvent)
	}
	var ev schemas.Event
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		err = setField(&ev, k.Str, v)
		return err == nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	switch {
	case ev.V != schemas.Version:
		return nil, fmt.Errorf("%w: unsupported version v=%d (want %d)", ErrBadEvent, ev.V, schemas.Version)
	case ev.Kind != schemas.EventAttempt && ev.Kind != schemas.EventCompletion:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrBadEvent, ev.Kind)
	case subject != "" && strings.HasPrefix(subject, "llm.telemetry.") && subject != streams.Telemetry(ev.Kind):
		return nil, fmt.Errorf("%w: kind %q published on %s", ErrBadEvent, ev.Kind, subject)
	case ev.EventID == uuid.Nil:
		return nil, fmt.Errorf("%w: event_id is required", ErrBadEvent)
	case ev.JobID == "":
		return nil, fmt.Errorf("%w: job_id is required", ErrBadEvent)
	case ev.TS.IsZero():
		return nil, fmt.Errorf("%w: ts is required", ErrBadEvent)
	case ev.TS.Year() < 1971 || ev.TS.Year() > 2105:
		return nil, fmt.Errorf("%w: ts %s is out of range", ErrBadEvent, ev.TS.Format(time.RFC3339))
	}
	return &ev, nil
}

func setField(ev *schemas.Event, key string, v gjson.Result) error {
	str := func(dst *string) error {
		switch v.Type {
		case gjson.String:
			*dst = v.Str
		case gjson.Null:
		default:
			return fmt.Errorf("%s: want a string, got %s", key, v.Raw)
		}
		return nil
	}
	num := func(dst *int64) error {
		switch v.Type {
		case gjson.Number:
			f := v.Num
			if f != math.Trunc(f) || f > math.MaxInt64 || f < math.MinInt64 {
				return fmt.Errorf("%s: want an integer, got %s", key, v.Raw)
			}
			*dst = v.Int()
		case gjson.Null:
		default:
			return fmt.Errorf("%s: want a number, got %s", key, v.Raw)
		}
		return nil
	}
	integer := func(dst *int) error {
		var n int64
		if err := num(&n); err != nil {
			return err
		}
		*dst = int(n)
		return nil
	}
	switch key {
	case "v":
		return integer(&ev.V)
	case "kind":
		return str(&ev.Kind)
	case "event_id":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.String {
			return fmt.Errorf("event_id: want a UUID string, got %s", v.Raw)
		}
		id, err := uuid.Parse(v.Str)
		if err != nil {
			return fmt.Errorf("event_id: %v", err)
		}
		ev.EventID = id
	case "job_id":
		return str(&ev.JobID)
	case "ts":
		if v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.String {
			return fmt.Errorf("ts: want an RFC 3339 time, got %s", v.Raw)
		}
		ts, err := time.Parse(time.RFC3339Nano, v.Str)
		if err != nil {
			return fmt.Errorf("ts: %v", err)
		}
		ev.TS = ts
	case "attempt":
		return integer(&ev.Attempt)
	case "route":
		return str(&ev.Route)
	case "provider":
		return str(&ev.Provider)
	case "model":
		return str(&ev.Model)
	case "tenant":
		return str(&ev.Tenant)
	case "tier":
		return str(&ev.Tier)
	case "task":
		return str(&ev.Task)
	case "status":
		return str(&ev.Status)
	case "status_code":
		return integer(&ev.StatusCode)
	case "error_type":
		return str(&ev.ErrorType)
	case "outcome":
		return str(&ev.Outcome)
	case "fallback":
		switch v.Type {
		case gjson.True, gjson.False:
			ev.Fallback = v.Bool()
		case gjson.Null:
		default:
			return fmt.Errorf("fallback: want true or false, got %s", v.Raw)
		}
	case "input_tokens":
		return num(&ev.InputTokens)
	case "output_tokens":
		return num(&ev.OutputTokens)
	case "cost_usd":
		switch v.Type {
		case gjson.Number:
			c := v.Num
			if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
				return fmt.Errorf("cost_usd: %s is not a cost", v.Raw)
			}
			ev.CostUSD = &c
		case gjson.Null:
		default:
			return fmt.Errorf("cost_usd: want a number or null, got %s", v.Raw)
		}
	case "queued_ms":
		return num(&ev.QueuedMS)
	case "ttft_ms":
		return num(&ev.TTFTMS)
	case "provider_ms":
		return num(&ev.ProviderMS)
	case "total_ms":
		return num(&ev.TotalMS)
	case "duration_ms":
		return num(&ev.DurationMS)
	}
	return nil
}
