package lanes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// A puller pulls single messages of one durable pull consumer over one
// inbox subscription that lives as long as it does. nats.go's
// Consumer.Next subscribes a new inbox for every message (a SUB, an
// UNSUB, a goroutine and the server's interest updates each time); a
// concurrency token is taken once per job, so that cost is paid per job.
//
// Each pull request gets its own reply subject under the one inbox
// (<inbox>.<n>). The server's status answers (408 expired, 404 none, 409
// refused) come on that subject, but a message comes on its stream
// subject, so it cannot be matched to its request. The consumer's
// messages are interchangeable (tokens), so a message goes to the call
// that has waited longest; a call that got one while its own request is
// still open leaves that request to the next caller.
//
// Tokens are kept in the process while no other process waits for one
// (keep, set by Slots from the consumer's waiting requests): a token
// released, or arriving when no call waits, goes to the call that has
// waited longest, or else onto a free list the next call takes from
// without asking the server; Slots gives free tokens back when they idle.
// With keep off a token nobody here waits for is handed back (Nak) at
// once, so the server hands tokens out in the order processes asked.
// Slots decides by comparing the consumer's waiting requests with the
// requests of this puller still open at the server (open: in the order
// sent, as the server serves them; a token closes the oldest).
//
// A token held through an outage long enough for it to expire (AckWait
// without keep-alives; Slots judges, and calls invalidate) may have been
// handed to another process: it is stale, and is dropped when its call is
// done, neither reused nor Nak'd (a Nak names the stream sequence, and
// would free the token under its new holder); if it had not expired, it
// comes back after AckWait.
//
// A request that waits asks for idle heartbeats (status 100 on its reply
// subject): a replicated consumer's leader can drop a request without an
// answer (it went away while the request's delivery waited for quorum),
// and a call that hears nothing for two heartbeats sends a new request
// instead of waiting out the expiry.
type puller struct {
	nc      *nats.Conn
	subject string // the consumer's next-message API subject
	inbox   string
	sub     *nats.Subscription
	hb      time.Duration // idle heartbeat of a request that waits

	mu      sync.Mutex
	n       uint64
	queue   []*pullCall          // waiting calls, longest first
	byReply map[uint64]*pullCall // waiting calls by request number
	keep    bool                 // tokens nobody here waits for are kept (free), not handed back
	closed  bool
	free    []freeToken       // kept tokens no call uses, oldest first
	held    map[string]uint64 // ack subject -> epoch of each token held here: in use or free
	epochN  uint64            // bumped by invalidate: tokens of earlier epochs are stale
	open    []openReq         // requests open at the server, oldest first
	wantEnd time.Time         // when the last want request expires
}

// openReq is a pull request of this puller that the server may still
// hold.
type openReq struct {
	id  uint64
	end time.Time // by then it has expired
}

// freeToken is a held token no call uses.
type freeToken struct {
	reply string    // its ack subject
	since time.Time // when it became free
}

// pullCall is one next call waiting for a message or its request's status.
type pullCall struct {
	id    uint64
	ch    chan *nats.Msg // buffered (1); sent to once, under puller.mu
	heard atomic.Int64   // when the request was sent or last had a heartbeat (UnixNano)
}

// errPullExpired is a pull request that ended without a message: it
// expired (408), found none with no_wait (404), or went silent (no
// heartbeat or answer in time: a consumer leader that went away).
var errPullExpired = errors.New("pull request ended without a message")

// How much longer than a request's expiry a pull waits for the server's
// answer before it gives up on it.
const pullGrace = 250 * time.Millisecond

// pullHeartbeat is the idle heartbeat a waiting pull request asks for; two
// missed ones end the request.
const pullHeartbeat = 200 * time.Millisecond

func newPuller(nc *nats.Conn, stream, consumer string) (*puller, error) {
	p := &puller{
		nc:      nc,
		hb:      pullHeartbeat,
		subject: nextSubject(stream, consumer),
		inbox:   nc.NewInbox(),
		byReply: map[uint64]*pullCall{},
		held:    map[string]uint64{},
		keep:    true,
	}
	sub, err := nc.Subscribe(p.inbox+".*", p.deliver)
	if err != nil {
		return nil, fmt.Errorf("subscribe to a pull inbox: %w", err)
	}
	// The callback only hands messages over; a limit would drop tokens.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("pull inbox limits: %w", err)
	}
	p.sub = sub
	return p, nil
}

// close ends the subscription and keeping; it returns the free tokens,
// for the caller to give back.
func (p *puller) close() []string {
	_ = p.sub.Unsubscribe()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed, p.keep = true, false
	return p.takeFreeLocked(time.Now(), true)
}

