package schemas

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func sampleEvents() []Event {
	cost := 0.00012
	ts := time.Date(2026, 12, 3, 11, 4, 5, 123456789, time.UTC)
	attempt := Event{V: Version, Kind: EventAttempt, EventID: AttemptEventID("job-1", 1, ts), JobID: "job-1", TS: ts, Attempt: 1,
		Route: "chat", Provider: "openai", Model: "gpt-4o-mini", Tenant: "acme", Tier: "pro", Task: "summarize",
		StatusCode: 200, Outcome: OutcomeOK, InputTokens: 12, OutputTokens: 30, CostUSD: &cost, DurationMS: 3}
	completion := attempt
	completion.Kind, completion.Outcome, completion.Status, completion.StatusCode = EventCompletion, "", StatusSucceeded, 0
	completion.QueuedMS, completion.TTFTMS, completion.ProviderMS, completion.TotalMS = 1, 2, 3, 5
	return []Event{attempt, completion}
}

// checkCases encodes each case with appendFn after a prefix and with
// encoding/json, and compares the bytes.
func checkCases[T any](t *testing.T, cases map[string]T, appendFn func([]byte, T) ([]byte, error)) {
	t.Helper()
	for name, v := range cases {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := appendFn([]byte("prefix"), v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("%s:\n got %s\nwant prefix%s", name, got, want)
		}
	}
}

// AppendEvents writes the bytes encoding/json writes for the same slice,
// whatever the values: the ingester and ClickHouse see no difference.
func TestAppendEventsMatchesEncodingJSON(t *testing.T) {
	base := sampleEvents()
	with := func(f func(e *Event)) []Event {
		evs := append([]Event(nil), base...)
		f(&evs[0])
		return evs
	}
	f := func(v float64) *float64 { return &v }
	cases := map[string][]Event{
		"hop":            base,
		"empty":          {},
		"zero event":     {{}},
		"nil cost":       with(func(e *Event) { e.CostUSD = nil }),
		"zero cost":      with(func(e *Event) { e.CostUSD = f(0) }),
		"negative zero":  with(func(e *Event) { e.CostUSD = f(math.Copysign(0, -1)) }),
		"tiny cost":      with(func(e *Event) { e.CostUSD = f(1.5e-7) }),
		"tiny exp 2dig":  with(func(e *Event) { e.CostUSD = f(3e-12) }),
		"huge cost":      with(func(e *Event) { e.CostUSD = f(2.5e21) }),
		"huge exp 3dig":  with(func(e *Event) { e.CostUSD = f(1e300) }),
		"round cost":     with(func(e *Event) { e.CostUSD = f(100) }),
		"fraction cost":  with(func(e *Event) { e.CostUSD = f(0.1 + 0.2) }),
		"html":           with(func(e *Event) { e.Tenant, e.Task = "a<b>&c", `q"uote\back` }),
		"control chars":  with(func(e *Event) { e.RequestBody = "line\nbreak\ttab\x01\x7f" }),
		"unicode":        with(func(e *Event) { e.ResponseBody = "héllo ✓ \u2028\u2029 😀" }),
		"invalid utf8":   with(func(e *Event) { e.Model = "bad\xff\xfe" }),
		"bodies":         with(func(e *Event) { e.RequestBody, e.ResponseBody = `{"messages":[]}`, `{"choices":[]}` }),
		"fallback":       with(func(e *Event) { e.Fallback, e.ErrorType, e.Outcome = true, ErrRateLimited, OutcomeFallback }),
		"negative ints":  with(func(e *Event) { e.Attempt, e.StatusCode, e.DurationMS, e.V = -1, -500, -7, -2 }),
		"local time":     with(func(e *Event) { e.TS = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 5*3600+1800)) }),
		"zone -23:59":    with(func(e *Event) { e.TS = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(23*3600+59*60))) }),
		"zone seconds":   with(func(e *Event) { e.TS = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600+30)) }),
		"zero time":      with(func(e *Event) { e.TS = time.Time{} }),
		"year 9999":      with(func(e *Event) { e.TS = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) }),
		"monotonic time": with(func(e *Event) { e.TS = time.Now() }),
	}
	checkCases(t, cases, AppendEvents)
}

