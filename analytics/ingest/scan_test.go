package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// validEvent is a well-formed attempt event, written as encoding/json does.
const validEvent = `{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j",` +
	`"ts":"2025-01-01T00:00:00.123456789Z","attempt":1,"route":"chat","provider":"alpha","model":"m1","tenant":"t1",` +
	`"status_code":200,"outcome":"ok","fallback":false,"input_tokens":100,"output_tokens":20,"cost_usd":0.0012,` +
	`"queued_ms":0,"ttft_ms":0,"provider_ms":0,"total_ms":0,"duration_ms":25}`

// eventKeys are schemas.Event's JSON keys.
var eventKeys = func() []string {
	var keys []string
	typ := reflect.TypeFor[schemas.Event]()
	for i := range typ.NumField() {
		keys = append(keys, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	return keys
}()

// randText is a string of pieces that exercise JSON string encoding:
// quotes, backslashes, control characters, HTML characters encoding/json
// escapes, multi-byte and astral runes, U+2028, and invalid UTF-8 (which
// encoding/json writes as U+FFFD).
func randText(r *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", "job-", `"`, `\`, "/", "\n", "\t", "\r", "\b", "\f", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "é", "日本", "😀", "𝄞", "\u2028", "\u2029", "\ufffd", "\u0080", "\uffff", "\xff", "\xed\xa0\x80",
		strings.Repeat("x", 40)}
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// randInt64 favours the edges: zero, signs, digit-count boundaries, extremes.
func randInt64(r *rand.Rand) int64 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return []int64{1, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1,
			999999999999999999, 1000000000000000000, -999999999999999999, -1000000000000000000, 1 << 53, 1<<53 + 1}[r.IntN(12)]
	case 2:
		return -r.Int64N(1000)
	case 3:
		return int64(r.Uint64())
	default:
		return r.Int64N(100000)
	}
}

// randCost is nil or a price of any magnitude encoding/json writes.
func randCost(r *rand.Rand) *float64 {
	var c float64
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		c = []float64{0, 5e-324, 1e-7, 0.1, 1e21, 1.7976931348623157e308, 123456789012345678, 2.5e-10}[r.IntN(8)]
	case 2:
		c = float64(r.IntN(1000))
	default:
		c = r.Float64() * math.Pow(10, float64(r.IntN(12)-6))
	}
	return &c
}

// randTS is a time in the range Decode accepts, to the nanosecond, in UTC,
// the local zone or a fixed zone of whole minutes.
func randTS(r *rand.Rand) time.Time {
	lo := time.Date(1971, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2105, 12, 30, 0, 0, 0, 0, time.UTC).Unix()
	nsec := []int64{0, int64(r.IntN(1000)) * 1e6, int64(r.IntN(1e6)) * 1e3, r.Int64N(1e9)}[r.IntN(4)]
	ts := time.Unix(lo+r.Int64N(hi-lo), nsec)
	switch r.IntN(4) {
	case 0:
		return ts.UTC()
	case 1:
		return ts
	default:
		return ts.In(time.FixedZone("Z"+strconv.Itoa(r.IntN(9)), (r.IntN(48*60-1)-(24*60-1))*60))
	}
}

// randEvent is a valid event with random contents.
func randEvent(r *rand.Rand) schemas.Event {
	kind := []string{schemas.EventAttempt, schemas.EventCompletion}[r.IntN(2)]
	job := randText(r) + "j"
	return schemas.Event{V: 1, Kind: kind, EventID: uuid.New(), JobID: job, TS: randTS(r),
		Attempt: int(randInt64(r)), Route: randText(r), Provider: randText(r), Model: randText(r), Tenant: randText(r),
		Tier: randText(r), Task: randText(r), Status: randText(r), StatusCode: int(randInt64(r)), ErrorType: randText(r),
		Outcome: randText(r), Fallback: r.IntN(2) == 0, InputTokens: randInt64(r), OutputTokens: randInt64(r),
		CostUSD: randCost(r), QueuedMS: randInt64(r), TTFTMS: randInt64(r), ProviderMS: randInt64(r),
		TotalMS: randInt64(r), DurationMS: randInt64(r)}
}

// respell writes the JSON data, which encoding/json wrote, differently but
// with the same meaning: whitespace between tokens, and string characters
// written as \u escapes (as surrogate pairs beyond the BMP).
func respell(r *rand.Rand, data []byte) []byte {
	var b bytes.Buffer
	ws := func() {
		for range r.IntN(3) {
			b.WriteByte(" \t\r\n"[r.IntN(4)])
		}
	}
	inString, ascii := false, false
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case inString && c == '\\':
			n := 2
			if data[i+1] == 'u' {
				n = 6
			}
			b.Write(data[i : i+n])
			i += n
			continue
		case inString && c == '"':
			inString = false
		case inString && ascii && r.IntN(4) == 0 || c >= utf8.RuneSelf:
			ru, size := utf8.DecodeRune(data[i:])
			if r1, r2 := utf16.EncodeRune(ru); r1 != utf8.RuneError {
				fmt.Fprintf(&b, `\u%04x\u%04X`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, ru)
			}
			i += size
			continue
		case c == '"':
			// time.Time's UnmarshalJSON does not unescape.
			inString, ascii = true, !bytes.HasSuffix(data[:i], []byte(`"ts":`))
		}
		b.WriteByte(c)
		i++
		if !inString && strings.IndexByte("{[,:", c) >= 0 {
			ws()
		}
	}
	return b.Bytes()
}

// reorder writes the event object data with its keys shuffled, unknown
// keys of any JSON value added, and some keys given first a different
// value that the last one overrides.
func reorder(r *rand.Rand, data []byte) []byte {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		panic(err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	unknown := []string{`{"v":2,"kind":[1,{"a":null}]}`, `[]`, `"ts"`, `-1.5e-3`, `true`, `null`, `[[[{}]]]`, `"\u0076"`}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, `"x_%d":%s,`, i, unknown[r.IntN(len(unknown))])
		}
		if r.IntN(6) == 0 && k != "cost_usd" { // a null cost would clear the pointer in encoding/json
			var other schemas.Event
			if r.IntN(2) == 0 {
				other = randEvent(r)
			}
			o, _ := json.Marshal(other)
			var ofields map[string]json.RawMessage
			_ = json.Unmarshal(o, &ofields)
			if v, ok := ofields[k]; ok {
				fmt.Fprintf(&b, "%q:%s,", k, v)
			}
		}
		fmt.Fprintf(&b, "%q:%s", k, fields[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// variant is data written as encoding/json does, or differently.
func variant(r *rand.Rand, data []byte) []byte {
	switch r.IntN(4) {
	case 0:
		return respell(r, data)
	case 1:
		return reorder(r, data)
	case 2:
		return respell(r, reorder(r, data))
	}
	return data
}

// Decode reads any valid event exactly as encoding/json does, however it
// is written.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		ev := randEvent(r)
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		data = variant(r, data)
		var want schemas.Event
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%d: %s: %v", i, data, err)
		}
		got, err := ingest.Decode(topology.Telemetry(ev.Kind), data)
		if err != nil {
			t.Fatalf("%d: Decode(%s): %v", i, data, err)
		}
		if !reflect.DeepEqual(*got, want) || !got.TS.Equal(ev.TS) {
			t.Fatalf("%d: Decode(%s)\n= %+v\nwant %+v", i, data, *got, want)
		}
	}
}

// A batch of any size decodes to its events, as encoding/json reads them,
// and its bad elements, each with its index and exact JSON text.
func TestDecodeMessageMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	bads := []string{`{"v":9,"kind":"attempt"}`, `1`, `"x"`, `null`, `[]`, `{}`, `[{"v":1}]`, `{"v":1,"kind":"attempt"}`,
		`{"v":1.5}`, `{"cost_usd":-1}`}
	for i := range 500 {
		var elems [][]byte
		var want []schemas.Event
		var wantBad []int
		for j := range 1 + r.IntN(20) {
			if r.IntN(5) == 0 {
				elems = append(elems, []byte(bads[r.IntN(len(bads))]))
				wantBad = append(wantBad, j)
				continue
			}
			data, err := json.Marshal(randEvent(r))
			if err != nil {
				t.Fatal(err)
			}
			data = variant(r, data)
			var ev schemas.Event
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			elems = append(elems, data)
			want = append(want, ev)
		}
		sep := []string{",", " , ", "\n,\t"}[r.IntN(3)]
		data := []byte(" [" + string(bytes.Join(elems, []byte(sep))) + "]\n")
		events, bad, err := ingest.DecodeMessage(topology.TelemetryBatch, data)
		if err != nil {
			t.Fatalf("%d: %s: %v", i, data, err)
		}
		if len(events) != len(want) || len(bad) != len(wantBad) {
			t.Fatalf("%d: %d events and %d bad, want %d and %d", i, len(events), len(bad), len(want), len(wantBad))
		}
		for j, ev := range events {
			if !reflect.DeepEqual(*ev, want[j]) {
				t.Fatalf("%d: event %d = %+v\nwant %+v", i, j, *ev, want[j])
			}
		}
		for j, b := range bad {
			if b.Index != wantBad[j] || !bytes.Equal(b.Raw, elems[b.Index]) || !errors.Is(b.Err, ingest.ErrBadEvent) ||
				!strings.HasPrefix(b.Err.Error(), fmt.Sprintf("event[%d]: ", b.Index)) {
				t.Fatalf("%d: bad[%d] = {%d %s %v}, want element %d %s", i, j, b.Index, b.Raw, b.Err, wantBad[j], elems[wantBad[j]])
			}
		}
	}
}

// Strings decode as encoding/json decodes them, however odd: escapes of
// every kind, unpaired or misordered surrogates, invalid UTF-8.
func TestDecodeStrings(t *testing.T) {
	for _, s := range []string{
		``, `plain`, `\"\\\/\b\f\n\r\t`, `\u0000\u001f\u007f\u0080\u07ff\u0800\uffff`, `\u00e9\u00E9`, `\ud83d\ude00`,
		`\uD834\uDD1E`, `\ud800`, `\udc00`, `\ud800x`, `\ud800\u0041`, `\ud800\ud800\udc00`, `\udc00\ud800`,
		"\xff", "a\xffb", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97", "日本\xe6\x97", "\xef\xbf\xbd", "😀\u2028",
		`\u2028\u2029`, `x\u0041\u0042y`, "\x7f",
	} {
		data := []byte(`{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"` + s +
			`j","route":"` + s + `","ts":"2025-01-01T00:00:00Z"}`)
		var want schemas.Event
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		got, err := ingest.Decode("", data)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("Decode(%q) = %+v, %v\nwant %+v", data, got, err, want)
		}
	}
}

