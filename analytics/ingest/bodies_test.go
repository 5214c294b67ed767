package ingest_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/schemas"
)

// The logged bodies (analytics.log_bodies) of a completion event decode as
// encoding/json reads them, escapes included; a body that is not a string
// is an error naming the field.
func TestDecodeBodies(t *testing.T) {
	ev := schemas.Event{V: 1, Kind: schemas.EventCompletion, EventID: uuid.New(), JobID: "j", TS: time.Now().UTC(), Status: "succeeded",
		RequestBody:  `{"messages":[{"role":"user","content":"say \"hi\"\n<b>é</b> \u2028 [redacted]"}]}`,
		ResponseBody: `{"choices":[{"message":{"content":"hi"}}]}`}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ingest.Decode("llm.telemetry.completion", data)
	if err != nil {
		t.Fatal(err)
	}
	var want schemas.Event
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) || got.RequestBody != ev.RequestBody || got.ResponseBody != ev.ResponseBody {
		t.Fatalf("decoded %q / %q\nwant    %q / %q", got.RequestBody, got.ResponseBody, ev.RequestBody, ev.ResponseBody)
	}
	bad := `{"v":1,"kind":"completion","event_id":"6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11","job_id":"j","ts":"2025-01-01T00:00:00Z","request_body":{"messages":[]}}`
	if _, err := ingest.Decode("llm.telemetry.completion", []byte(bad)); err == nil || !strings.Contains(err.Error(), "request_body") {
		t.Fatalf("an object as request_body: err = %v, want one naming request_body", err)
	}
}