// checkRefused applies each case to a fresh sample and checks that
// encoding/json refuses the value (else the case tests nothing) and that
// appendFn refuses it with the same error, leaving dst as it was.
func checkRefused[T any](t *testing.T, sample func() T, cases map[string]func(T), appendFn func([]byte, T) ([]byte, error)) {
	t.Helper()
	for name, f := range cases {
		v := sample()
		f(v)
		_, want := json.Marshal(v)
		if want == nil {
			t.Fatalf("%s: encoding/json accepts it; the case tests nothing", name)
		}
		got, err := appendFn([]byte("prefix"), v)
		if err == nil || err.Error() != want.Error() {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
		if string(got) != "prefix" {
			t.Errorf("%s: dst became %q", name, got)
		}
	}
}

// A value encoding/json refuses is refused, and dst is left as it was.
func TestAppendEventsRefusesWhatEncodingJSONRefuses(t *testing.T) {
	checkRefused(t, sampleEvents, map[string]func([]Event){
		"NaN cost":      func(evs []Event) { v := math.NaN(); evs[1].CostUSD = &v },
		"infinite cost": func(evs []Event) { v := math.Inf(1); evs[1].CostUSD = &v },
		"year 10000":    func(evs []Event) { evs[1].TS = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1":       func(evs []Event) { evs[1].TS = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zone +25h":     func(evs []Event) { evs[1].TS = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 25*3600)) },
		"zone -100h":    func(evs []Event) { evs[1].TS = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -100*3600)) },
	}, AppendEvents)
}

// Random events, every field set by reflection, encode as encoding/json
// encodes them: a field added to Event and not to appendEvent fails here.
func TestAppendEventsCoversEveryField(t *testing.T) {
	checkRandom(t, 1, func(dst []byte, e *Event) ([]byte, error) { return appendOr(dst, e, appendEvent) })
}