// Integer fields take any JSON number with an integral value in int64's
// range, cost_usd any non-negative number.
func TestDecodeNumbers(t *testing.T) {
	for _, tt := range []struct {
		num  string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"-0", 0, ""},
		{"-0.0", 0, ""},
		{"7", 7, ""},
		{"-7", -7, ""},
		{"1e3", 1000, ""},
		{"1E+3", 1000, ""},
		{"12.5e1", 125, ""},
		{"1000e-3", 1, ""},
		{"1.0", 1, ""},
		{"999999999999999999", 999999999999999999, ""},
		{"-999999999999999999", -999999999999999999, ""},
		{"1000000000000000000", 1000000000000000000, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"-9223372036854775808", math.MinInt64, ""},
		{"-9.223372036854775808e18", math.MinInt64, ""},
		{"4.5e15", 4500000000000000, ""},
		{"9223372036854775808", 0, "want an integer"},
		{"-9223372036854775809", 0, "want an integer"},
		{"9.223372036854775807e18", 0, "want an integer"}, // 2^63 as a float64
		{"18446744073709551616", 0, "want an integer"},
		{"100000000000000000000000", 0, "want an integer"},
		{"1e19", 0, "want an integer"},
		{"1e400", 0, "want an integer"},
		{"1.5", 0, "want an integer"},
		{"1e-1", 0, "want an integer"},
		{`"1"`, 0, "want a number"},
		{"true", 0, "want a number"},
		{"{}", 0, "want a number"},
		{"[1]", 0, "want a number"},
	} {
		for _, key := range []string{"input_tokens", "queued_ms", "attempt", "status_code"} {
			data := strings.TrimSuffix(validEvent, "}") + `,"` + key + `":` + tt.num + "}"
			ev, err := ingest.Decode("", []byte(data))
			if tt.err != "" {
				if !errors.Is(err, ingest.ErrBadEvent) || !strings.Contains(err.Error(), key+": "+tt.err+", got "+tt.num) {
					t.Fatalf("%s %s: err = %v, want %q", key, tt.num, err, tt.err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", key, tt.num, err)
			}
			got := map[string]int64{"input_tokens": ev.InputTokens, "queued_ms": ev.QueuedMS, "attempt": int64(ev.Attempt),
				"status_code": int64(ev.StatusCode)}[key]
			if got != tt.want {
				t.Fatalf("%s %s = %d, want %d", key, tt.num, got, tt.want)
			}
		}
	}
	for _, tt := range []struct {
		num  string
		want float64
		err  string
	}{
		{"0", 0, ""},
		{"-0", 0, ""},
		{"0.0012", 0.0012, ""},
		{"1e-7", 1e-7, ""},
		{"5e-324", 5e-324, ""},
		{"1.7976931348623157e308", math.MaxFloat64, ""},
		{"12", 12, ""},
		{"-1e-9", 0, "cost_usd: -1e-9 is not a cost"},
		{"1e309", 0, "cost_usd: 1e309 is not a cost"},
		{`"0.1"`, 0, `cost_usd: want a number or null, got "0.1"`},
		{`false`, 0, `cost_usd: want a number or null, got false`},
	} {
		data := strings.Replace(validEvent, `"cost_usd":0.0012`, `"cost_usd":`+tt.num, 1)
		ev, err := ingest.Decode("", []byte(data))
		switch {
		case tt.err != "":
			if !errors.Is(err, ingest.ErrBadEvent) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("cost %s: err = %v, want %q", tt.num, err, tt.err)
			}
		case err != nil:
			t.Fatalf("cost %s: %v", tt.num, err)
		case ev.CostUSD == nil || *ev.CostUSD != tt.want:
			t.Fatalf("cost %s = %v, want %v", tt.num, ev.CostUSD, tt.want)
		}
	}
}

