// Package budget enforces tenants' daily and monthly USD budgets. Spend is
// counted from Results' cost_usd into the JetStream KV bucket sb_spend, once
// per job id, by a durable consumer of the RESULTS stream that any number of
// processes may run; routing reads the counters from a watched cache
// (router.Budgets) and reroutes or rejects a tenant over budget.
//
// Keys: s.<tenant>.d.<YYYYMMDD> and s.<tenant>.m.<YYYYMM> hold
// {"nano_usd": total, "ids": [counts in flight]} (per-key TTL 49 h and 63
// days from their last write); j.<job_id> marks a job whose cost is being
// or was counted, kept as long as its Result can be (re)delivered: twice
// the RESULTS stream's max age (per-key TTL). Days and months are UTC.
//
// Results are counted in flushes of up to 512 (whatever has arrived, so a
// lone Result is not held back): one marker per job, written in parallel
// ("p/<flush id>"), then one compare-and-set per tenant day and month
// adding the flush's total and its id, then the markers set "done" in
// parallel, then the Results acked. A counter lists the ids of the flushes
// (and recounted jobs) whose markers are not all done yet, so a count
// interrupted between its writes is finished without counting twice: a
// job with a pending marker is counted in a key unless its flush id (or its
// own id) is listed there. A flush's id leaves the lists on the next write
// once its markers are all done. Each step waits for its confirmations
// at most 10 s in all: a flush whose markers are not all confirmed (the
// bucket's leader was lost) stops before counting and its Results are
// redelivered, so a node loss holds the counter back by one such wait,
// not by one per Result in flight.
//
// Counting costs JetStream work per priced Result, so it runs only while
// the config has a budget (Configure): with none, the consumer is not read
// at all. When a budget is added, the durable consumer resumes where it
// stopped, or (created for the first time) counts every Result RESULTS
// still stores (limits.results_max_age), so the day's spend is complete.
package budget

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/supervise"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Bucket is the KV bucket holding spend counters.
const Bucket = "sb_spend"

// Consumer is the durable consumer of RESULTS that counts spend.
const Consumer = "budget-spend"

// maxIDs bounds a counter's list of counts in flight (only interrupted
// counts stay longer than a flush).
const maxIDs = 256

// flushMax is the most Results counted in one flush.
const flushMax = 512

// MarkerTTL returns how long a counted job id is remembered when RESULTS
// keeps Results for resultsMaxAge: a Result can be redelivered to the
// counter (or replayed to a re-created consumer) only while it is stored,
// and a second Result of the same job (re-run after a worker crash) comes
// minutes after the first; twice the max age covers both.
func MarkerTTL(resultsMaxAge time.Duration) time.Duration {
	if resultsMaxAge <= 0 {
		resultsMaxAge = config.DefaultResultsMaxAge
	}
	return max(2*resultsMaxAge, time.Minute)
}

// Counter TTLs: long enough to read the whole day or month (a UTC day is
// behind a local one by up to a day).
const (
	dayTTL   = 49 * time.Hour
	monthTTL = 63 * 24 * time.Hour
)

// Marker values: "p/<id>" pending under flush (or job) id, "r/<id>" the
// same claimed by a recount, "done" counted. "pending" is an older
// version's pending marker (counted under the job's own id).
const (
	markerPending = "pending"
	markerDone    = "done"
)

// pendingID returns the flush id a pending marker value names ("" for an
// older version's "pending") and whether the marker is pending at all.
func pendingID(v string) (string, bool) {
	switch {
	case v == markerPending:
		return "", true
	case strings.HasPrefix(v, "p/"), strings.HasPrefix(v, "r/"):
		return v[2:], true
	}
	return "", false
}

// counter is a spend total in nano-USD (integers add up exactly: 0.6 + 0.3
// + 0.1 is 1, not 0.9999999999999999).
type counter struct {
	NanoUSD int64    `json:"nano_usd"`
	IDs     []string `json:"ids,omitempty"`
}