func sampleResult() *Result {
	cost := 0.000042
	started := time.Date(2026, 12, 3, 11, 4, 5, 120000000, time.UTC)
	return &Result{V: Version, ID: "0193a4c2-7d1e-7f00-8000-000000000001", Status: StatusSucceeded,
		Response: json.RawMessage(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":30}}`),
		Route:    "chat", Provider: "openai", Model: "gpt-4o-mini",
		Attempts: []Attempt{{Provider: "openai", Model: "gpt-4o-mini", StartedAt: started, DurationMS: 3, StatusCode: 200, Outcome: OutcomeOK, InputTokens: 12, OutputTokens: 30}},
		Usage:    Usage{InputTokens: 12, OutputTokens: 30}, CostUSD: &cost,
		Timings:  Timings{QueuedMS: 1, TTFTMS: 4, ProviderMS: 3, TotalMS: 5},
		Metadata: Metadata{MetaTenant: "acme", MetaTier: "pro"}}
}

// AppendResult writes the bytes encoding/json writes for the same Result.
func TestAppendResultMatchesEncodingJSON(t *testing.T) {
	with := func(f func(r *Result)) *Result {
		r := sampleResult()
		f(r)
		return r
	}
	cases := map[string]*Result{
		"succeeded": sampleResult(),
		"zero":      {},
		"failed": with(func(r *Result) {
			r.Status, r.Response, r.CostUSD, r.Usage = StatusFailed, nil, nil, Usage{}
			r.Error = &ErrorInfo{Type: ErrRateLimited, Message: "429 <too> many & more", StatusCode: 429, Code: "rate_limit"}
			r.Attempts = append(r.Attempts, Attempt{Provider: "b", Model: "m", StartedAt: time.Now(), ErrorType: ErrTimeout, ErrorMessage: "deadline \"passed\"\n", Outcome: OutcomeFallback})
		}),
		"bare error":     with(func(r *Result) { r.Error = &ErrorInfo{} }),
		"empty attempts": with(func(r *Result) { r.Attempts = []Attempt{} }),
		"nil attempts":   with(func(r *Result) { r.Attempts = nil }),
		"empty metadata": with(func(r *Result) { r.Metadata = Metadata{} }),
		"many metadata": with(func(r *Result) {
			r.Metadata = Metadata{}
			for i := range 12 {
				r.Metadata[strings.Repeat("k", 12-i)] = strings.Repeat("v<", i)
			}
		}),
		"escaped metadata": with(func(r *Result) { r.Metadata = Metadata{"a&b": "x\xffy", "": "\u2028", "c": "\t"} }),
		"spaced response":  with(func(r *Result) { r.Response = json.RawMessage(" {\n \"a\" : [1, 2 ,3],\t\"b\": \"x y\" } ") }),
		"html response":    with(func(r *Result) { r.Response = json.RawMessage(`{"content":"<b>&amp;</b> \u2028 \u003c"}`) }),
		"null response":    with(func(r *Result) { r.Response = json.RawMessage(`null`) }),
		"string response":  with(func(r *Result) { r.Response = json.RawMessage(`"just text"`) }),
		"unicode response": with(func(r *Result) { r.Response = json.RawMessage("{\"t\":\"héllo 😀 \u2029\"}") }),
		"tiny cost":        with(func(r *Result) { c := 7e-9; r.CostUSD = &c }),
		"local started": with(func(r *Result) {
			r.Attempts[0].StartedAt = time.Date(2026, 1, 1, 0, 0, 0, 1, time.FixedZone("", -3600))
		}),
	}
	checkCases(t, cases, AppendResult)
}

// What encoding/json refuses, AppendResult refuses with its error, and dst
// keeps what it held.
func TestAppendResultRefusesWhatEncodingJSONRefuses(t *testing.T) {
	checkRefused(t, sampleResult, map[string]func(*Result){
		"broken response":  func(r *Result) { r.Response = json.RawMessage(`{"a":`) },
		"two values":       func(r *Result) { r.Response = json.RawMessage(`{} {}`) },
		"NaN cost":         func(r *Result) { c := math.NaN(); r.CostUSD = &c },
		"attempt year 1e4": func(r *Result) { r.Attempts[0].StartedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	}, AppendResult)
}

// fillRandom sets v from rng, recursing into the structs, slices, maps and
// pointers of a Job, Result or Event; a kind it does not know fails the
// test, so a field added to any type they hold is covered here before it
// can be missed by its appender.
func fillRandom(t *testing.T, rng *rand.Rand, v reflect.Value) {
	t.Helper()
	words := []string{"", "a", "chat", "gpt-4o", "t<1>", "x&y", "é", "\x00", "\u2028", "tenant"}
	switch v.Kind() {
	case reflect.String:
		v.SetString(words[rng.IntN(len(words))])
	case reflect.Int, reflect.Int64:
		if rng.IntN(3) > 0 {
			v.SetInt(rng.Int64N(1<<40) - 1<<39)
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Float64:
		v.SetFloat(rng.Float64() * math.Pow(10, float64(rng.IntN(40)-20)))
	case reflect.Pointer:
		if rng.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fillRandom(t, rng, v.Elem())
		}
	case reflect.Map: // Metadata
		if rng.IntN(3) > 0 {
			v.Set(reflect.MakeMap(v.Type()))
			for range rng.IntN(6) {
				v.SetMapIndex(reflect.ValueOf(words[rng.IntN(len(words))]), reflect.ValueOf(words[rng.IntN(len(words))]))
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage(nil)) {
			if rng.IntN(3) > 0 {
				v.SetBytes([]byte(`{ "content" : "` + words[rng.IntN(5)] + `", "n": [1, 2] }`))
			}
			return
		}
		if rng.IntN(4) > 0 {
			v.Set(reflect.MakeSlice(v.Type(), rng.IntN(4), 4))
			for i := range v.Len() {
				fillRandom(t, rng, v.Index(i))
			}
		}
	case reflect.Array:
		if v.Type() != reflect.TypeOf(uuid.UUID{}) {
			t.Fatalf("%s: teach fillRandom (and the appender) about it", v.Type())
		}
		v.Set(reflect.ValueOf(uuid.New()))
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)).UTC()))
			return
		}
		for i := range v.NumField() {
			fillRandom(t, rng, v.Field(i))
		}
	default:
		t.Fatalf("%s of kind %s: teach fillRandom (and the appender) about it", v.Type(), v.Kind())
	}
}

func TestAppendResultCoversEveryField(t *testing.T) { checkRandom(t, 3, AppendResult) }