// Keys match exactly, null leaves a field as it was, the last of a
// repeated key counts, and the first bad field is the one reported.
func TestDecodeKeys(t *testing.T) {
	for _, tt := range []struct{ name, more, want string }{
		{"case differs", `"attempt":7,"Attempt":5,"ATTEMPT":6,"Job_ID":"x","Cost_USD":1`, ""},
		{"escaped key", `"\u0061ttempt":7`, ""},
		{"repeated", `"attempt":3,"job_id":"x","attempt":7,"job_id":"j"`, ""},
		{"null keeps", `"attempt":7,"attempt":null,"job_id":null,"cost_usd":null,"v":null,"ts":null,"event_id":null,"kind":null`, ""},
		{"bad then good", `"attempt":"x","attempt":7`, `attempt: want a number, got "x"`},
		{"first bad", `"attempt":7,"route":1,"model":2`, `route: want a string, got 1`},
		{"bad then broken", `"attempt":7,"route":1,"model":01`, `invalid JSON`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ingest.Decode("", []byte(strings.TrimSuffix(validEvent, "}")+","+tt.more+"}"))
			switch {
			case tt.want != "":
				if !errors.Is(err, ingest.ErrBadEvent) || !strings.HasSuffix(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
			case err != nil:
				t.Fatal(err)
			case ev.Attempt != 7 || ev.JobID != "j" || ev.CostUSD == nil || *ev.CostUSD != 0.0012:
				t.Fatalf("attempt %d, job_id %q, cost_usd %v", ev.Attempt, ev.JobID, ev.CostUSD)
			}
		})
	}
}

