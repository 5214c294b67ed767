// Package workers runs a provider's worker pool: it pulls jobs from
// llm.jobs.<provider> (three priority lanes), calls the provider through an
// llm.Completer with our one retry loop, and settles each delivery by
// publishing the Result, republishing the job to its next target
// (fallback), or dead-lettering it, and only then acks the message.
//
// One delivery goes through three stages, each in its own file:
//
//   - intake (pool.go, process.go): the lanes and the SLOTS token that caps
//     calls over every process, decoding and checking the job, its deadline
//     and cancel subject;
//   - the attempt loop (resilience.go, outcome.go, backoff.go, stream.go,
//     continuation.go): breakers, rate limits, the latency threshold and
//     hedge, retries with backoff, stream conduct and continuation, and the
//     one place an error becomes retry, fallback, fail or abandon
//     (outcome.go);
//   - settle (settle.go, publish.go, telemetry.go, telbatch.go, dlq.go): the
//     durable effects (telemetry of jobs finishing together in shared
//     messages), then ack, nak or term.
//
// Fleet (fleet.go) keeps one pool per configured provider and follows
// config changes. ARCHITECTURE.md at the repository root has the layers
// and the invariants.
package workers
