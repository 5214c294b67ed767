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