// next returns a free token if there is one, or else asks for one,
// waiting up to expires for one to become available (or none with
// noWait). It returns errPullExpired when none came, ctx's error when ctx
// ended first, and another error for a refused request (e.g. 409
// leadership change). A token that arrives for it after next gave up goes
// to the next caller, the free list or back to the server.
func (p *puller) next(ctx context.Context, expires time.Duration, noWait bool) (*nats.Msg, error) {
	p.mu.Lock()
	for n := len(p.free); n > 0; n = len(p.free) {
		t := p.free[n-1] // the most recently freed: older ones idle out
		p.free = p.free[:n-1]
		if p.held[t.reply] != p.epochN {
			delete(p.held, t.reply) // stale: dropped
			continue
		}
		p.mu.Unlock()
		return &nats.Msg{Reply: t.reply}, nil
	}
	p.n++
	c := &pullCall{id: p.n, ch: make(chan *nats.Msg, 1)}
	p.queue = append(p.queue, c)
	p.byReply[c.id] = c
	p.open = append(p.open, openReq{id: c.id, end: time.Now().Add(expires + pullGrace)})
	p.mu.Unlock()

	// A no_wait request carries no expiry (the server answers at once, with
	// a message or 404); expires still bounds the wait for that answer here.
	hb := time.Duration(0)
	if !noWait && expires >= 2*p.hb {
		hb = p.hb
	}
	req := pullBody(1, noWait, expires, hb)
	start := time.Now()
	c.heard.Store(start.UnixNano())
	if err := p.nc.PublishRequest(p.subject, p.inbox+"."+strconv.FormatUint(c.id, 10), req); err != nil {
		p.forget(c)
		return nil, fmt.Errorf("pull request: %w", err)
	}
	end := start.Add(expires + pullGrace)
	t := time.NewTimer(untilCheck(c, hb, end, start))
	defer t.Stop()
	for {
		select {
		case m := <-c.ch:
			return m, statusErr(m)
		case now := <-t.C:
			wait := untilCheck(c, hb, end, now)
			if wait <= 0 { // expired or silent: the server holds it no more
				p.mu.Lock()
				p.closeReq(c.id)
				p.mu.Unlock()
				p.forget(c)
				return nil, errPullExpired
			}
			t.Reset(wait)
		case <-ctx.Done():
			p.forget(c)
			return nil, ctx.Err()
		}
	}
}

// untilCheck is untilSilent for call c.
func untilCheck(c *pullCall, hb time.Duration, end, now time.Time) time.Duration {
	return untilSilent(now, end, time.Unix(0, c.heard.Load()), hb)
}

// forget withdraws call c; a token handed to it meanwhile is passed on to
// the next caller (or handed back).
func (p *puller) forget(c *pullCall) {
	p.mu.Lock()
	p.remove(c)
	p.mu.Unlock()
	select { // messages are sent under the lock, so c.ch's state is final
	case m := <-c.ch:
		if m.Header.Get("Status") == "" && p.release(m.Reply) {
			p.dropHeld(m.Reply)
			p.handBack(m)
		}
	default:
	}
}

// release passes on a held token its call is done with: to the call that
// has waited longest, or onto the free list; a stale one is dropped. It is
// true when the token is to be given back (tokens are not kept).
func (p *puller) release(reply string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if epoch, ok := p.held[reply]; !ok || epoch != p.epochN {
		delete(p.held, reply)
		return false
	}
	if !p.keep {
		return true
	}
	p.handOut(&nats.Msg{Reply: reply})
	return false
}

// invalidate makes every token held now stale (an outage long enough for
// them to have expired).
func (p *puller) invalidate() {
	p.mu.Lock()
	p.epochN++
	p.mu.Unlock()
}

// want leaves a pull request waiting up to d that no call waits for (at
// most one at a time): a process that keeps its free tokens sees it and
// gives them back, and the token that comes for it goes to this puller's
// free list (or a call that waits by then). TryAcquire sends one when it
// found no token free: its no_wait requests are answered at once, and
// would never be seen waiting.
func (p *puller) want(d time.Duration) {
	now := time.Now()
	p.mu.Lock()
	if p.closed || now.Before(p.wantEnd) {
		p.mu.Unlock()
		return
	}
	p.n++
	id := p.n
	p.wantEnd = now.Add(d)
	p.open = append(p.open, openReq{id: id, end: now.Add(d + pullGrace)})
	p.mu.Unlock()
	req := fmt.Appendf(nil, `{"batch":1,"expires":%d}`, d.Nanoseconds())
	if err := p.nc.PublishRequest(p.subject, p.inbox+"."+strconv.FormatUint(id, 10), req); err != nil {
		p.mu.Lock()
		p.closeReq(id)
		p.mu.Unlock()
	}
}

