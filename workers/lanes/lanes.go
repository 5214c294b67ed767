// Package lanes gives a provider's worker pool three priority lanes. Jobs
// of priority high and low sit on llm.jobs.<provider>.high and
// llm.jobs.<provider>.low (normal stays on llm.jobs.<provider>, the subject
// contract in the README), each with its own durable consumer. A Source pulls the ready
// messages of each lane a small batch per round trip and, whenever a worker
// asks for the next job,
// picks among the lanes that have one by smooth weighted round-robin: with
// weights 6/3/1 and every lane busy, high gets 6 of 10 picks, low 1 — high
// goes first, low never starves.
//
// A Source implements jetstream.MessagesContext, so the pool's workers call
// Next on it as they would on a single consumer's iterator.
package lanes

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
)

// Weights returns the lane weights in Priorities order.
func Weights(l config.Lanes) []int {
	w := []int{l.High, l.Normal, l.Low}
	for i := range w {
		if w[i] <= 0 {
			w[i] = 1
		}
	}
	return w
}

// Source merges lanes into one stream of messages by weight.
type Source struct {
	weights []int
	hb      time.Duration // InProgress of held messages
	waitHB  time.Duration // idle heartbeat of a waiting pull request
	batch   int

	ctx      context.Context // fetching stops when it ends
	stop     context.CancelFunc
	reqs     chan chan result
	in       []chan jetstream.Msg
	closed   chan struct{}
	draining chan struct{}
	probes   chan chan []bool // tests: which lanes hold a message (held)
	once     sync.Once
	dOnce    sync.Once
	wg       sync.WaitGroup
	// asking counts Next calls waiting for a message: the demand a pull
	// request is sized to.
	asking atomic.Int64
}

type result struct {
	msg jetstream.Msg
	err error
}

// Open starts pulling from consumers (in Priorities order) with the given
// weights, over nc. A pull request asks a lane for as many ready messages as
// workers are waiting in Next (at least one, at most batch), so jobs are
// pulled ahead only for idle workers: a busy process holds at most one
// job per lane that another process could have taken. Messages
// waiting to be picked get InProgress every heartbeat so they are not
// redelivered meanwhile.
func Open(nc *nats.Conn, consumers []jetstream.Consumer, weights []int, heartbeat time.Duration, batch int) (*Source, error) {
	pulls := make([]*lanePull, len(consumers))
	for i, c := range consumers {
		info := c.CachedInfo()
		l, err := openLanePull(nc, info.Stream, info.Name, max(batch, 1))
		if err != nil {
			for _, l := range pulls[:i] {
				l.close()
			}
			return nil, err
		}
		pulls[i] = l
	}
	return start(pulls, weights, heartbeat, laneHeartbeat, batch), nil
}

// start pulls from the lanes' subscriptions; a request that waits asks for
// idle heartbeats every waitHB.
func start(pulls []*lanePull, weights []int, heartbeat, waitHB time.Duration, batch int) *Source {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{
		weights: weights, hb: heartbeat, waitHB: waitHB, batch: max(batch, 1),
		ctx: ctx, stop: cancel,
		reqs: make(chan chan result), probes: make(chan chan []bool), closed: make(chan struct{}), draining: make(chan struct{}),
	}
	if s.hb <= 0 {
		s.hb = 10 * time.Second
	}
	for _, l := range pulls {
		ch := make(chan jetstream.Msg)
		s.in = append(s.in, ch)
		s.wg.Add(1)
		go s.pull(l, ch)
	}
	go s.dispatch()
	return s
}

