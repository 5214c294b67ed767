package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkDecodeJob decodes a routed one-hop chat job as a worker
// receives it.
func BenchmarkDecodeJob(b *testing.B) {
	now := time.Now().UTC()
	j := &Job{V: Version, ID: NewJobID(), Route: "chat", Request: json.RawMessage(`{"model":"m1","messages":[{"role":"user","content":"hello 1"}]}`),
		Metadata: map[string]string{"tenant": "t1"}, Priority: PriorityNormal, Batch: "batch_0123456789abcdef",
		Plan: []Target{{Provider: "fake", Model: "m1"}}, CreatedAt: now}
	data, err := json.Marshal(j)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJob(data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateChat: Validate of a routed chat job, the one-pass check
// beside the member-by-member one it replaced on the way (same job).
func BenchmarkValidateChat(b *testing.B) {
	j := &Job{V: Version, ID: NewJobID(), Route: "chat", Request: json.RawMessage(`{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello 1"}],"temperature":0.2}`),
		Metadata: map[string]string{"tenant": "t1"}, Priority: PriorityNormal, CreatedAt: time.Now().UTC()}
	b.Run("one_pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := j.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("member_by_member", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := j.validateRequest(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
