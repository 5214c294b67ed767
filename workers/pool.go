package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers/lanes"
)

// Pool defaults.
const (
	DefaultBackoffBase    = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultMaxRetryWait   = 30 * time.Second
	DefaultPublishTimeout = 5 * time.Second
	DefaultNakDelay       = 2 * time.Second
)

// PoolConfig configures the worker pool of one provider.
type PoolConfig struct {
	// Provider is the provider this pool serves (llm.jobs.<name>); its
	// Concurrency caps in-flight calls over all processes and its Timeout
	// bounds one call.
	Provider config.Provider
	// Config supplies routes (retries, fallback_on) and limits.
	Config *config.Config
	// Live, when set, is the running config (config/live.Holder.Load): the
	// pool reads each reload itself (routes' retry and fallback policies,
	// thresholds, breaker settings, the rate window), so SetConfig is not
	// needed. The provider's own connection settings (concurrency,
	// timeout, endpoint, keys) stay those of Provider: a change to them
	// needs a new pool (workers.Fleet does that).
	Live func() *config.Config
	// Completer calls the provider; if it also implements llm.Streamer,
	// streaming jobs are streamed.
	Completer llm.Completer
	// Conn publishes core messages (chunks, replies) and receives cancels.
	Conn *nats.Conn
	// JS pulls jobs and publishes results, telemetry, next hops and dead letters.
	JS jetstream.JetStream
	// LocalReply, when set, is offered each sync caller's answer (a
	// non-streaming job's) first: it delivers it in process and reports
	// true when the caller waits in this process (`switchboard up`: the
	// gateway's DeliverReply); otherwise the answer is published on Conn.
	LocalReply func(subject string, data []byte) bool
	// Pricer prices usage; defaults to pricing.New(Config): the config's
	// model prices.
	Pricer Pricer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// BackoffBase and BackoffMax bound the jittered exponential backoff
	// between calls to the same target.
	BackoffBase, BackoffMax time.Duration
	// DrainTimeout bounds how long in-flight jobs may finish on shutdown
	// before they are handed back (Nak) to another worker.
	DrainTimeout time.Duration
	// MaxRetryWait: a retry that would wait longer (e.g. a long Retry-After)
	// moves on to the fallback target, or fails, instead of waiting.
	MaxRetryWait time.Duration
	// PublishTimeout bounds the wait for JetStream to confirm a publish.
	PublishTimeout time.Duration
	// NakDelay is the redelivery delay of a job whose publishes failed.
	NakDelay time.Duration
	// Resilience is the shared breakers, rate limits and latency store
	// consulted around each call (resilience.go); zero value = off.
	Resilience Resilience
}

