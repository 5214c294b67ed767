package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/kvstate"
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

// jobKnown reports whether job id was queued through POST /v1/jobs.
func (s *Server) jobKnown(ctx context.Context, id string) (bool, error) {
	kv, err := s.known.bucket(ctx, s.js)
	if err != nil {
		return false, err
	}
	_, err = kv.Get(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	}
	return false, fmt.Errorf("look up job %s: %w", id, err)
}