// Any JSON that is not valid is rejected as such, wherever the fault is,
// also as one element of a batch, which is rejected whole.
func TestDecodeStrictJSON(t *testing.T) {
	ok := strings.TrimSuffix(validEvent, "}")
	faults := []string{
		`01`, `-01`, `1.`, `-`, `+1`, `.5`, `1e`, `1e+`, `1.e3`, `--1`, `0x10`, `1.5.5`, `NaN`, `Infinity`, `-Infinity`,
		`tru`, `nul`, `falsy`, `True`, `'a'`, `"a`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, `"a` + "\t" + `b"`,
		`"` + "\x00" + `"`, `"\` + "\n" + `"`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{1:2}`, `{"a"}`,
		`{,}`, `[`, `{`, `]`, `}`, `"\ud800\"`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	}
	var inputs []string
	for _, f := range faults {
		inputs = append(inputs, ok+`,"x":`+f+`}`, ok+`,"input_tokens":`+f+`}`, ok+`,"job_id":`+f+`}`, ok+`,"cost_usd":`+f+`}`)
	}
	inputs = append(inputs, "", " ", ok, ok+"}}", ok+"},", ok+"} x", ok+"}{}", "x"+ok+"}", ok+`,}`, ok+`,"a"}`,
		ok+`,"a":1 "b":2}`, ok+`,"a":1,,"b":2}`, ok+`,"a`+"\x01"+`":1}`, ok+`,"a\q":1}`, "\ufeff"+ok+"}", ok+"}\x00", ok+"}\v")
	for _, in := range inputs {
		if json.Valid([]byte(in)) {
			t.Fatalf("test input %q is valid JSON", in)
		}
		_, err := ingest.Decode("", []byte(in))
		if !errors.Is(err, ingest.ErrBadEvent) || !strings.HasSuffix(err.Error(), ": invalid JSON") {
			t.Fatalf("Decode(%.200q): err = %v, want invalid JSON", in, err)
		}
		batch := "[" + validEvent + "," + in + "]"
		if _, _, err := ingest.DecodeMessage(topology.TelemetryBatch, []byte(batch)); !errors.Is(err, ingest.ErrBadEvent) ||
			!strings.HasSuffix(err.Error(), ": invalid JSON") {
			t.Fatalf("DecodeMessage(%.200q): err = %v, want invalid JSON", batch, err)
		}
	}
	// At the edges of validity: accepted.
	for _, in := range []string{
		" \t\r\n" + ok + ` , "x" : { "a" : [ 1 , -0.5e+3 , true , false , null , "\u00e9\/" , { } , [ ] ] } }` + " \n",
		ok + `,"x":"` + "\x7f\u00e9\ufffd" + `"}`,
	} {
		if !json.Valid([]byte(in)) {
			t.Fatalf("test input %q is not valid JSON", in)
		}
		if _, err := ingest.Decode("", []byte(in)); err != nil {
			t.Fatalf("Decode(%q): %v", in, err)
		}
		if _, _, err := ingest.DecodeMessage(topology.TelemetryBatch, []byte("["+in+"]")); err != nil {
			t.Fatalf("DecodeMessage([%q]): %v", in, err)
		}
	}
	// Nesting is limited to encoding/json's 10000 levels, counting the
	// event's object and a batch's array.
	in := ok + `,"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`
	if _, err := ingest.Decode("", []byte(in)); err != nil || !json.Valid([]byte(in)) {
		t.Fatalf("10000 levels: %v", err)
	}
	batch := "[" + in + "]"
	if _, _, err := ingest.DecodeMessage(topology.TelemetryBatch, []byte(batch)); json.Valid([]byte(batch)) ||
		!strings.HasSuffix(fmt.Sprint(err), ": invalid JSON") {
		t.Fatalf("10001 levels: %v", err)
	}
}

