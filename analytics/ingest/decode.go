package ingest

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

var (
	errInvalidJSON = fmt.Errorf("%w: invalid JSON", ErrBadEvent)
	errNotObject   = fmt.Errorf("%w: invalid JSON: not an object", ErrBadEvent)
)

// Decode parses and checks a telemetry event received on subject
// llm.telemetry.<kind>. Errors wrap ErrBadEvent and say what is wrong.
//
// It reads schemas.Event's JSON fields in one pass of a strict JSON scanner
// (many times faster than encoding/json, which matters at 100k events/s).
// A field of the wrong JSON type is an error naming it. It is more lenient
// than encoding/json in one way: an integer field accepts any number with
// an integral value in int64's range, so 1e3 and 1.0 are 1000 and 1 (1.5
// and 1e19 are errors); encoding/json rejects both. Unknown fields are ignored, as encoding/json would; keys match
// field names exactly, and of a repeated key the last one counts. Strings
// are unquoted as encoding/json does: invalid UTF-8 and unpaired surrogates
// become U+FFFD.
func Decode(subject string, data []byte) (*schemas.Event, error) {
	s := string(data)
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		if v, ok := scanValue(s, i, 0); !ok || skipWS(s, v.end) != len(s) {
			return nil, errInvalidJSON
		}
		return nil, errNotObject
	}
	ev, j, err := decodeEvent(s, i, 1, subject)
	if j < 0 || skipWS(s, j) != len(s) {
		return nil, errInvalidJSON
	}
	return ev, err
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
	if subject != topology.TelemetryBatch {
		ev, err := Decode(subject, data)
		if err != nil {
			return nil, nil, err
		}
		return []*schemas.Event{ev}, nil, nil
	}
	s := string(data)
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '[' {
		if v, ok := scanValue(s, i, 0); !ok || skipWS(s, v.end) != len(s) {
			return nil, nil, errInvalidJSON
		}
		return nil, nil, fmt.Errorf("%w: a batch on %s must be a JSON array of events", ErrBadEvent, subject)
	}
	i, more := open(s, i, 1, ']')
	n := 0
	for ; more; n++ {
		start := i
		var ev *schemas.Event
		var err error
		if i < len(s) && s[i] == '{' {
			ev, i, err = decodeEvent(s, i, 2, "")
		} else {
			v, _ := scanValue(s, i, 1) // v.end is -1 if not valid
			i, err = v.end, errNotObject
		}
		if i < 0 {
			return nil, nil, errInvalidJSON
		}
		if err != nil {
			bad = append(bad, BadEvent{Index: n, Raw: []byte(s[start:i]), Err: fmt.Errorf("event[%d]: %w", n, err)})
		} else {
			if events == nil {
				events = make([]*schemas.Event, 0, 8)
			}
			events = append(events, ev)
		}
		i, more = next(s, i, ']')
	}
	if i < 0 || skipWS(s, i) != len(s) {
		return nil, nil, errInvalidJSON
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: empty batch", ErrBadEvent)
	}
	return events, bad, nil
}

// eventBox holds an event and its cost, to allocate them together.
type eventBox struct {
	ev   schemas.Event
	cost float64
}

// slotKind says how a field's value is read.
type slotKind uint8

const (
	slotNone   slotKind = iota // unknown key: skipped
	slotString                 // a string field
	slotInt                    // an int field
	slotInt64                  // an int64 field
	slotOther                  // another field: setField reads it
)

// Fields of schemas.Event, in the order encoding/json writes them, which
// decodeEvent expects first.
const (
	fieldV = iota
	fieldKind
	fieldEventID
	fieldJobID
	fieldTS
	fieldAttempt
	fieldRoute
	fieldProvider
	fieldModel
	fieldTenant
	fieldTier
	fieldTask
	fieldStatus
	fieldStatusCode
	fieldErrorType
	fieldOutcome
	fieldFallback
	fieldInputTokens
	fieldOutputTokens
	fieldCostUSD
	fieldQueuedMS
	fieldTTFTMS
	fieldProviderMS
	fieldTotalMS
	fieldDurationMS
	fieldRequestBody
	fieldResponseBody
	numFields
)

