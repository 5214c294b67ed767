package ingest_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Decode reads back exactly what the workers encode.
func TestDecodeRoundTrip(t *testing.T) {
	base := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, ev := range append(jobEvents(3, base), jobEvents(7, base)...) {
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ingest.Decode("llm.telemetry."+ev.Kind, data)
		if err != nil {
			t.Fatal(err)
		}
		var want schemas.Event
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) || !got.TS.Equal(ev.TS) {
			t.Fatalf("decoded %+v\nwant    %+v", *got, want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	ok := `"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"2025-01-01T00:00:00Z"`
	tests := []struct{ name, subject, data, want string }{
		{"broken JSON", "", `{"v":1,`, "invalid JSON"},
		{"not an object", "", `[1]`, "not an object"},
		{"future version", "", `{"v":2,` + ok + `}`, "unsupported version v=2"},
		{"no version", "", `{` + ok + `}`, "unsupported version v=0"},
		{"unknown kind", "", `{"v":1,"kind":"x","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"2025-01-01T00:00:00Z"}`, `unknown kind "x"`},
		{"kind on wrong subject", "llm.telemetry.completion", `{"v":1,` + ok + `}`, "published on llm.telemetry.completion"},
		{"bad uuid", "", `{"v":1,"kind":"attempt","event_id":"nope","job_id":"j","ts":"2025-01-01T00:00:00Z"}`, "event_id"},
		{"missing job", "", `{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","ts":"2025-01-01T00:00:00Z"}`, "job_id is required"},
		{"bad ts", "", `{"v":1,"kind":"attempt","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"yesterday"}`, "ts:"},
		{"string tokens", "", `{"v":1,` + ok + `,"input_tokens":"12"}`, "input_tokens: want a number"},
		{"fractional tokens", "", `{"v":1,` + ok + `,"input_tokens":1.5}`, "input_tokens: want an integer"},
		{"negative cost", "", `{"v":1,` + ok + `,"cost_usd":-1}`, "cost_usd"},
		{"string fallback", "", `{"v":1,` + ok + `,"fallback":"yes"}`, "fallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.Decode(tt.subject, []byte(tt.data))
			if !errors.Is(err, ingest.ErrBadEvent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadEvent mentioning %q", err, tt.want)
			}
		})
	}
	if ev, err := ingest.Decode("", []byte(`{"v":1,`+ok+`,"cost_usd":null,"extra":{"x":1}}`)); err != nil || ev.CostUSD != nil {
		t.Fatalf("null cost / unknown field: %+v, %v", ev, err)
	}
}

// A batch decodes into its events; bad elements come back on their own,
// with their index and raw JSON, beside the good ones.
func TestDecodeMessageBatch(t *testing.T) {
	base := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	good := jobEvents(2, base)
	var raws []string
	for _, ev := range good {
		data, _ := json.Marshal(ev)
		raws = append(raws, string(data))
	}
	badRaw := `{"v":9,"kind":"attempt"}`
	data := "[" + raws[0] + "," + badRaw + "," + strings.Join(raws[1:], ",") + "]"
	events, bad, err := ingest.DecodeMessage(topology.TelemetryBatch, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(good) {
		t.Fatalf("%d events, want %d", len(events), len(good))
	}
	for i, ev := range events {
		if ev.EventID != good[i].EventID || ev.Kind != good[i].Kind {
			t.Fatalf("event %d = %+v, want %+v", i, ev, good[i])
		}
	}
	if len(bad) != 1 || bad[0].Index != 1 || string(bad[0].Raw) != badRaw || !errors.Is(bad[0].Err, ingest.ErrBadEvent) ||
		!strings.Contains(bad[0].Err.Error(), "event[1]") || !strings.Contains(bad[0].Err.Error(), "unsupported version v=9") {
		t.Fatalf("bad = %+v", bad)
	}
	// A single event on its kind's subject is a batch of one.
	events, bad, err = ingest.DecodeMessage(topology.Telemetry(good[0].Kind), []byte(raws[0]))
	if err != nil || len(bad) != 0 || len(events) != 1 || events[0].EventID != good[0].EventID {
		t.Fatalf("single: %v %v %v", events, bad, err)
	}
	for _, tt := range []struct{ name, data, want string }{
		{"broken", `[{"v":1`, "invalid JSON"},
		{"object", raws[0], "must be a JSON array"},
		{"empty", `[]`, "empty batch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ingest.DecodeMessage(topology.TelemetryBatch, []byte(tt.data))
			if !errors.Is(err, ingest.ErrBadEvent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadEvent mentioning %q", err, tt.want)
			}
		})
	}
}
