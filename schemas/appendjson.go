package schemas

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// Every job hop's message, telemetry and Result are encoded with the
// appenders below instead of encoding/json's reflection: the same bytes
// (field order, omitempty, string escaping, number and time formats; the
// tests in appendjson_test.go compare them with encoding/json's on table
// and random values), several times faster and without allocations. A
// value encoding/json refuses (a NaN or infinite cost, a time outside years
// 0–9999, a response that is not JSON) is refused the same way, with
// encoding/json's error.

// AppendEvents appends events as encoding/json encodes the slice.
func AppendEvents(dst []byte, events []Event) ([]byte, error) {
	return appendOr(dst, events, appendEvents)
}

// appendOr appends v with the fast appender or, when that declines a value,
// as encoding/json encodes v (or returns its error, dst as it was).
func appendOr[T any](dst []byte, v T, fast func([]byte, T) ([]byte, bool)) ([]byte, error) {
	if out, ok := fast(dst, v); ok {
		return out, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, data...), nil
}

func appendEvents(b []byte, events []Event) ([]byte, bool) {
	return appendArray(b, events, appendEvent)
}

// appendArray appends items as a JSON array, each with appendItem; false
// when that declines one.
func appendArray[T any](b []byte, items []T, appendItem func([]byte, *T) ([]byte, bool)) ([]byte, bool) {
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendItem(b, &items[i]); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// appendEvent appends one event's object; false when a value needs
// encoding/json.
func appendEvent(b []byte, e *Event) ([]byte, bool) {
	var ok bool
	b = appendIntField(b, `{"v":`, int64(e.V))
	b = appendStringField(b, `,"kind":`, e.Kind, false)
	b = append(b, `,"event_id":"`...)
	var id [36]byte
	hexUUID(id[:], e.EventID)
	b = append(append(b, id[:]...), '"')
	b = appendStringField(b, `,"job_id":`, e.JobID, false)
	b = append(b, `,"ts":`...)
	if b, ok = appendTime(b, e.TS); !ok {
		return b, false
	}
	b = appendIntField(b, `,"attempt":`, int64(e.Attempt))
	b = appendStringField(b, `,"route":`, e.Route, true)
	b = appendStringField(b, `,"provider":`, e.Provider, true)
	b = appendStringField(b, `,"model":`, e.Model, true)
	b = appendStringField(b, `,"tenant":`, e.Tenant, true)
	b = appendStringField(b, `,"tier":`, e.Tier, true)
	b = appendStringField(b, `,"task":`, e.Task, true)
	b = appendStringField(b, `,"status":`, e.Status, true)
	if e.StatusCode != 0 {
		b = appendIntField(b, `,"status_code":`, int64(e.StatusCode))
	}
	b = appendStringField(b, `,"error_type":`, e.ErrorType, true)
	b = appendStringField(b, `,"outcome":`, e.Outcome, true)
	b = append(b, `,"fallback":`...)
	b = strconv.AppendBool(b, e.Fallback)
	b = appendIntField(b, `,"input_tokens":`, e.InputTokens)
	b = appendIntField(b, `,"output_tokens":`, e.OutputTokens)
	b = append(b, `,"cost_usd":`...)
	if e.CostUSD == nil {
		b = append(b, "null"...)
	} else if b, ok = appendFloat(b, *e.CostUSD); !ok {
		return b, false
	}
	b = appendIntField(b, `,"queued_ms":`, e.QueuedMS)
	b = appendIntField(b, `,"ttft_ms":`, e.TTFTMS)
	b = appendIntField(b, `,"provider_ms":`, e.ProviderMS)
	b = appendIntField(b, `,"total_ms":`, e.TotalMS)
	b = appendIntField(b, `,"duration_ms":`, e.DurationMS)
	b = appendStringField(b, `,"request_body":`, e.RequestBody, true)
	b = appendStringField(b, `,"response_body":`, e.ResponseBody, true)
	return append(b, '}'), true
}

func appendIntField(b []byte, name string, v int64) []byte {
	return strconv.AppendInt(append(b, name...), v, 10)
}

// appendStringField appends name and s as a JSON string; with omitEmpty,
// nothing for "".
func appendStringField(b []byte, name, s string, omitEmpty bool) []byte {
	if omitEmpty && s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendString quotes s as encoding/json does. Printable ASCII other than
// the characters it escapes (", \ and, for HTML, <, > and &) is copied; a
// string with anything else goes through encoding/json, which escapes
// control characters, replaces invalid UTF-8 and escapes U+2028/U+2029.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds); false for what it refuses: a year outside 0–9999, a zone
// offset of 24 hours or more.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	if b[len(b)-1] != 'Z' {
		zone := b[len(b)-len("-07:00"):]
		if c := zone[0]; (c != '+' && c != '-') || 10*(zone[1]-'0')+(zone[2]-'0') >= 24 {
			return b, false
		}
	}
	return append(b, '"'), true
}