// checkRandom encodes 1000 random values of T, every field set by
// fillRandom, with appendFn and with encoding/json and compares the bytes.
func checkRandom[T any](t *testing.T, seed uint64, appendFn func([]byte, *T) ([]byte, error)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range 1000 {
		var v T
		fillRandom(t, rng, reflect.ValueOf(&v).Elem())
		want, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		got, err := appendFn(nil, &v)
		if err != nil || string(got) != string(want) {
			t.Fatalf("value %d (%v):\n got %s\nwant %s", i, err, got, want)
		}
	}
}

func sampleJob() *Job {
	deadline := time.Date(2026, 12, 3, 11, 5, 0, 0, time.UTC)
	return &Job{V: Version, ID: "0193a4c2-7d1e-7f00-8000-000000000001", Route: "chat",
		Request:  json.RawMessage(`{"model":"chat","messages":[{"role":"user","content":"hi"}]}`),
		Metadata: Metadata{MetaTenant: "acme", MetaTier: "pro", MetaTask: "chat"}, Priority: "normal", Deadline: &deadline,
		Reply: "_INBOX.abc.1", Plan: []Target{{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "anthropic", Model: "claude"}},
		CreatedAt: time.Date(2026, 12, 3, 11, 4, 5, 1000, time.UTC)}
}

// AppendJob writes the bytes encoding/json writes for the same Job.
func TestAppendJobMatchesEncodingJSON(t *testing.T) {
	with := func(f func(j *Job)) *Job {
		j := sampleJob()
		f(j)
		return j
	}
	cases := map[string]*Job{
		"routed":      sampleJob(),
		"zero":        {},
		"nil request": with(func(j *Job) { j.Request = nil }),
		"spaced request": with(func(j *Job) {
			j.Request = json.RawMessage("{ \"messages\" : [ {\"role\": \"user\", \"content\": \"<b>& \u2028\"} ] }\n")
		}),
		"native": with(func(j *Job) {
			j.Native = &NativeRequest{Format: FormatAnthropic, Body: json.RawMessage(`{"max_tokens": 5}`), Headers: map[string]string{"anthropic-version": "2023-06-01", "anthropic-beta": "x"}}
		}),
		"native empty": with(func(j *Job) { j.Native = &NativeRequest{} }),
		"no plan":      with(func(j *Job) { j.Plan = []Target{} }),
		"streamed hop": with(func(j *Job) { j.Stream, j.Hop, j.Batch, j.Kind, j.Model = true, 2, "b-1", KindEmbeddings, "openai/x" }),
		"attempts": with(func(j *Job) {
			j.Attempts = []Attempt{{Provider: "a", Model: "m", StartedAt: time.Now(), ErrorType: ErrTimeout, Outcome: OutcomeFallback}}
		}),
		"continuation": with(func(j *Job) {
			j.Continuation = &Continuation{Text: "Hello, wor", Chunks: 3, OutputTokens: 4, FirstChunkAt: time.Now()}
		}),
		"continuation bare": with(func(j *Job) { j.Continuation = &Continuation{} }),
		"empty metadata":    with(func(j *Job) { j.Metadata = Metadata{} }),
	}
	checkCases(t, cases, AppendJob)
	checkRefused(t, sampleJob, map[string]func(*Job){
		"broken request": func(j *Job) { j.Request = json.RawMessage(`{"messages":`) },
		"broken native":  func(j *Job) { j.Native = &NativeRequest{Body: json.RawMessage(`[`)} },
		"deadline 1e4":   func(j *Job) { d := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); j.Deadline = &d },
	}, AppendJob)
}

// Random jobs, every field of Job and of the types it holds set by
// reflection, encode as encoding/json encodes them.
func TestAppendJobCoversEveryField(t *testing.T) { checkRandom(t, 5, AppendJob) }

func BenchmarkAppendEvents(b *testing.B) { benchAppend(b, sampleEvents(), AppendEvents) }
func BenchmarkAppendResult(b *testing.B) { benchAppend(b, sampleResult(), AppendResult) }
func BenchmarkAppendJob(b *testing.B)    { benchAppend(b, sampleJob(), AppendJob) }

// benchAppend times appendFn against encoding/json on the same value.
func benchAppend[T any](b *testing.B, v T, appendFn func([]byte, T) ([]byte, error)) {
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendFn(buf[:0], v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
