package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// wellFormedChat is Validate's shortcut: it must accept only what the
// member-by-member checks accept, and accept the ordinary body.
func FuzzWellFormedChat(f *testing.F) {
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"y"}]}],"temperature":0.2}`,
		`{"Messages":[{"role":"user"}]}`,               // names match exactly
		`{"messages":[{"Role":"user"}]}`,               // encoding/json's checks fold case here
		`{"messages":[{"role":"user"}],"messages":[]}`, // the last duplicate counts
		`{"messages":[],"messages":[{"role":"user"}]}`, // ... both ways
		`{"messages":[{"role":"user","role":""}]}`,     // ... inside a message too
		`{"messages":[null]}`, `{"messages":null}`, `{"messages":[]}`, `{"messages":{}}`,
		`{"messages":[{"role":5}]}`, `{"messages":[{"role":null}]}`, `{"messages":["user"]}`,
		`[{"role":"user"}]`, `"x"`, `{"messages":[{"role":"user"}]} x`, `{"messages":[{"role":"user"}]`,
		"{\"messages\":[{\"role\":\"us\xffer\"}]}", // invalid UTF-8, which encoding/json allows
	} {
		f.Add([]byte(body))
	}
	now := time.Now().UTC()
	f.Fuzz(func(t *testing.T, body []byte) {
		j := &Job{V: Version, ID: "j1", Route: "chat", Request: json.RawMessage(body), CreatedAt: now}
		fast := wellFormedChat(body)
		slow := j.validateRequest()
		if fast && slow != nil {
			t.Fatalf("wellFormedChat accepts %q, the member checks reject it: %v", body, slow)
		}
	})
}

func TestWellFormedChatTakesOrdinaryBodies(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"y"}]}],"stream":true}`,
		"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
	} {
		if !wellFormedChat([]byte(body)) {
			t.Errorf("wellFormedChat(%s) = false, want true", body)
		}
	}
}