func toNano(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

// pullExpiry bounds one pull request of the counter; its heartbeats (half
// of it) tell a dead server or consumer within twice that.
const pullExpiry = 3 * time.Second

// Tracker counts and reads tenants' spend.
type Tracker struct {
	log       *slog.Logger
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	cache     *kvstate.Cache
	now       func() time.Time
	markerTTL atomic.Int64 // time.Duration
	// off is set while the config has no budget (Configure); wake tells
	// Run that it changed.
	off  atomic.Bool
	wake chan struct{}
	// finished holds, per counter key, flush ids whose markers are all
	// done, to drop from the counter's list on its next write (flushes
	// run one at a time per Tracker).
	finished map[string][]string
}

// Options tune a Tracker; every field is optional.
type Options struct {
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Log receives Run's restarts; default slog.Default().
	Log *slog.Logger
}

// Open opens the spend bucket and watches its counters until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Tracker, error) {
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "switchboard: USD spend per tenant per day and month",
		History:        1,
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	cache, err := kvstate.Watch(ctx, kv, "s.>", nil)
	if err != nil {
		return nil, err
	}
	now, log := opts.Now, opts.Log
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	t := &Tracker{log: log, js: js, kv: kv, cache: cache, now: now, wake: make(chan struct{}, 1), finished: map[string][]string{}}
	t.markerTTL.Store(int64(MarkerTTL(0)))
	return t, nil
}

func tenantToken(tenant string) string {
	if tenant == "" {
		return "-"
	}
	return tenant
}

func dayKey(tenant string, t time.Time) string {
	return kvstate.Key("s", tenantToken(tenant), "d", t.UTC().Format("20060102"))
}

func monthKey(tenant string, t time.Time) string {
	return kvstate.Key("s", tenantToken(tenant), "m", t.UTC().Format("200601"))
}

// Add counts usd of job jobID for tenant at time at, once: a job id already
// counted (a redelivered or duplicate Result) changes nothing and returns
// false. A job whose count was interrupted (a pending marker) is finished
// in the keys that miss it.
func (t *Tracker) Add(ctx context.Context, jobID, tenant string, usd float64, at time.Time) (bool, error) {
	if usd <= 0 {
		return false, nil
	}
	marker := kvstate.Key("j", jobID)
	markerTTL := time.Duration(t.markerTTL.Load())
	flush := jobID
	rev, err := t.kv.Create(ctx, marker, []byte("p/"+jobID), jetstream.KeyTTL(markerTTL))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("spend marker %s: %w", jobID, err)
		}
		e, gerr := t.kv.Get(ctx, marker)
		if gerr != nil {
			return false, fmt.Errorf("spend marker %s: %w", jobID, gerr)
		}
		id, pending := pendingID(string(e.Value()))
		if !pending {
			return false, nil // counted
		}
		// An earlier count stopped half-way (or is slow): claim it, so its
		// flush does not also finish it, then count it where it is missing.
		if rev, err = t.writeMarker(ctx, marker, "r/"+id, e.Revision()); err != nil {
			return false, fmt.Errorf("spend marker %s: %w", jobID, err)
		}
		flush = id
	}
	nano := toNano(usd)
	applied := false
	for _, k := range counterKeys(tenant, at) {
		val, crev, err := kvstate.ModifyTTL(ctx, t.js, t.kv, k.key, k.ttl, func(cur []byte, exists bool) ([]byte, bool, error) {
			c := decodeCounter(cur, exists)
			if (flush != "" && slices.Contains(c.IDs, flush)) || slices.Contains(c.IDs, jobID) {
				return nil, false, nil
			}
			c.NanoUSD += nano
			c.IDs = appendID(c.IDs, jobID)
			b, err := json.Marshal(c)
			return b, true, err
		})
		if err != nil {
			return applied, fmt.Errorf("spend of %s: %w", jobID, err)
		}
		if val != nil {
			t.cache.Set(k.key, val, crev)
			applied = true
		}
	}
	if _, err := t.writeMarker(ctx, marker, markerDone, rev); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A mismatch is a recount that claimed it meanwhile: it finds
		// this count by the job's id.
		return applied, fmt.Errorf("spend marker %s: %w", jobID, err)
	}
	return applied, nil
}