// pull pulls a lane's messages and hands them over one at a time; the
// ones it holds meanwhile get InProgress every heartbeat and go back (Nak)
// when the Source stops. While it hands messages over, the next pull
// request (sized to the workers still waiting) is already in flight, so a
// busy lane does not wait a round trip between batches. With nothing held
// and nothing ready, one request waits up to laneWait for the lane's next
// message, with idle heartbeats: one a replicated consumer's leader dropped
// without an answer (it went away while the request's delivery waited for
// quorum) is given up after two missed ones instead of at its expiry.
func (s *Source) pull(l *lanePull, out chan<- jetstream.Msg) {
	defer s.wg.Done()
	defer close(out)
	t := time.NewTicker(s.hb)
	defer t.Stop()
	check := time.NewTimer(time.Hour) // the request in flight's next check, or the end of a backoff
	defer check.Stop()
	var (
		held      []jetstream.Msg
		cur       *laneReq  // the pull request in flight, nil when none
		dry       bool      // none is ready: the last no_wait request found none, or a delivery said so
		notBefore time.Time // after a refused request: no new one before then
	)
	defer func() { // hand back what was pulled and not handed over
		for _, m := range held {
			_ = m.Nak()
		}
		for _, m := range l.close() {
			_ = l.msg(m).Nak()
		}
		// What the server sends after this is redelivered after AckWait.
	}()
	for s.ctx.Err() == nil {
		if now := time.Now(); cur == nil && !now.Before(notBefore) {
			var err error
			if want := min(int(s.asking.Load())-len(held), s.batch); want > 0 && !dry {
				// The lane had messages: take what is ready for the waiting workers.
				cur, err = l.request(want, true, 0, 0)
			} else if len(held) == 0 {
				cur, err = l.request(1, false, laneWait, s.waitHB)
			}
			if err != nil { // the connection is closed or reconnecting
				notBefore = now.Add(refusedBackoff)
				check.Reset(refusedBackoff)
			} else if cur != nil {
				check.Reset(cur.untilCheck(now))
			}
		}
		var send chan<- jetstream.Msg
		var first jetstream.Msg
		if len(held) > 0 {
			send, first = out, held[0]
		}
		select {
		case m := <-l.in:
			id, code := status(m)
			if code == "" {
				jm := l.msg(m)
				// The delivery says how many more wait: with none, the
				// next request waits for one rather than asking for
				// what is ready and being told 404 (a request and an
				// answer less per job at a light load).
				md, err := jm.Metadata()
				held, dry = append(held, jm), err == nil && md.NumPending == 0
				if cur != nil {
					if cur.got++; cur.got >= cur.batch {
						cur = nil
					}
				}
				continue
			}
			if cur == nil || id != cur.id {
				continue // the answer to a request given up on
			}
			switch code {
			case "100": // an idle heartbeat: the request still waits
				cur.heard = time.Now()
			case "404", "408": // none (more) ready, or expired
				if cur.noWait {
					dry = cur.got == 0
				}
				cur = nil
			default: // refused (409: leadership change, consumer deleted, ...; 503: no responders)
				if code == "409" && consumerDeleted(m) {
					return // the Source closes and the pool provisions the lanes again
				}
				cur, notBefore = nil, time.Now().Add(refusedBackoff)
				check.Reset(refusedBackoff)
			}
		case send <- first:
			held[0] = nil
			held = held[1:]
		case now := <-check.C:
			if cur != nil {
				if wait := cur.untilCheck(now); wait > 0 {
					check.Reset(wait)
				} else {
					cur = nil // expired or silent: the server holds it no more
				}
			}
		case <-t.C:
			for _, m := range held {
				_ = m.InProgress()
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// laneWait is how long a lane's request waits for its next message while
// nothing is ready.
const laneWait = 5 * time.Second

// laneHeartbeat is the idle heartbeat of a lane's waiting pull request.
const laneHeartbeat = 250 * time.Millisecond

// dispatch owns the messages waiting in each lane and answers Next calls.
func (s *Source) dispatch() {
	n := len(s.in)
	held := make([]jetstream.Msg, n)
	open := make([]bool, n)
	for i := range open {
		open[i] = true
	}
	current := make([]int, n)
	// likely[i]: lane i's last message said more were pending, so its next
	// one is on its way (it needs an ack to free the lane's MaxAckPending
	// and a round trip). A pick waits up to refillGrace for such lanes so a
	// busy high lane is not passed over just because its refill is in flight.
	likely := make([]bool, n)
	// grace is one timer for the whole loop (armed while graceC is set):
	// since Go 1.23 a stopped or reset timer delivers no stale tick.
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	defer grace.Stop()
	var graceC <-chan time.Time
	graceOver := false
	t := time.NewTicker(s.hb)
	defer t.Stop()
	defer close(s.closed)
	var waiting []chan result
	cases := make([]chan jetstream.Msg, n)
	for {
		// Answer waiting Next calls while any lane has a message.
		for len(waiting) > 0 {
			if !graceOver && refilling(held, likely, open) {
				if graceC == nil {
					grace.Reset(refillGrace)
					graceC = grace.C
				}
				break
			}
			i := pick(held, s.weights, current)
			if i < 0 {
				break
			}
			if graceC != nil {
				grace.Stop()
				graceC = nil
			}
			graceOver = false
			waiting[0] <- result{msg: held[i]}
			waiting = waiting[1:]
			held[i] = nil
		}
		anyOpen, anyHeld := false, false
		for i := range open {
			anyOpen = anyOpen || open[i]
			anyHeld = anyHeld || held[i] != nil
		}
		if !anyOpen && !anyHeld {
			for _, w := range waiting {
				w <- result{err: jetstream.ErrMsgIteratorClosed}
			}
			return
		}
		// Receive from every lane whose slot is empty.
		for i := range cases {
			cases[i] = nil
			if open[i] && held[i] == nil {
				cases[i] = s.in[i]
			}
		}
		select {
		case r := <-s.reqs:
			waiting = append(waiting, r)
		case p := <-s.probes:
			out := make([]bool, n)
			for i := range held {
				out[i] = held[i] != nil
			}
			p <- out
		case <-graceC:
			graceC, graceOver = nil, true
			for i := range likely {
				if held[i] == nil {
					likely[i] = false // capped elsewhere or drained: do not wait again
				}
			}
		case m, ok := <-nilOr(cases, 0):
			s.recv(0, m, ok, held, open, likely)
		case m, ok := <-nilOr(cases, 1):
			s.recv(1, m, ok, held, open, likely)
		case m, ok := <-nilOr(cases, 2):
			s.recv(2, m, ok, held, open, likely)
		case <-t.C:
			for _, m := range held {
				if m != nil {
					_ = m.InProgress()
				}
			}
		case <-s.killed():
			for i, m := range held {
				if m != nil {
					_ = m.Nak()
					held[i] = nil
				}
			}
			for i := range open {
				if open[i] {
					for m := range s.in[i] {
						_ = m.Nak()
					}
					open[i] = false
				}
			}
		}
	}
}

func (s *Source) recv(i int, m jetstream.Msg, ok bool, held []jetstream.Msg, open, likely []bool) {
	if !ok {
		open[i] = false
		likely[i] = false
		if s.ctx.Err() == nil {
			s.Stop() // a lane's consumer is gone: close so the owner re-provisions
		}
		return
	}
	held[i] = m
	md, err := m.Metadata()
	likely[i] = err == nil && md.NumPending > 0
}

// held reports, per lane in Priorities order, whether a message is pulled
// and waiting to be picked (for tests; nil once the Source is closed). The
// dispatcher answers it, so counting costs nothing per message.
func (s *Source) held() []bool {
	p := make(chan []bool, 1)
	select {
	case s.probes <- p:
		return <-p
	case <-s.closed:
		return nil
	}
}

func nilOr(cases []chan jetstream.Msg, i int) chan jetstream.Msg {
	if i < len(cases) {
		return cases[i]
	}
	return nil
}

// killed is closed by Stop, nil while draining.
func (s *Source) killed() <-chan struct{} {
	select {
	case <-s.draining:
		return nil // drain keeps held messages for Next
	default:
	}
	return s.ctx.Done()
}

// refillGrace bounds how long a pick waits for a lane's next message.
const refillGrace = 20 * time.Millisecond

// refilling reports whether a lane with more messages pending has none
// pulled yet.
func refilling(held []jetstream.Msg, likely, open []bool) bool {
	for i := range held {
		if held[i] == nil && likely[i] && open[i] {
			return true
		}
	}
	return false
}

// pick chooses a lane among those holding a message by smooth weighted
// round-robin (nginx's algorithm), or -1 when none holds one.
func pick(held []jetstream.Msg, weights, current []int) int {
	total, best := 0, -1
	for i, m := range held {
		if m == nil {
			continue
		}
		current[i] += weights[i]
		total += weights[i]
		if best < 0 || current[i] > current[best] {
			best = i
		}
	}
	if best >= 0 {
		current[best] -= total
	}
	return best
}

// Next returns the next message by lane weight, blocking until one arrives
// or the Source is stopped (jetstream.ErrMsgIteratorClosed). Options are
// ignored.
func (s *Source) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	s.asking.Add(1)
	defer s.asking.Add(-1)
	r := make(chan result, 1)
	select {
	case s.reqs <- r:
	case <-s.closed:
		return nil, jetstream.ErrMsgIteratorClosed
	}
	res := <-r
	return res.msg, res.err
}

// Stop stops pulling and hands every message not yet returned back (Nak).
func (s *Source) Stop() {
	s.once.Do(func() { s.stop() })
}

// Drain stops pulling; messages already pulled are still returned by Next,
// then Next reports jetstream.ErrMsgIteratorClosed.
func (s *Source) Drain() {
	s.dOnce.Do(func() { close(s.draining) })
	s.Stop()
}

var _ jetstream.MessagesContext = (*Source)(nil)
