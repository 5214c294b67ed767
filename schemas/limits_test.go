package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIdentifierLimits(t *testing.T) {
	ok := json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)
	long := strings.Repeat("x", 4200)
	cases := []struct {
		name  string
		job   Job
		field string
		msg   string
	}{
		{"long id", Job{ID: long}, "id", "is 4200 bytes, over the limit of 128"},
		{"id with a control byte", Job{ID: "a\x00b"}, "id", "printable ASCII"},
		{"batch with a wildcard", Job{Batch: "b*"}, "batch", "without spaces, '.', '*' or '>'"},
		{"long route", Job{Route: long}, "route", "over the limit of 128"},
		{"route with a space", Job{Route: "a b"}, "route", "letters, digits"},
		{"long pinned model", Job{Model: "openai/" + long}, "model", "model name is 4200 bytes, over the limit of 256"},
		{"pinned provider in capitals", Job{Model: "OpenAI/gpt"}, "model", "provider must be 1 to 64 bytes of lowercase letters"},
		{"long tenant", Job{Metadata: map[string]string{MetaTenant: long}}, "metadata.tenant", "over the limit of 128"},
		{"task with a newline", Job{Metadata: map[string]string{MetaTask: "a\nb"}}, "metadata.task", "without control characters"},
		{"tier not UTF-8", Job{Metadata: map[string]string{MetaTier: "\xff"}}, "metadata.tier", "UTF-8"},
		{"long custom_id", Job{Metadata: map[string]string{MetaCustomID: long}}, "metadata.custom_id", "over the limit of 512"},
		{"long metadata key", Job{Metadata: map[string]string{long: "v"}}, `metadata key "xxxx`, "over the limit of 64"},
		{"empty metadata key", Job{Metadata: map[string]string{"": "v"}}, `metadata key ""`, "is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := tc.job
			j.Request = ok
			err := j.Prepare(time.Now())
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, tc.field) || !strings.Contains(fe.Msg, tc.msg) {
				t.Fatalf("err = %v, want field %s and %q", err, tc.field, tc.msg)
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrLimit) {
				t.Errorf("error matches ErrInvalid %v, ErrLimit %v", errors.Is(err, ErrInvalid), errors.Is(err, ErrLimit))
			}
			if len(err.Error()) > 300 {
				t.Errorf("error of %d bytes echoes the value", len(err.Error()))
			}
		})
	}
	meta := map[string]string{}
	for i := 0; i <= MaxMetaPairs; i++ {
		meta[strings.Repeat("k", i+1)] = "v"
	}
	j := Job{Request: ok, Metadata: meta}
	if err := j.Prepare(time.Now()); err == nil || !strings.Contains(err.Error(), "over the limit of 32") {
		t.Errorf("too many metadata entries: %v", err)
	}
	// Values at the limits, and real-world names, pass.
	j = Job{Request: ok, ID: strings.Repeat("i", MaxTokenLen),
		Model: "openai/accounts/fireworks/models/llama-v3:8b", Metadata: map[string]string{
			MetaTenant: strings.Repeat("t", MaxLabelLen), "région": "Île-de-France", MetaCustomID: strings.Repeat("c", MaxMetaValueLen)}}
	if err := j.Prepare(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := CheckRoute("route", "claude-3.5:eu@v2"); err != nil {
		t.Fatal(err)
	}
}

func TestMetadataErrorNamesTheFirstBadKey(t *testing.T) {
	long := strings.Repeat("v", MaxMetaValueLen+1)
	meta := map[string]string{"a_ok": "1", "m_long": long, "z_long": long, MetaTenant: "acme", "b_ok": "2", "q\nkey": "3"}
	// sorted: "a_ok" "b_ok" "m_long" "q\nkey" "tenant" "z_long": m_long is the first that fails
	for range 20 { // map order varies from run to run
		err := CheckMetadata(meta)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "metadata.m_long" {
			t.Fatalf("err %v, want metadata.m_long named", err)
		}
	}
	delete(meta, "m_long")
	if err := CheckMetadata(meta); err == nil || !strings.Contains(err.Error(), `metadata key "q\nkey"`) {
		t.Fatalf("err %v, want the key with a control character named", err)
	}
	delete(meta, "q\nkey")
	delete(meta, "z_long")
	if err := CheckMetadata(meta); err != nil {
		t.Fatalf("valid metadata refused: %v", err)
	}
}

