package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The JSON Schema files must name exactly the fields the Go types encode.
func TestSchemaFilesMatchTypes(t *testing.T) {
	for file, typ := range map[string]reflect.Type{
		"v1/job.json":     reflect.TypeOf(Job{}),
		"v1/result.json":  reflect.TypeOf(Result{}),
		"v1/attempt.json": reflect.TypeOf(Attempt{}),
		"v1/event.json":   reflect.TypeOf(Event{}),
	} {
		data, err := Files.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var inSchema, inGo []string
		for k := range doc.Properties {
			inSchema = append(inSchema, k)
		}
		for i := 0; i < typ.NumField(); i++ {
			if tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]; tag != "" && tag != "-" {
				inGo = append(inGo, tag)
			}
		}
		sort.Strings(inSchema)
		sort.Strings(inGo)
		if !reflect.DeepEqual(inSchema, inGo) {
			t.Errorf("%s properties %v != %s fields %v", file, inSchema, typ.Name(), inGo)
		}
	}
	// A telemetry batch is an array of events.
	data, err := Files.ReadFile("v1/event-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Type  string            `json:"type"`
		Items map[string]string `json:"items"`
	}
	if err := json.Unmarshal(data, &batch); err != nil || batch.Type != "array" || batch.Items["$ref"] != "event.json" {
		t.Fatalf("event-batch.json = %+v (%v), want an array of event.json", batch, err)
	}
}

