package lanes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
// still open leaves that request to the next caller, and a message that
// arrives when nobody waits is handed back (Nak) at once.
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
		subject: jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:   nc.NewInbox(),
		byReply: map[uint64]*pullCall{},
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

func (p *puller) close() {
	_ = p.sub.Unsubscribe()
}

// next asks for one message, waiting up to expires for one to become
// available (or none with noWait), and returns it. It returns
// errPullExpired when none came, ctx's error when ctx ended first, and
// another error for a refused request (e.g. 409 leadership change).
// A message that arrives for it after next gave up is handed back.
func (p *puller) next(ctx context.Context, expires time.Duration, noWait bool) (*nats.Msg, error) {
	c := &pullCall{ch: make(chan *nats.Msg, 1)}
	p.mu.Lock()
	p.n++
	c.id = p.n
	p.queue = append(p.queue, c)
	p.byReply[c.id] = c
	p.mu.Unlock()

	// As nats.go's FetchNoWait: a no_wait request carries no expiry (the
	// server answers at once, with a message or 404); expires still bounds
	// the wait for that answer here.
	req := []byte(`{"batch":1,"no_wait":true}`)
	hb := time.Duration(0)
	if !noWait {
		if expires >= 2*p.hb {
			hb = p.hb
		}
		req = fmt.Appendf(nil, `{"batch":1,"expires":%d,"idle_heartbeat":%d}`, expires.Nanoseconds(), hb.Nanoseconds())
	}
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
			if wait <= 0 {
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

// untilCheck is how long after now call c, whose request asked for
// heartbeats every hb (0: none) and is given up at end, next checks
// whether it has gone silent; zero or less when it has ended.
func untilCheck(c *pullCall, hb time.Duration, end, now time.Time) time.Duration {
	wait := end.Sub(now)
	if hb > 0 {
		wait = min(wait, time.Unix(0, c.heard.Load()).Add(2*hb).Sub(now))
	}
	return wait
}

// forget withdraws call c; a message handed to it meanwhile is handed
// back.
func (p *puller) forget(c *pullCall) {
	p.mu.Lock()
	p.remove(c)
	p.mu.Unlock()
	select { // messages are sent under the lock, so c.ch's state is final
	case m := <-c.ch:
		p.handBack(m)
	default:
	}
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

// deliver hands an arriving message to the call that has waited longest
// (a status to the call whose request it answers), or back to the
// consumer when nobody waits for it any more.
func (p *puller) deliver(m *nats.Msg) {
	p.mu.Lock()
	var c *pullCall
	if st := m.Header.Get("Status"); st != "" {
		if id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64); err == nil {
			c = p.byReply[id]
		}
		if st == "100" { // an idle heartbeat: the request still waits
			if c != nil {
				c.heard.Store(time.Now().UnixNano())
			}
			p.mu.Unlock()
			return
		}
	} else if len(p.queue) > 0 {
		c = p.queue[0]
	}
	if c != nil {
		p.remove(c)
		c.ch <- m
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.handBack(m)
}

// handBack Naks a message nobody waits for (a status message needs
// nothing), so it is deliverable again at once instead of after AckWait.
func (p *puller) handBack(m *nats.Msg) {
	if m.Header.Get("Status") == "" && m.Reply != "" {
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

// Acknowledgement bodies (JetStream's ack protocol).
var (
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
)