type counterKey struct {
	key string
	ttl time.Duration
}

func counterKeys(tenant string, at time.Time) [2]counterKey {
	return [2]counterKey{{dayKey(tenant, at), dayTTL}, {monthKey(tenant, at), monthTTL}}
}

func decodeCounter(cur []byte, exists bool) counter {
	var c counter
	if exists {
		if err := json.Unmarshal(cur, &c); err != nil {
			c = counter{}
		}
	}
	return c
}

func appendID(ids []string, id string) []string {
	ids = append(ids, id)
	if len(ids) > maxIDs {
		ids = ids[len(ids)-maxIDs:]
	}
	return ids
}

// writeMarker replaces a marker at revision rev, with a fresh TTL.
func (t *Tracker) writeMarker(ctx context.Context, marker, value string, rev uint64) (uint64, error) {
	return kvstate.WriteTTL(ctx, t.js, t.kv, marker, []byte(value), time.Duration(t.markerTTL.Load()), rev)
}

// priced is one job's Result in a flush.
type priced struct {
	msgs   []jetstream.Msg // its deliveries in this flush
	id     string
	tenant string
	usd    float64
	at     time.Time
	rev    uint64 // its marker's revision
	fut    jetstream.PubAckFuture
	ok     bool // counted (or found counted): ack
}