func BenchmarkCheckMetadata(b *testing.B) {
	meta := map[string]string{MetaTenant: "acme", MetaTier: "free", MetaCustomID: "r123"}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckMetadata(meta); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMessagesMustBeAnArray(t *testing.T) {
	j := Job{Request: json.RawMessage(`{"messages":"hi"}`)}
	err := j.Prepare(time.Now())
	if err == nil || err.Error() != `request.messages: must be an array of messages, like [{"role":"user","content":"hi"}]` {
		t.Fatalf("err = %v", err)
	}
	j = Job{Request: json.RawMessage(`"hi"`)}
	if err := j.Prepare(time.Now()); err == nil || !strings.Contains(err.Error(), "request: must be a JSON object") {
		t.Fatalf("err = %v", err)
	}
}

func TestClearBrokerOwned(t *testing.T) {
	d := time.Now().Add(time.Hour)
	j := Job{ID: "x", Route: "r", Reply: "a.b", Stream: true, Plan: []Target{{"p", "m"}}, Hop: 7,
		Attempts: []Attempt{{Provider: "p"}}, CreatedAt: time.Unix(1, 0), Deadline: &d, Metadata: map[string]string{"k": "v"},
		Continuation: &Continuation{Text: "forged"}}
	j.ClearBrokerOwned()
	if j.Reply != "" || j.Stream || j.Plan != nil || j.Hop != 0 || j.Attempts != nil || !j.CreatedAt.IsZero() || j.Continuation != nil {
		t.Errorf("broker-owned fields left: %+v", j)
	}
	if j.ID != "x" || j.Route != "r" || j.Deadline == nil || j.Metadata["k"] != "v" {
		t.Errorf("producer fields lost: %+v", j)
	}
}

// FuzzDecodeJob feeds arbitrary payloads to DecodeJob and Prepare (what
// llm.submit, llm.complete and POST /v1/jobs run first): no panic, every
// error names a field in a bounded message, and every accepted job's
// identifiers are within their limits, so its subjects are valid tokens.
// Seeds: f.Add below and testdata/fuzz/FuzzDecodeJob.
func FuzzDecodeJob(f *testing.F) {
	for _, s := range []string{
		`{"request":{"messages":[{"role":"user","content":"hi"}]}}`,
		`{"id":"0193b0c4-7d5e-7c1a-9f00-5a4c2b1d0e01","route":"chat","request":{"messages":[{"role":"user","content":"hi"}]},"metadata":{"tenant":"acme","tier":"free"},"priority":"high","deadline":"2030-01-02T15:04:05Z","batch":"b1"}`,
		`{"model":"openai/gpt-4o-mini","request":{"messages":"hi"}}`,
		`{"reply":"attacker.inbox","plan":[{"provider":"a","model":"b"}],"hop":7,"attempts":[{}],"stream":true,"created_at":"2001-01-01T00:00:00Z","request":{"messages":[{"role":"user"}]}}`,
		`{"id":"a.b","batch":"*","request":{}}`,
		`{"v":2}`, `[]`, `null`, `{"request":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := DecodeJob(data, 0)
		if err == nil {
			j.ClearBrokerOwned()
			err = j.Prepare(time.Now())
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not a FieldError naming a field", err)
			}
			if len(fe.Msg) > 1024 && !strings.Contains(fe.Msg, "invalid JSON") {
				t.Fatalf("message of %d bytes: %.200s", len(fe.Msg), fe.Msg)
			}
			return
		}
		if err := j.CheckIdentifiers(); err != nil {
			t.Fatalf("accepted job fails its limits: %v", err)
		}
		for _, tok := range []string{j.ID, j.Batch} {
			if tok != "" && (strings.ContainsAny(tok, " .*>\t\r\n") || len(tok) > MaxTokenLen) {
				t.Fatalf("accepted token %q is not a subject token", tok)
			}
		}
		if j.Reply != "" || j.Plan != nil || j.Hop != 0 || j.Attempts != nil || j.Stream {
			t.Fatalf("broker-owned fields survived: %+v", j)
		}
		out, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeJob(out, len(out)+1)
		if err != nil {
			t.Fatalf("re-decoding an accepted job: %v", err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("an accepted job does not validate after a round trip: %v", err)
		}
	})
}

// Embeddings jobs: input is checked instead of messages; kinds and native
// requests are checked too.
func TestValidateKindsAndNative(t *testing.T) {
	base := func() Job {
		return Job{V: Version, ID: "j1", Route: "r", Kind: KindEmbeddings, Request: []byte(`{"model":"r","input":["a","b"]}`)}
	}
	tests := []struct {
		mod   func(*Job)
		field string
	}{
		{func(*Job) {}, ""},
		{func(j *Job) { j.Request = []byte(`{"input":"one"}`) }, ""},
		{func(j *Job) { j.Request = []byte(`{"input":[]}`) }, "request.input"},
		{func(j *Job) { j.Request = []byte(`{"input":["a",""]}`) }, "request.input[1]"},
		{func(j *Job) { j.Request = []byte(`{"input":[[1,2]]}`) }, "request.input"},
		{func(j *Job) { j.Request = []byte(`{"messages":[{"role":"user"}]}`) }, "request.input"},
		{func(j *Job) { j.Kind = "images" }, "kind"},
		{func(j *Job) { j.Kind, j.Request = "", []byte(`{"messages":[{"role":"user","content":"x"}]}`) }, ""},
		{func(j *Job) {
			j.Kind, j.Request = "", []byte(`{"messages":[{"role":"user","content":"x"}]}`)
			j.Native = &NativeRequest{Format: "cohere", Body: []byte(`{}`)}
		}, "native.format"},
		{func(j *Job) {
			j.Kind, j.Request = "", []byte(`{"messages":[{"role":"user","content":"x"}]}`)
			j.Native = &NativeRequest{Format: FormatAnthropic, Body: []byte(`[]`)}
		}, "native.body"},
		{func(j *Job) {
			j.Kind, j.Request = "", []byte(`{"messages":[{"role":"user","content":"x"}]}`)
			j.Native = &NativeRequest{Format: FormatAnthropic, Body: []byte(`{}`), Headers: map[string]string{"x-api-key": "k"}}
		}, "native.headers"},
		{func(j *Job) {
			j.Kind, j.Request = "", []byte(`{"messages":[{"role":"user","content":"x"}]}`)
			j.Native = &NativeRequest{Format: FormatAnthropic, Body: []byte(`{}`), Headers: map[string]string{"anthropic-beta": "a\r\nX: y"}}
		}, "native.headers.anthropic-beta"},
		{func(j *Job) { j.Native = &NativeRequest{Format: FormatAnthropic, Body: []byte(`{}`)} }, "native"},
	}
	for i, tt := range tests {
		j := base()
		tt.mod(&j)
		err := j.Validate()
		var fe *FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%d: %v", i, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("%d: error %v, want one on %s", i, err, tt.field)
		}
	}
}