// fieldNames are the fields' JSON keys.
var fieldNames = [numFields]string{
	fieldV: "v", fieldKind: "kind", fieldEventID: "event_id", fieldJobID: "job_id", fieldTS: "ts",
	fieldAttempt: "attempt", fieldRoute: "route", fieldProvider: "provider", fieldModel: "model",
	fieldTenant: "tenant", fieldTier: "tier", fieldTask: "task", fieldStatus: "status",
	fieldStatusCode: "status_code", fieldErrorType: "error_type", fieldOutcome: "outcome",
	fieldFallback: "fallback", fieldInputTokens: "input_tokens", fieldOutputTokens: "output_tokens",
	fieldCostUSD: "cost_usd", fieldQueuedMS: "queued_ms", fieldTTFTMS: "ttft_ms",
	fieldProviderMS: "provider_ms", fieldTotalMS: "total_ms", fieldDurationMS: "duration_ms",
	fieldRequestBody: "request_body", fieldResponseBody: "response_body",
}

// fieldQuoted holds each field's key and closing quote, as two
// little-endian words and the masks of their bytes.
var fieldQuoted = func() (q [numFields]struct{ word, mask [2]uint64 }) {
	for k, name := range fieldNames {
		for i, c := range []byte(name + `"`) {
			q[k].word[i/8] |= uint64(c) << (8 * (i % 8))
			q[k].mask[i/8] |= 0xff << (8 * (i % 8))
		}
	}
	return q
}()

// fieldIndexes maps the fields' JSON keys to their fields.
var fieldIndexes = func() map[string]int {
	m := make(map[string]int, numFields)
	for k, name := range fieldNames {
		m[name] = k
	}
	return m
}()

// fieldIndex is the field with JSON key key, or -1.
func fieldIndex(key string) int {
	if k, ok := fieldIndexes[key]; ok {
		return k
	}
	return -1
}

// slot says how field k is read and where it goes in ev.
func slot(ev *schemas.Event, k int) (slotKind, *string, *int, *int64) {
	switch k {
	case fieldV:
		return slotInt, nil, &ev.V, nil
	case fieldKind:
		return slotString, &ev.Kind, nil, nil
	case fieldJobID:
		return slotString, &ev.JobID, nil, nil
	case fieldAttempt:
		return slotInt, nil, &ev.Attempt, nil
	case fieldRoute:
		return slotString, &ev.Route, nil, nil
	case fieldProvider:
		return slotString, &ev.Provider, nil, nil
	case fieldModel:
		return slotString, &ev.Model, nil, nil
	case fieldTenant:
		return slotString, &ev.Tenant, nil, nil
	case fieldTier:
		return slotString, &ev.Tier, nil, nil
	case fieldTask:
		return slotString, &ev.Task, nil, nil
	case fieldStatus:
		return slotString, &ev.Status, nil, nil
	case fieldStatusCode:
		return slotInt, nil, &ev.StatusCode, nil
	case fieldErrorType:
		return slotString, &ev.ErrorType, nil, nil
	case fieldOutcome:
		return slotString, &ev.Outcome, nil, nil
	case fieldInputTokens:
		return slotInt64, nil, nil, &ev.InputTokens
	case fieldOutputTokens:
		return slotInt64, nil, nil, &ev.OutputTokens
	case fieldQueuedMS:
		return slotInt64, nil, nil, &ev.QueuedMS
	case fieldTTFTMS:
		return slotInt64, nil, nil, &ev.TTFTMS
	case fieldProviderMS:
		return slotInt64, nil, nil, &ev.ProviderMS
	case fieldTotalMS:
		return slotInt64, nil, nil, &ev.TotalMS
	case fieldDurationMS:
		return slotInt64, nil, nil, &ev.DurationMS
	case fieldRequestBody:
		return slotString, &ev.RequestBody, nil, nil
	case fieldResponseBody:
		return slotString, &ev.ResponseBody, nil, nil
	case fieldEventID, fieldTS, fieldFallback, fieldCostUSD:
		return slotOther, nil, nil, nil
	}
	return slotNone, nil, nil, nil
}