// flush counts a batch of Results (see the package doc) and acks them; a
// Result not counted is Nak'd and redelivered.
func (t *Tracker) flush(ctx context.Context, msgs []jetstream.Msg) {
	byID := map[string]*priced{}
	var jobs []*priced
	for _, msg := range msgs {
		res, err := schemas.DecodeResult(msg.Data())
		if err != nil || res.CostUSD == nil || *res.CostUSD <= 0 {
			_ = msg.Ack()
			continue
		}
		if j := byID[res.ID]; j != nil {
			j.msgs = append(j.msgs, msg) // the same job twice: counted once
			continue
		}
		at := t.now()
		if md, err := msg.Metadata(); err == nil {
			at = md.Timestamp
		}
		j := &priced{msgs: []jetstream.Msg{msg}, id: res.ID, tenant: res.Metadata[schemas.MetaTenant], usd: *res.CostUSD, at: at}
		byID[res.ID] = j
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return
	}
	defer func() {
		for _, j := range jobs {
			for _, m := range j.msgs {
				if j.ok {
					_ = m.Ack()
				} else {
					_ = m.NakWithDelay(time.Second)
				}
			}
		}
	}()
	flush := newFlushID()
	markerTTL := time.Duration(t.markerTTL.Load())
	// 1. Pending markers, in parallel.
	for _, j := range jobs {
		j.fut, _ = t.js.PublishMsgAsync(&nats.Msg{Subject: t.subject(j.id), Data: []byte("p/" + flush)},
			jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgTTL(markerTTL))
	}
	// Every confirmation of a step is awaited against one deadline: the
	// publishes a leader election loses are never answered, and waiting
	// for each in turn would hold the counter for asyncWait per job.
	stepCtx, cancel := context.WithTimeout(ctx, asyncWait)
	var fresh, seen []*priced
	unconfirmed := 0
	var firstErr error
	for _, j := range jobs {
		ack, err := await(stepCtx, j.fut)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			j.rev = ack.Sequence
			fresh = append(fresh, j)
		case markerExists(err):
			seen = append(seen, j) // a duplicate, or an interrupted count
		case errors.As(err, &apiErr):
			// Refused, so not stored: redelivered.
			t.log.Warn("budget spend counter: marker refused; its result will be redelivered", "job", j.id, "err", err)
		default:
			unconfirmed++
			firstErr = cmp.Or(firstErr, err)
		}
	}
	cancel()
	if unconfirmed > 0 {
		// A marker not confirmed may be stored or not. Counting the rest
		// under this flush's id would make a stored one look counted, so
		// the whole flush is redelivered: each marker is then absent
		// (counted afresh) or pending under a flush id no counter lists
		// (finished by the one-job path).
		t.log.Warn("budget spend counter: markers not confirmed; the flush's results will be redelivered",
			"unconfirmed", unconfirmed, "results", len(jobs), "err", firstErr)
		return
	}
	for _, j := range seen {
		if _, err := t.Add(ctx, j.id, j.tenant, j.usd, j.at); err != nil {
			// The bucket is failing: the rest are not counted now either.
			t.log.Warn("budget spend counter: recount failed; results will be redelivered", "job", j.id, "err", err)
			return
		}
		j.ok = true
	}
	if len(fresh) == 0 {
		return
	}
	// 2. One compare-and-set per counter key. A job a recount has counted
	// meanwhile (its id listed) is left out.
	byKey := map[counterKey][]*priced{}
	var keys []counterKey
	for _, j := range fresh {
		for _, k := range counterKeys(j.tenant, j.at) {
			if byKey[k] == nil {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], j)
		}
	}
	for _, k := range keys {
		drop := t.finished[k.key]
		val, rev, err := kvstate.ModifyTTL(ctx, t.js, t.kv, k.key, k.ttl, func(cur []byte, exists bool) ([]byte, bool, error) {
			c := decodeCounter(cur, exists)
			if slices.Contains(c.IDs, flush) {
				// This flush's write is stored although it was answered
				// as refused (a copy sent again after a lost
				// confirmation, topology.Replicated), with the drops:
				// counted already.
				return nil, false, nil
			}
			for _, j := range byKey[k] {
				if !slices.Contains(c.IDs, j.id) {
					c.NanoUSD += toNano(j.usd)
				}
			}
			c.IDs = appendID(slices.DeleteFunc(c.IDs, func(id string) bool { return slices.Contains(drop, id) }), flush)
			b, err := json.Marshal(c)
			return b, true, err
		})
		if err != nil {
			// Nothing acked: the markers stay pending and the redelivered
			// Results finish the count where this flush's id is missing.
			t.log.Warn("budget spend counter: flush not counted; its results will be redelivered", "key", k.key, "err", err)
			return
		}
		t.cache.Set(k.key, val, rev)
		delete(t.finished, k.key)
	}
	// 3. Markers done, in parallel; the flush's id can leave the counters
	// once they all are.
	for _, j := range fresh {
		j.fut, _ = t.js.PublishMsgAsync(&nats.Msg{Subject: t.subject(j.id), Data: []byte(markerDone)},
			jetstream.WithExpectLastSequencePerSubject(j.rev), jetstream.WithMsgTTL(markerTTL))
	}
	allDone := true
	stepCtx, cancel = context.WithTimeout(ctx, asyncWait)
	for _, j := range fresh {
		j.ok = true // counted: a marker left pending is finished by its id
		if _, err := await(stepCtx, j.fut); err != nil {
			allDone = false
		}
	}
	cancel()
	if allDone {
		for _, k := range keys {
			t.finished[k.key] = append(t.finished[k.key], flush)
		}
	}
}

func (t *Tracker) subject(jobID string) string {
	return "$KV." + Bucket + "." + kvstate.Key("j", jobID)
}

// await waits for an async publish (nil: not started) until step ends.
func await(step context.Context, f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	if f == nil {
		return nil, errNotPublished
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-step.Done():
		return nil, fmt.Errorf("%w: %w", errNotPublished, step.Err())
	}
}

// markerExists reports whether a marker's create was refused because the
// job already has one.
func markerExists(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// asyncWait bounds the wait for all the confirmations of one step of a
// flush.
const asyncWait = 10 * time.Second

var errNotPublished = errors.New("not confirmed")

func newFlushID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "f" + hex.EncodeToString(b[:])
}

