package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/topology"
)

// JobsBucket is the KV bucket remembering the ids of jobs queued through
// POST /v1/jobs, for limits.results_max_age, so GET /v1/jobs/{id} tells a
// queued job (200 queued) from an id never submitted (404).
const JobsBucket = "sb_jobs"

// knownJobs opens JobsBucket on first use (again after a failure).
type knownJobs struct {
	mu  sync.Mutex
	kv  jetstream.KeyValue
	ttl time.Duration
}

func (k *knownJobs) bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kv != nil {
		return k.kv, nil
	}
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      JobsBucket,
		Description: "switchboard: ids of jobs queued through POST /v1/jobs",
		History:     1,
		TTL:         k.ttl,
	})
	if err != nil {
		return nil, err
	}
	k.kv = kv
	return kv, nil
}

// remember records that job id was queued.
func (s *Server) rememberJob(ctx context.Context, id string) error {
	kv, err := s.known.bucket(ctx, s.js)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, id, nil); err != nil {
		return fmt.Errorf("record job %s: %w", id, err)
	}
	return nil
}

// forgetJob drops the record of a job whose publish failed.
func (s *Server) forgetJob(ctx context.Context, id string) {
	if kv, err := s.known.bucket(ctx, s.js); err == nil {
		_ = kv.Purge(ctx, id)
	}
}

// jobQueuedAt reports when job id was queued through POST /v1/jobs (the
// zero time: it was not, or its record expired).
func (s *Server) jobQueuedAt(ctx context.Context, id string) (time.Time, error) {
	kv, err := s.known.bucket(ctx, s.js)
	if err != nil {
		return time.Time{}, err
	}
	e, err := kv.Get(ctx, id)
	switch {
	case err == nil:
		return e.Created(), nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return time.Time{}, nil
	}
	return time.Time{}, fmt.Errorf("look up job %s: %w", id, err)
}

// oldestResult is when the oldest Result RESULTS still stores was stored,
// if RESULTS has dropped any (the zero time if it has dropped none). A job
// queued before it whose Result is not there may have finished and had its
// Result dropped (limits.results_max_msgs, results_max_bytes) rather than
// still be queued.
func (s *Server) oldestResult(ctx context.Context) (time.Time, error) {
	st, err := s.js.Stream(ctx, topology.StreamResults)
	if err != nil {
		return time.Time{}, fmt.Errorf("read stream %s: %w", topology.StreamResults, err)
	}
	if state := st.CachedInfo().State; state.FirstSeq > 1 {
		return state.FirstTime, nil
	}
	return time.Time{}, nil
}