func TestJobValidation(t *testing.T) {
	ok := `{"messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, json, field string
	}{
		{"no request", `{"route":"chat"}`, "request"},
		{"no messages", `{"request":{"messages":[]}}`, "request.messages"},
		{"message without role", `{"request":{"messages":[{"content":"x"}]}}`, "request.messages[0].role"},
		{"bad deadline", `{"request":` + ok + `,"deadline":"tomorrow"}`, "deadline"},
		{"bad priority", `{"request":` + ok + `,"priority":"urgent"}`, "priority"},
		{"model without provider", `{"request":` + ok + `,"model":"gpt-4o"}`, "model"},
		{"id with dot", `{"id":"a.b","request":` + ok + `}`, "id"},
		{"wrong type", `{"request":` + ok + `,"metadata":{"tenant":5}}`, "metadata"},
		{"broken json", `{"request":`, "job"},
		{"bad version", `{"v":2,"request":` + ok + `}`, "v"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job, err := DecodeJob([]byte(tc.json), 0)
			if err == nil {
				err = job.Prepare(time.Now())
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a FieldError, got %v", err)
			}
			// A type error inside a map may name the member too
			// ("metadata.tenant"; encoding/json backed by json/v2 does).
			if fe.Field != tc.field && !strings.HasPrefix(fe.Field, tc.field+".") {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, tc.field)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("error does not wrap ErrInvalid")
			}
		})
	}
	t.Run("payload over the limit", func(t *testing.T) {
		big := `{"request":{"messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}}`
		_, err := DecodeJob([]byte(big), 1000)
		if err == nil || !strings.Contains(err.Error(), "over the limit of 1000") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		job, err := DecodeJob([]byte(`{"request":`+ok+`}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := job.Prepare(time.Now()); err != nil {
			t.Fatal(err)
		}
		if job.V != 1 || len(job.ID) != 36 || job.Priority != PriorityNormal || job.CreatedAt.IsZero() {
			t.Errorf("defaults not filled: %+v", job)
		}
	})
	t.Run("unknown request fields survive", func(t *testing.T) {
		in := `{"request":{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"50256":-100},"x_vendor":{"a":[1,2]}}}`
		job, err := DecodeJob([]byte(in), 0)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(job)
		if !strings.Contains(string(out), `"x_vendor":{"a":[1,2]}`) || !strings.Contains(string(out), `"logit_bias":{"50256":-100}`) {
			t.Errorf("request fields lost: %s", out)
		}
	})
}

// The ids already stored in ClickHouse were made by uuid.NewSHA1 over this
// name; a new build must make the same ones, or re-sent events would count
// twice across an upgrade.
func TestEventIDsKeepTheirFormula(t *testing.T) {
	at := time.Date(2026, 12, 2, 21, 0, 0, 123456789, time.UTC)
	for _, job := range []string{"j", "batch-7-r12", strings.Repeat("x", MaxTokenLen)} {
		for _, n := range []int{0, 1, 17} {
			name := job + "/attempt/" + strconv.Itoa(n) + "/" + strconv.FormatInt(at.UnixNano(), 10)
			if got, want := AttemptEventID(job, n, at), uuid.NewSHA1(eventNamespace, []byte(name)); got != want {
				t.Errorf("AttemptEventID(%.10q, %d) = %v, want %v", job, n, got, want)
			}
			name = job + "/completion/" + strconv.Itoa(n) + "/" + strconv.FormatInt(at.UnixNano(), 10)
			if got, want := CompletionEventID(job, n, at), uuid.NewSHA1(eventNamespace, []byte(name)); got != want {
				t.Errorf("CompletionEventID(%.10q, %d) = %v, want %v", job, n, got, want)
			}
		}
	}
}

func BenchmarkAttemptEventID(b *testing.B) {
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = AttemptEventID("batch-7-r12", 1, at)
	}
}

func TestEventIDsAreDeterministic(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	first, again, second := AttemptEventID("j", 1, start), AttemptEventID("j", 1, start.In(time.FixedZone("x", 3600))), AttemptEventID("j", 2, start)
	if first != again || first == second {
		t.Error("attempt event ids must be stable per (job, attempt, start) and differ across attempts")
	}
	if AttemptEventID("j", 1, start.Add(time.Minute)) == first {
		t.Error("a re-run call (same attempt number, later start) must get its own id")
	}
	if CompletionEventID("j", 0, start) == AttemptEventID("j", 0, start) {
		t.Error("completion id collides with an attempt id")
	}
	if CompletionEventID("j", 2, start) != CompletionEventID("j", 2, start.In(time.FixedZone("x", 3600))) ||
		CompletionEventID("j", 2, start) == CompletionEventID("j", 3, start) || CompletionEventID("j", 2, start) == CompletionEventID("j", 2, start.Add(time.Second)) {
		t.Error("completion ids must be stable per (job, hop, admission) and differ across hops and runs")
	}
}

// The broker owns created_at: a fresh job's value is replaced with the
// admission time, a job under way keeps its own, an implausible one is
// refused naming the field.
func TestPrepareOwnsCreatedAt(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	req := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	fresh := &Job{Request: req, CreatedAt: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := fresh.Prepare(now); err != nil || !fresh.CreatedAt.Equal(now) {
		t.Fatalf("fresh job: created_at %s, %v; want the admission time", fresh.CreatedAt, err)
	}
	earlier := now.Add(-time.Hour)
	running := &Job{Request: req, Hop: 1, Attempts: []Attempt{{Provider: "a"}}, CreatedAt: earlier}
	if err := running.Prepare(now); err != nil || !running.CreatedAt.Equal(earlier) {
		t.Fatalf("job under way: created_at %s, %v; want it kept", running.CreatedAt, err)
	}
	forged := &Job{Request: req, Hop: 2, CreatedAt: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := forged.Prepare(now); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "created_at") {
		t.Fatalf("implausible created_at: %v", err)
	}
}

func TestDecodeJobNamesABadDeadline(t *testing.T) {
	for _, in := range []string{`{"deadline":"tomorrow"}`, `{"deadline":"2026-13-01T00:00:00Z"}`} {
		_, err := DecodeJob([]byte(in), 1<<20)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "deadline" || !strings.Contains(fe.Msg, "RFC 3339") {
			t.Errorf("DecodeJob(%s) = %v, want a deadline FieldError naming RFC 3339", in, err)
		}
	}
}