// withDefaults returns a copy of c with every unset field defaulted.
func (c PoolConfig) withDefaults() PoolConfig {
	if c.Provider.Concurrency <= 0 {
		c.Provider.Concurrency = config.DefaultConcurrency
	}
	if c.Provider.Timeout <= 0 {
		c.Provider.Timeout = config.DefaultTimeout
	}
	if c.Pricer == nil {
		c.Pricer = pricing.New(c.Config)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDur(&c.BackoffBase, DefaultBackoffBase)
	setDur(&c.BackoffMax, DefaultBackoffMax)
	setDur(&c.DrainTimeout, DefaultDrainTimeout)
	setDur(&c.MaxRetryWait, DefaultMaxRetryWait)
	setDur(&c.PublishTimeout, DefaultPublishTimeout)
	setDur(&c.NakDelay, DefaultNakDelay)
	return c
}

func setDur(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// Validate checks the config (after defaults); errors wrap
// ErrInvalidPoolConfig and name the field.
func (c PoolConfig) Validate() error {
	var problems []string
	bad := func(field, msg string) { problems = append(problems, field+": "+msg) }
	if c.Provider.Name == "" {
		bad("Provider.Name", "is required")
	} else if strings.ContainsAny(c.Provider.Name, " .*>") {
		bad("Provider.Name", fmt.Sprintf("%q is not a subject token", c.Provider.Name))
	}
	if c.Config == nil {
		bad("Config", "is required")
	}
	if c.Completer == nil {
		bad("Completer", "is required")
	}
	if c.Conn == nil {
		bad("Conn", "is required")
	}
	if c.JS == nil {
		bad("JS", "is required")
	}
	if c.Provider.Concurrency < 0 {
		bad("Provider.Concurrency", "must not be negative")
	}
	for name, d := range map[string]time.Duration{
		"Provider.Timeout": c.Provider.Timeout, "BackoffBase": c.BackoffBase, "BackoffMax": c.BackoffMax,
		"DrainTimeout": c.DrainTimeout, "MaxRetryWait": c.MaxRetryWait, "PublishTimeout": c.PublishTimeout, "NakDelay": c.NakDelay,
	} {
		if d < 0 {
			bad(name, "must not be negative")
		}
	}
	if c.BackoffMax > 0 && c.BackoffBase > c.BackoffMax {
		bad("BackoffMax", fmt.Sprintf("%s is below BackoffBase %s", c.BackoffMax, c.BackoffBase))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidPoolConfig, strings.Join(problems, "; "))
	}
	return nil
}

// Pool is the worker pool of one provider: it pulls jobs from
// llm.jobs.<provider> with at most Concurrency in flight over all processes,
// calls the provider with retries, and publishes a Result, the next hop or a
// dead letter before acknowledging the job.
type Pool struct {
	cfg         PoolConfig
	log         *slog.Logger
	name        string
	concurrency int
	timeout     time.Duration
	ackWait     time.Duration
	maxJobBytes int
	streamer    llm.Streamer
	policies    map[string]policy
	defPolicy   policy

	running  atomic.Bool
	stopping atomic.Bool
	slots    atomic.Pointer[lanes.Slots] // the provider's concurrency tokens (messages)
	// confirmAcks is whether an ack waits for the server's confirmation:
	// set when the lane consumers are replicated (messages), where a
	// consumer leader election can lose an ack (settle.go's ack).
	confirmAcks atomic.Bool
	// jobsBase parents every job context; it is cancelled (errShutdown)
	// when the drain timeout passes.
	jobsBase context.Context
	stopJobs context.CancelCauseFunc

	mu       sync.Mutex
	live     *config.Config // reloaded config (SetConfig), nil = cfg.Config
	inflight map[string]*task
	canceled *recentSet
	results  jetstream.Stream // cached by resultsStream
	// hedgeSlots are the tokens of the providers this pool hedges to.
	hedgeSlots map[string]*lanes.Slots
	stats      poolCounters
	// telemetry publishes finished jobs' telemetry in shared messages
	// (set by Run before any worker starts).
	telemetry *telemetryBatcher
}

// task is a job being processed.
type task struct {
	msg    jetstream.Msg
	cancel context.CancelCauseFunc
}

// NewPool validates cfg and returns a pool ready to Run.
func NewPool(cfg PoolConfig) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:         cfg,
		log:         cfg.Logger.With("provider", cfg.Provider.Name),
		name:        cfg.Provider.Name,
		concurrency: cfg.Provider.Concurrency,
		timeout:     cfg.Provider.Timeout,
		ackWait:     topology.AckWait(cfg.Provider.Timeout),
		maxJobBytes: 2 * orInt(cfg.Config.Limits.MaxJobBytes, config.DefaultMaxJobBytes),
		policies:    map[string]policy{},
		defPolicy:   newPolicy(nil, cfg.Provider),
		inflight:    map[string]*task{},
		canceled:    newRecentSet(4096, 5*time.Minute),
	}
	p.streamer, _ = cfg.Completer.(llm.Streamer)
	for i := range cfg.Config.Routes {
		rt := &cfg.Config.Routes[i]
		p.policies[rt.Name] = newPolicy(rt, cfg.Provider)
	}
	p.jobsBase, p.stopJobs = context.WithCancelCause(context.Background())
	return p, nil
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// policyFor returns the retry policy of a job's route; pinned jobs without a
// route get the defaults.
func (p *Pool) policyFor(route string) policy {
	p.liveConfig() // a reload read from Live rebuilds the policies
	p.mu.Lock()
	pol, ok := p.policies[route]
	p.mu.Unlock()
	if ok {
		return pol
	}
	return p.defPolicy
}