func (t *Tracker) read(key string) float64 {
	e, ok := t.cache.Get(key)
	if !ok {
		return 0
	}
	var c counter
	if json.Unmarshal(e.Value, &c) != nil {
		return 0
	}
	return float64(c.NanoUSD) / 1e9
}

// Spent returns tenant's spend in the UTC day and month holding at.
func (t *Tracker) Spent(tenant string, at time.Time) (day, month float64) {
	return t.read(dayKey(tenant, at)), t.read(monthKey(tenant, at))
}

// Exceeded reports whether tenant is at or over its daily or monthly budget
// under cfg (router.Budgets). Tenants without a budget never are.
func (t *Tracker) Exceeded(cfg *config.Config, tenant string) (string, bool) {
	b, ok := cfg.BudgetFor(tenant)
	if !ok {
		return "", false
	}
	now := t.now()
	day, month := t.Spent(tenant, now)
	if b.DailyUSD > 0 && toNano(day) >= toNano(b.DailyUSD) {
		return fmt.Sprintf("daily budget of $%.2f reached ($%.4f spent today, UTC)", b.DailyUSD, day), true
	}
	if b.MonthlyUSD > 0 && toNano(month) >= toNano(b.MonthlyUSD) {
		return fmt.Sprintf("monthly budget of $%.2f reached ($%.4f spent this month, UTC)", b.MonthlyUSD, month), true
	}
	return "", false
}

// Configure tells the tracker the live config (router.Resolver calls it on
// start and whenever it first sees a new config): spend is counted only
// while cfg has a budget. Until the first call it is counted.
func (t *Tracker) Configure(cfg *config.Config) {
	off := cfg == nil || len(cfg.Budgets) == 0
	if t.off.Swap(off) != off {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// Run counts the cost of every Result on the RESULTS stream until ctx ends,
// through the durable consumer budget-spend (shared by every process that
// runs it), while the config has a budget (Configure). A Result is acked
// once its cost is counted. Run returns only when ctx ends: a consumer
// error (a missed heartbeat in a node outage, a deleted consumer, a closed
// iterator) re-creates the consumer after a backoff, logged on Options.Log.
func (t *Tracker) Run(ctx context.Context, js jetstream.JetStream) error {
	for {
		for t.off.Load() {
			select {
			case <-ctx.Done():
				return nil
			case <-t.wake:
			}
		}
		// Count until ctx ends or the last budget is removed.
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !t.off.Load() {
				select {
				case <-runCtx.Done():
					return
				case <-t.wake:
				}
			}
			cancel()
		}()
		supervise.Run(runCtx, t.log, "budget spend counter", func(ctx context.Context) error {
			return t.consume(ctx, js)
		})
		cancel()
		<-done
		if ctx.Err() != nil {
			return nil
		}
	}
}

// consume counts Results until ctx ends (nil) or the consumer fails.
func (t *Tracker) consume(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, topology.StreamResults, jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "counts results' cost into tenant budgets",
		FilterSubject: topology.ResultsAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1024,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("provision consumer %s: %w", Consumer, err)
	}
	stream, err := js.Stream(ctx, topology.StreamResults)
	if err != nil {
		return fmt.Errorf("results stream: %w", err)
	}
	t.markerTTL.Store(int64(MarkerTTL(stream.CachedInfo().Config.MaxAge)))
	it, err := cons.Messages(jetstream.PullExpiry(pullExpiry), jetstream.PullMaxMessages(flushMax))
	if err != nil {
		return fmt.Errorf("consume results: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	msgs := make(chan jetstream.Msg, flushMax)
	failed := make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			msg, err := it.Next()
			if err != nil {
				failed <- err
				return
			}
			msgs <- msg
		}
	}()
	batch := make([]jetstream.Msg, 0, flushMax)
	for msg := range msgs {
		// Count whatever has arrived, up to flushMax, at once.
		batch = append(batch[:0], msg)
	more:
		for len(batch) < flushMax {
			select {
			case m, ok := <-msgs:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		t.flush(ctx, batch)
	}
	err = <-failed
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("consume results: %w", err)
}