// appendFloat appends f as encoding/json formats a float64 (the shortest
// decimal, exponent form below 1e-6 and from 1e21); false for NaN and
// infinities, which it refuses.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// hexUUID writes id in its canonical 36-character form.
func hexUUID(dst []byte, id [16]byte) {
	hex.Encode(dst[0:8], id[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], id[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], id[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], id[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], id[10:])
}

// AppendResult appends r as encoding/json encodes it.
func AppendResult(dst []byte, r *Result) ([]byte, error) { return appendOr(dst, r, appendResult) }

func appendResult(b []byte, r *Result) ([]byte, bool) {
	var ok bool
	b = appendIntField(b, `{"v":`, int64(r.V))
	b = appendStringField(b, `,"id":`, r.ID, false)
	b = appendStringField(b, `,"status":`, r.Status, false)
	if len(r.Response) > 0 {
		b = append(b, `,"response":`...)
		if b, ok = appendRaw(b, r.Response); !ok {
			return b, false
		}
	}
	if e := r.Error; e != nil {
		b = appendStringField(b, `,"error":{"type":`, e.Type, false)
		b = appendStringField(b, `,"message":`, e.Message, false)
		if e.StatusCode != 0 {
			b = appendIntField(b, `,"status_code":`, int64(e.StatusCode))
		}
		b = appendStringField(b, `,"code":`, e.Code, true)
		b = append(b, '}')
	}
	b = appendStringField(b, `,"route":`, r.Route, true)
	b = appendStringField(b, `,"provider":`, r.Provider, true)
	b = appendStringField(b, `,"model":`, r.Model, true)
	b = append(b, `,"attempts":`...)
	if r.Attempts == nil {
		b = append(b, "null"...)
	} else if b, ok = appendAttempts(b, r.Attempts); !ok {
		return b, false
	}
	b = appendIntField(b, `,"usage":{"input_tokens":`, r.Usage.InputTokens)
	b = appendIntField(b, `,"output_tokens":`, r.Usage.OutputTokens)
	b = append(b, `},"cost_usd":`...)
	if r.CostUSD == nil {
		b = append(b, "null"...)
	} else if b, ok = appendFloat(b, *r.CostUSD); !ok {
		return b, false
	}
	b = appendIntField(b, `,"timings":{"queued_ms":`, r.Timings.QueuedMS)
	b = appendIntField(b, `,"ttft_ms":`, r.Timings.TTFTMS)
	b = appendIntField(b, `,"provider_ms":`, r.Timings.ProviderMS)
	b = appendIntField(b, `,"total_ms":`, r.Timings.TotalMS)
	b = append(b, '}')
	if len(r.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendMetadata(b, r.Metadata)
	}
	return append(b, '}'), true
}

func appendAttempts(b []byte, attempts []Attempt) ([]byte, bool) {
	return appendArray(b, attempts, appendAttempt)
}

func appendAttempt(b []byte, a *Attempt) ([]byte, bool) {
	var ok bool
	b = appendStringField(b, `{"provider":`, a.Provider, false)
	b = appendStringField(b, `,"model":`, a.Model, false)
	b = append(b, `,"started_at":`...)
	if b, ok = appendTime(b, a.StartedAt); !ok {
		return b, false
	}
	b = appendIntField(b, `,"duration_ms":`, a.DurationMS)
	if a.StatusCode != 0 {
		b = appendIntField(b, `,"status_code":`, int64(a.StatusCode))
	}
	b = appendStringField(b, `,"error_type":`, a.ErrorType, true)
	b = appendStringField(b, `,"error_message":`, a.ErrorMessage, true)
	b = appendStringField(b, `,"outcome":`, a.Outcome, false)
	if a.InputTokens != 0 {
		b = appendIntField(b, `,"input_tokens":`, a.InputTokens)
	}
	if a.OutputTokens != 0 {
		b = appendIntField(b, `,"output_tokens":`, a.OutputTokens)
	}
	return append(b, '}'), true
}