// closeReq drops request id from the open ones (p.mu held).
func (p *puller) closeReq(id uint64) {
	for i, r := range p.open {
		if r.id == id {
			p.open = append(p.open[:i], p.open[i+1:]...)
			return
		}
	}
}

// openRequests is the number of this puller's requests the server may
// still hold.
func (p *puller) openRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pruneOpen(time.Now())
	return len(p.open)
}

// pruneOpen drops the open requests that have expired by now (p.mu held).
func (p *puller) pruneOpen(now time.Time) {
	i := 0
	for i < len(p.open) && p.open[i].end.Before(now) {
		i++
	}
	p.open = p.open[i:]
}

// handOut gives token m to the call that has waited longest, or puts it
// on the free list (p.mu held, keeping on).
func (p *puller) handOut(m *nats.Msg) {
	if len(p.queue) > 0 {
		c := p.queue[0]
		p.remove(c)
		c.ch <- m
		return
	}
	p.free = append(p.free, freeToken{reply: m.Reply, since: time.Now()})
}

// setKeep turns keeping on or off; turned off, it returns the free tokens
// for the caller to give back.
func (p *puller) setKeep(keep bool) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.keep = keep
	if keep {
		return nil
	}
	return p.takeFreeLocked(time.Now(), true)
}

// takeFree takes the tokens free since before cut off the free list, for
// the caller to give back.
func (p *puller) takeFree(cut time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeFreeLocked(cut, false)
}

func (p *puller) takeFreeLocked(cut time.Time, all bool) []string {
	var out []string
	kept := p.free[:0]
	for _, t := range p.free {
		if p.held[t.reply] != p.epochN {
			delete(p.held, t.reply) // stale: dropped, not given back
		} else if all || t.since.Before(cut) {
			out = append(out, t.reply)
		} else {
			kept = append(kept, t)
		}
	}
	p.free = kept
	return out
}

// dropHeld forgets a token that is being given back.
func (p *puller) dropHeld(reply string) {
	p.mu.Lock()
	delete(p.held, reply)
	p.mu.Unlock()
}

// holding reports whether any token is held here.
func (p *puller) holding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held) > 0
}

// heldTokens is the ack subjects of the tokens held here, and whether the
// puller is closed.
func (p *puller) heldTokens() ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.held))
	for r := range p.held {
		out = append(out, r)
	}
	return out, p.closed
}

// remove takes c out of the waiting calls (p.mu held).
func (p *puller) remove(c *pullCall) {
	if p.byReply[c.id] != c {
		return
	}
	delete(p.byReply, c.id)
	for i, q := range p.queue {
		if q == c {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			break
		}
	}
}

// deliver hands an arriving token to the call that has waited longest,
// the free list, or back to the consumer (keeping off, nobody waiting); a
// status goes to the call whose request it answers.
func (p *puller) deliver(m *nats.Msg) {
	st := m.Header.Get("Status")
	p.mu.Lock()
	if st == "" { // a token
		p.pruneOpen(time.Now())
		if len(p.open) > 0 {
			p.open = p.open[1:]
		}
		if len(p.queue) == 0 && !p.keep {
			p.mu.Unlock()
			p.handBack(m)
			return
		}
		p.held[m.Reply] = p.epochN
		p.handOut(m)
		p.mu.Unlock()
		return
	}
	var c *pullCall
	if id, err := requestID(m.Subject); err == nil {
		c = p.byReply[id]
		if st != "100" { // answered: the server holds it no more
			p.closeReq(id)
		}
	}
	switch {
	case c == nil: // the call gave up
	case st == "100": // an idle heartbeat: the request still waits
		c.heard.Store(time.Now().UnixNano())
	default:
		p.remove(c)
		c.ch <- m
	}
	p.mu.Unlock()
}

// handBack Naks a token nobody here waits for, so it is deliverable
// again at once instead of after AckWait.
func (p *puller) handBack(m *nats.Msg) {
	if m.Reply != "" {
		_ = p.nc.Publish(m.Reply, ackNak)
	}
}

// statusErr is nil for a message of the stream, and the status a
// header-only server message carries otherwise.
func statusErr(m *nats.Msg) error {
	switch st := m.Header.Get("Status"); st {
	case "":
		return nil
	case "404", "408":
		return errPullExpired
	default:
		return fmt.Errorf("pull request refused: %s %s", st, m.Header.Get("Description"))
	}
}