// decodeEvent reads the event object whose '{' is at s[i], at nesting
// depth, and checks it. j is the index after the object, or -1 if the
// object is not valid JSON; else err says what is wrong with the event.
func decodeEvent(s string, i, depth int, subject string) (ev *schemas.Event, j int, err error) {
	box := new(eventBox)
	ev = &box.ev
	// ferr is the first field error: like encoding/json, the fields after
	// it are only scanned (the object must still be valid JSON).
	var ferr error
	// pred is where the next key is looked for in fieldNames first.
	pred := 0
	i, more := open(s, i, depth, '}')
	for more {
		k := -1
		// The expected key, written plainly, is a quick compare of the 16
		// bytes after the '"'.
		if i+17 <= len(s) && s[i] == '"' {
			a := binary.LittleEndian.Uint64([]byte(s[i+1 : i+9]))
			b := binary.LittleEndian.Uint64([]byte(s[i+9 : i+17]))
			for p := pred; p < numFields; p++ {
				if q := &fieldQuoted[p]; a&q.mask[0] == q.word[0] && b&q.mask[1] == q.word[1] {
					k, pred = p, p+1
					if i += 2 + len(fieldNames[p]); i >= len(s) || s[i] != ':' {
						if i = skipWS(s, i); i >= len(s) || s[i] != ':' {
							return nil, -1, nil
						}
					}
					i = skipWS(s, i+1)
					break
				}
			}
		}
		if k < 0 {
			var key string
			if key, i = scanKey(s, i); i < 0 {
				return nil, -1, nil
			}
			k = fieldIndex(key)
		}
		kind, sp, ip, lp := slot(ev, k)
		if ferr != nil {
			kind = slotNone
		}
		// Fast paths for the usual field values; setField has the rules.
		done := false
		switch kind {
		case slotString:
			if i < len(s) && s[i] == '"' {
				var esc bool
				if j, esc = scanString(s, i); j < 0 {
					return nil, -1, nil
				}
				if *sp = s[i+1 : j-1]; esc {
					*sp = unquote(*sp)
				}
				i, done = j, true
			}
		case slotInt, slotInt64:
			var n int64
			if n, j, done = scanInt(s, i); done {
				if ip != nil {
					*ip = int(n)
				} else {
					*lp = n
				}
				i = j
			}
		}
		if !done {
			v, ok := scanValue(s, i, depth)
			if !ok {
				return nil, -1, nil
			}
			if kind != slotNone {
				ferr = setField(box, s, k, v)
			}
			i = v.end
		}
		if i < len(s) && s[i] == ',' {
			i = skipWS(s, i+1)
			continue
		}
		i, more = next(s, i, '}')
	}
	if i < 0 {
		return nil, -1, nil
	}
	if ferr != nil {
		return nil, i, fmt.Errorf("%w: %v", ErrBadEvent, ferr)
	}
	if err := checkEvent(subject, ev); err != nil {
		return nil, i, err
	}
	return ev, i, nil
}

