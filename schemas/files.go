package schemas

import "embed"

// Files holds the v1 JSON Schema documents (v1/job.json, v1/result.json,
// v1/attempt.json, v1/event.json, v1/event-batch.json) for callers in other languages.
//
//go:embed v1/*.json
var Files embed.FS