// Run provisions the provider's consumer and processes jobs until ctx ends.
// Then it stops pulling, lets in-flight jobs finish for up to DrainTimeout,
// hands whatever still runs back to JetStream (Nak) and returns nil.
func (p *Pool) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrPoolRunning
	}
	defer p.stopJobs(errShutdown)
	defer p.closeSlots()
	sub, err := p.cfg.Conn.Subscribe(topology.CancelAll, p.onCancel)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", topology.CancelAll, err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	// Telemetry is published in shared messages until the workers are done.
	p.telemetry = newTelemetryBatcher(p.cfg.JS, p.cfg.PublishTimeout, p.concurrency,
		func() bool { return p.inFlight() <= p.concurrency/4 })
	telCtx, telStop := context.WithCancel(context.Background())
	telDone := make(chan struct{})
	go func() { p.telemetry.run(telCtx); close(telDone) }()
	defer func() { telStop(); <-telDone }()

	hbStop := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error { p.heartbeat(hbStop); return nil })
	defer func() { close(hbStop); _ = g.Wait() }()

	for {
		// The provider's three priority lanes, picked by weight (lanes.go).
		it, err := p.messages(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !transientProvision(err) {
				return fmt.Errorf("pull from %s: %w", topology.WorkerConsumer(p.name), err)
			}
			// A node loss: the stream or consumer leader is being elected.
			p.log.Warn("provisioning the lanes failed; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		p.log.Info("worker pool started", "concurrency", p.concurrency, "timeout", p.timeout)
		p.consume(ctx, it)
		if ctx.Err() != nil {
			p.log.Info("worker pool stopped")
			return nil
		}
		// The iterator ended on its own (consumer deleted, connection
		// closed): provision again after a pause.
		p.log.Warn("job iterator closed; re-subscribing")
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
	}
}

// closeSlots ends the token subscriptions once no worker uses them.
func (p *Pool) closeSlots() {
	if s := p.slots.Swap(nil); s != nil {
		s.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.hedgeSlots {
		s.Close()
	}
	p.hedgeSlots = nil
}

// consume runs Concurrency workers on it until it closes, or until ctx ends
// and the drain completes.
func (p *Pool) consume(ctx context.Context, it jetstream.MessagesContext) {
	var g errgroup.Group
	for range p.concurrency {
		g.Go(func() error { p.worker(ctx, it); return nil })
	}
	done := make(chan struct{})
	go func() { _ = g.Wait(); close(done) }()
	select {
	case <-done:
		it.Stop()
		return
	case <-ctx.Done():
	}
	p.stopping.Store(true)
	it.Drain()
	t := time.NewTimer(p.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.log.Warn("drain timeout: handing in-flight jobs back", "in_flight", p.inFlight())
		p.stopJobs(errShutdown)
		<-done
	}
}

// worker processes messages one at a time until the iterator closes, each
// under one of the provider's concurrency tokens (lanes.Slots): a job is
// pulled by lane weight first, then waits for a token, so tokens only go
// to processes that have work.
func (p *Pool) worker(ctx context.Context, it jetstream.MessagesContext) {
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			p.log.Warn("pull", "err", err)
			if p.stopping.Load() {
				return
			}
			continue
		}
		if p.stopping.Load() {
			// Pulled but not started: give it back at once.
			_ = msg.Nak()
			continue
		}
		slot, err := p.slots.Load().Acquire(ctx, func() { _ = msg.InProgress() })
		if err != nil {
			_ = msg.Nak() // shutting down: the job goes back
			continue
		}
		p.handle(msg)
		slot.Release()
	}
}

// heartbeat tells JetStream every AckWait/3 that in-flight jobs are still
// being worked on, so long calls and backoffs are not redelivered.
func (p *Pool) heartbeat(stop <-chan struct{}) {
	t := time.NewTicker(p.ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(p.inflight))
		for _, tk := range p.inflight {
			msgs = append(msgs, tk.msg)
		}
		p.mu.Unlock()
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				p.log.Debug("in-progress heartbeat", "err", err)
			}
		}
	}
}

// track registers a job being processed and returns its context: cancelled
// by a cancel request, its deadline, or shutdown.
func (p *Pool) track(jobID string, deadline *time.Time, msg jetstream.Msg) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(p.jobsBase)
	var stopDeadline context.CancelFunc = func() {}
	if deadline != nil {
		ctx, stopDeadline = context.WithDeadlineCause(ctx, *deadline, errJobDeadline)
	}
	tk := &task{msg: msg, cancel: cancel}
	p.mu.Lock()
	p.inflight[jobID] = tk
	canceled := p.canceled.has(jobID, time.Now())
	p.mu.Unlock()
	if canceled {
		cancel(errCancelRequested)
	}
	return ctx, func() {
		p.mu.Lock()
		if p.inflight[jobID] == tk {
			delete(p.inflight, jobID)
		}
		p.mu.Unlock()
		stopDeadline()
		cancel(nil)
	}
}

func (p *Pool) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}

// onCancel handles llm.cancel.<id>: it cancels the job if it runs here, and
// remembers the id for a while in case the job is pulled later.
func (p *Pool) onCancel(m *nats.Msg) {
	id := topology.JobOfCancel(m.Subject)
	if id == "" || id == m.Subject {
		return
	}
	p.mu.Lock()
	tk := p.inflight[id]
	p.canceled.add(id, time.Now())
	p.mu.Unlock()
	if tk != nil {
		tk.cancel(errCancelRequested)
		p.log.Info("job canceled", "job", id)
	}
}

// recentSet remembers up to max ids for ttl (not safe for concurrent use).
type recentSet struct {
	max   int
	ttl   time.Duration
	at    map[string]time.Time
	order []string
}

func newRecentSet(max int, ttl time.Duration) *recentSet {
	return &recentSet{max: max, ttl: ttl, at: map[string]time.Time{}}
}

func (s *recentSet) add(id string, now time.Time) {
	if _, ok := s.at[id]; !ok {
		s.order = append(s.order, id)
	}
	s.at[id] = now
	for len(s.order) > s.max {
		delete(s.at, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *recentSet) has(id string, now time.Time) bool {
	t, ok := s.at[id]
	return ok && now.Sub(t) < s.ttl
}

// resultsStream returns the RESULTS stream handle, looked up once.
func (p *Pool) resultsStream(ctx context.Context) (jetstream.Stream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.results != nil {
		return p.results, nil
	}
	s, err := p.cfg.JS.Stream(ctx, topology.StreamResults)
	if err != nil {
		return nil, err
	}
	p.results = s
	return s, nil
}

// transientProvision reports whether provisioning the lanes failed for want
// of an answer (a leader election after a node loss), not for a refusal.
func transientProvision(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}