// appendMetadata appends labels (or headers) as encoding/json encodes a map
// of strings: keys sorted.
func appendMetadata(b []byte, m map[string]string) []byte {
	var onStack [8]string
	keys := onStack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendRaw appends a raw JSON value as encoding/json does: compacted, with
// <, >, &, U+2028 and U+2029 escaped (json.HTMLEscape; in valid JSON they
// only occur inside strings); false when it is not valid JSON.
func appendRaw(b []byte, raw []byte) ([]byte, bool) {
	buf := bytes.NewBuffer(b)
	start := len(b)
	if err := json.Compact(buf, raw); err != nil {
		return b, false
	}
	out := buf.Bytes()
	if !needsHTMLEscape(out[start:]) {
		return out, true
	}
	compact := append([]byte(nil), out[start:]...)
	buf.Truncate(start)
	json.HTMLEscape(buf, compact)
	return buf.Bytes(), true
}

// needsHTMLEscape reports whether b holds <, >, &, U+2028 or U+2029.
func needsHTMLEscape(b []byte) bool {
	for i, c := range b {
		switch c {
		case '<', '>', '&':
			return true
		case 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
			if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
				return true
			}
		}
	}
	return false
}

// AppendJob appends job as encoding/json encodes it.
func AppendJob(dst []byte, job *Job) ([]byte, error) { return appendOr(dst, job, appendJob) }

func appendJob(b []byte, j *Job) ([]byte, bool) {
	var ok bool
	b = appendIntField(b, `{"v":`, int64(j.V))
	b = appendStringField(b, `,"id":`, j.ID, false)
	b = appendStringField(b, `,"route":`, j.Route, true)
	b = appendStringField(b, `,"model":`, j.Model, true)
	b = appendStringField(b, `,"kind":`, j.Kind, true)
	b = append(b, `,"request":`...)
	if b, ok = appendRawOrNull(b, j.Request); !ok {
		return b, false
	}
	if n := j.Native; n != nil {
		b = appendStringField(b, `,"native":{"format":`, n.Format, false)
		b = append(b, `,"body":`...)
		if b, ok = appendRawOrNull(b, n.Body); !ok {
			return b, false
		}
		if len(n.Headers) > 0 {
			b = appendMetadata(append(b, `,"headers":`...), n.Headers)
		}
		b = append(b, '}')
	}
	if len(j.Metadata) > 0 {
		b = appendMetadata(append(b, `,"metadata":`...), j.Metadata)
	}
	b = appendStringField(b, `,"priority":`, j.Priority, true)
	if j.Deadline != nil {
		b = append(b, `,"deadline":`...)
		if b, ok = appendTime(b, *j.Deadline); !ok {
			return b, false
		}
	}
	b = appendStringField(b, `,"batch":`, j.Batch, true)
	b = appendStringField(b, `,"reply":`, j.Reply, true)
	if j.Stream {
		b = append(b, `,"stream":true`...)
	}
	if len(j.Plan) > 0 {
		b = append(b, `,"plan":[`...)
		for i, t := range j.Plan {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStringField(b, `{"provider":`, t.Provider, false)
			b = appendStringField(b, `,"model":`, t.Model, false)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if j.Hop != 0 {
		b = appendIntField(b, `,"hop":`, int64(j.Hop))
	}
	if len(j.Attempts) > 0 {
		if b, ok = appendAttempts(append(b, `,"attempts":`...), j.Attempts); !ok {
			return b, false
		}
	}
	b = append(b, `,"created_at":`...)
	if b, ok = appendTime(b, j.CreatedAt); !ok {
		return b, false
	}
	if c := j.Continuation; c != nil {
		b = appendStringField(b, `,"continuation":{"text":`, c.Text, false)
		b = appendIntField(b, `,"chunks":`, c.Chunks)
		if c.InputTokens != 0 {
			b = appendIntField(b, `,"input_tokens":`, c.InputTokens)
		}
		if c.OutputTokens != 0 {
			b = appendIntField(b, `,"output_tokens":`, c.OutputTokens)
		}
		if !c.FirstChunkAt.IsZero() {
			b = append(b, `,"first_chunk_at":`...)
			if b, ok = appendTime(b, c.FirstChunkAt); !ok {
				return b, false
			}
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// appendRawOrNull is appendRaw for a field without omitempty: an empty raw
// value is null.
func appendRawOrNull(b []byte, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return append(b, "null"...), true
	}
	return appendRaw(b, raw)
}