// comparable reports whether encoding/json must read the event object data
// as Decode does: its keys are field names or match none even ignoring
// case, as encoding/json matches them, and cost_usd, which encoding/json
// clears on null, is not repeated.
func comparable(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	costs := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key := tok.(string)
		for _, name := range eventKeys {
			if key != name && strings.EqualFold(key, name) {
				return false
			}
		}
		if key == "cost_usd" {
			costs++
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return costs <= 1
}

// checkDecode checks Decode and DecodeMessage against encoding/json on any
// input (see FuzzDecode).
func checkDecode(t *testing.T, data []byte) {
	valid := json.Valid(data)
	invalid := func(err error) bool { return err != nil && strings.HasSuffix(err.Error(), ": invalid JSON") }

	ev, err := ingest.Decode("", data)
	if err != nil && !errors.Is(err, ingest.ErrBadEvent) {
		t.Fatalf("Decode: %v does not wrap ErrBadEvent", err)
	}
	if invalid(err) == valid {
		t.Fatalf("Decode: err = %v, but json.Valid = %v", err, valid)
	}
	var want schemas.Event
	stdErr := json.Unmarshal(data, &want)
	if err == nil && stdErr == nil && comparable(data) && !reflect.DeepEqual(*ev, want) {
		t.Fatalf("Decode = %+v\nencoding/json: %+v", *ev, want)
	}
	// What encoding/json reads as a good event Decode reads too.
	if err != nil && stdErr == nil && comparable(data) && want.V == schemas.Version &&
		(want.Kind == schemas.EventAttempt || want.Kind == schemas.EventCompletion) && want.EventID != uuid.Nil &&
		want.JobID != "" && want.TS.Year() >= 1971 && want.TS.Year() <= 2105 && (want.CostUSD == nil || *want.CostUSD >= 0) {
		t.Fatalf("Decode: %v, but encoding/json reads %+v", err, want)
	}

	events, bad, err := ingest.DecodeMessage(topology.TelemetryBatch, data)
	if err != nil && !errors.Is(err, ingest.ErrBadEvent) {
		t.Fatalf("DecodeMessage: %v does not wrap ErrBadEvent", err)
	}
	if invalid(err) == valid {
		t.Fatalf("DecodeMessage: err = %v, but json.Valid = %v", err, valid)
	}
	if err != nil {
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		t.Fatalf("DecodeMessage read a batch encoding/json cannot: %v", err)
	}
	if len(events)+len(bad) != len(elems) {
		t.Fatalf("DecodeMessage: %d events, %d bad of %d elements", len(events), len(bad), len(elems))
	}
	// Each element reads as Decode reads it alone.
	for i, elem := range elems {
		one, err := ingest.Decode("", elem)
		if err != nil {
			if len(bad) == 0 || bad[0].Index != i || !bytes.Equal(bad[0].Raw, elem) ||
				bad[0].Err.Error() != fmt.Sprintf("event[%d]: %v", i, err) || !errors.Is(bad[0].Err, ingest.ErrBadEvent) {
				t.Fatalf("element %d %s: Decode: %v, DecodeMessage bad: %+v", i, elem, err, bad)
			}
			bad = bad[1:]
			continue
		}
		if len(events) == 0 || !reflect.DeepEqual(*events[0], *one) {
			t.Fatalf("element %d %s: Decode = %+v, DecodeMessage events: %v", i, elem, *one, events)
		}
		events = events[1:]
	}
}

// FuzzDecode checks on any input that Decode and DecodeMessage never panic,
// reject exactly the inputs that are not valid JSON, read events as
// encoding/json does where it reads them alike, and read a batch's elements
// as Decode reads each alone. Run it with
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./analytics/ingest/
func FuzzDecode(f *testing.F) {
	ok := `"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"2025-01-01T00:00:00Z"`
	for _, s := range []string{
		`{"v":1,`, `[1]`, `{"v":2,` + ok + `}`, `{` + ok + `}`,
		`{"v":1,"kind":"x","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"2025-01-01T00:00:00Z"}`,
		`{"v":1,"kind":"attempt","event_id":"nope","job_id":"j","ts":"2025-01-01T00:00:00Z"}`,
		`{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","ts":"2025-01-01T00:00:00Z"}`,
		`{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"yesterday"}`,
		`{"v":1,` + ok + `,"input_tokens":"12"}`, `{"v":1,` + ok + `,"input_tokens":1.5}`,
		`{"v":1,` + ok + `,"cost_usd":-1}`, `{"v":1,` + ok + `,"fallback":"yes"}`,
		`{"v":1,` + ok + `,"cost_usd":null,"extra":{"x":1}}`, `[{"v":1`, `[]`, `[` + validEvent + `,{"v":9,"kind":"attempt"},1]`,
		validEvent, `[` + validEvent + `]`, `{"v":1e0,` + ok + `,"Attempt":2,"job_id":"\ud83d\ude00\u00e9\"","input_tokens":-0}`,
		`{"v":1,` + ok + `,"ts":"2025-01-01T00:00:00.5+05:30","tenant":"a` + "\xff" + `"}`,
	} {
		f.Add([]byte(s))
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 10 {
		data, err := json.Marshal(randEvent(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(variant(r, data))
	}
	f.Fuzz(checkDecode)
}

// BenchmarkDecode measures decoding one event on its kind's subject and a
// batch of two (an attempt and its completion, as one job hop publishes).
func BenchmarkDecode(b *testing.B) {
	evs := benchEvents(2, time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC))
	one, err := json.Marshal(evs[0])
	if err != nil {
		b.Fatal(err)
	}
	batch, err := json.Marshal(evs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("event", func(b *testing.B) {
		subject := topology.Telemetry(schemas.EventAttempt)
		b.SetBytes(int64(len(one)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ingest.Decode(subject, one); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch2", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			events, bad, err := ingest.DecodeMessage(topology.TelemetryBatch, batch)
			if err != nil || len(bad) != 0 || len(events) != 2 {
				b.Fatal(events, bad, err)
			}
		}
	})
}

// BenchmarkDecoders runs the hand-written decoder and the library ones
// (export_test.go) side by side on the real telemetry shapes: one event on
// its kind's subject, and a job hop's batch (attempt + completion).
func BenchmarkDecoders(b *testing.B) {
	evs := benchEvents(2, time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC))
	one, _ := json.Marshal(evs[0])
	batch, _ := json.Marshal(evs)
	decoders := map[string]func(string, []byte) ([]*schemas.Event, []ingest.BadEvent, error){"hand": ingest.DecodeMessage}
	for name, d := range ingest.LibDecoders {
		decoders[name] = d
	}
	for _, shape := range []struct {
		name, subject string
		data          []byte
		n             int
	}{{"event", topology.Telemetry(schemas.EventAttempt), one, 1}, {"batch2", topology.TelemetryBatch, batch, 2}} {
		for _, name := range []string{"hand", "sonic", "go_json", "encoding_json"} {
			decode := decoders[name]
			b.Run(shape.name+"/"+name, func(b *testing.B) {
				if events, bad, err := decode(shape.subject, shape.data); err != nil || len(bad) != 0 || len(events) != shape.n ||
					!reflect.DeepEqual(*events[0], evs[0]) {
					b.Fatalf("%s: %v %v %v", name, events, bad, err)
				}
				b.SetBytes(int64(len(shape.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := decode(shape.subject, shape.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