// checkEvent checks a decoded event received on subject ("" for an element
// of a batch).
func checkEvent(subject string, ev *schemas.Event) error {
	switch {
	case ev.V != schemas.Version:
		return fmt.Errorf("%w: unsupported version v=%d (want %d)", ErrBadEvent, ev.V, schemas.Version)
	case ev.Kind != schemas.EventAttempt && ev.Kind != schemas.EventCompletion:
		return fmt.Errorf("%w: unknown kind %q", ErrBadEvent, ev.Kind)
	case subject != "" && strings.HasPrefix(subject, topology.TelemetryPrefix) && subject != topology.Telemetry(ev.Kind):
		return fmt.Errorf("%w: kind %q published on %s", ErrBadEvent, ev.Kind, subject)
	case ev.EventID == uuid.Nil:
		return fmt.Errorf("%w: event_id is required", ErrBadEvent)
	case ev.JobID == "":
		return fmt.Errorf("%w: job_id is required", ErrBadEvent)
	case ev.TS.IsZero():
		return fmt.Errorf("%w: ts is required", ErrBadEvent)
	case ev.TS.Year() < 1971 || ev.TS.Year() > 2105:
		return fmt.Errorf("%w: ts %s is out of range", ErrBadEvent, ev.TS.Format(time.RFC3339))
	}
	return nil
}

// setField sets field k of the event to the value v scanned from s. null
// leaves a field as it is.
func setField(box *eventBox, s string, k int, v value) error {
	ev := &box.ev
	switch k {
	case fieldEventID:
		switch v.kind {
		case kindString:
			id, err := uuid.Parse(v.text(s))
			if err != nil {
				return fmt.Errorf("event_id: %v", err)
			}
			ev.EventID = id
		case kindNull:
		default:
			return fmt.Errorf("event_id: want a UUID string, got %s", v.raw(s))
		}
		return nil
	case fieldTS:
		switch v.kind {
		case kindString:
			ts, err := parseTS(v.text(s))
			if err != nil {
				return fmt.Errorf("ts: %v", err)
			}
			ev.TS = ts
		case kindNull:
		default:
			return fmt.Errorf("ts: want an RFC 3339 time, got %s", v.raw(s))
		}
		return nil
	case fieldFallback:
		switch v.kind {
		case kindTrue, kindFalse:
			ev.Fallback = v.kind == kindTrue
		case kindNull:
		default:
			return fmt.Errorf("fallback: want true or false, got %s", v.raw(s))
		}
		return nil
	case fieldCostUSD:
		switch v.kind {
		case kindNumber:
			c, _ := strconv.ParseFloat(v.raw(s), 64) // ±Inf when out of range
			if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
				return fmt.Errorf("cost_usd: %s is not a cost", v.raw(s))
			}
			box.cost = c
			ev.CostUSD = &box.cost
		case kindNull:
		default:
			return fmt.Errorf("cost_usd: want a number or null, got %s", v.raw(s))
		}
		return nil
	}
	key := fieldNames[k]
	switch kind, sp, ip, lp := slot(ev, k); kind {
	case slotString:
		switch v.kind {
		case kindString:
			*sp = v.text(s)
		case kindNull:
		default:
			return fmt.Errorf("%s: want a string, got %s", key, v.raw(s))
		}
	case slotInt, slotInt64:
		switch v.kind {
		case kindNumber:
			n, ok := integer(v.raw(s), v.plain)
			if !ok {
				return fmt.Errorf("%s: want an integer, got %s", key, v.raw(s))
			}
			if ip != nil {
				*ip = int(n)
			} else {
				*lp = n
			}
		case kindNull:
		default:
			return fmt.Errorf("%s: want a number, got %s", key, v.raw(s))
		}
	}
	return nil
}

// integer is the value of the JSON number s if it is an integer in int64's
// range: 1e3 is 1000, 1.5 and 1e19 are not integers. plain says s has no
// fraction or exponent.
func integer(s string, plain bool) (int64, bool) {
	if !plain {
		f, _ := strconv.ParseFloat(s, 64) // ±Inf when out of range
		if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, false
		}
		return int64(f), true
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) > 19 {
		return 0, false
	}
	var u uint64
	for i := 0; i < len(s); i++ {
		u = u*10 + uint64(s[i]-'0') // no overflow: at most 19 digits
	}
	switch {
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	case neg && u <= -math.MinInt64:
		return -int64(u), true
	}
	return 0, false
}
