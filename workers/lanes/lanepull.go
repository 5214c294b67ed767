package lanes

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A lanePull sends a lane consumer's pull requests with replies under one
// inbox subscription that lives as long as the Source. nats.go's Fetch,
// FetchNoWait and Next subscribe a new inbox for every request (a SUB, an
// UNSUB, a goroutine and timers each time), and a lane sends one or two
// requests per job when the workers keep up. The inbox is a channel
// subscription, so a delivery goes from the connection's reader straight to
// the lane's pull loop.
//
// Request n replies to <inbox>.<n>: the server's status answers (100
// heartbeat, 404/408 done, 409 refused) come on that subject and name their
// request, but a delivery comes on its stream subject. A lane has one
// request in flight at a time, so a delivery counts towards it; one that
// arrives for a request given up on is a job like any other and is kept.
type lanePull struct {
	nc      *nats.Conn
	subject string // the consumer's next-message API subject
	inbox   string
	sub     *nats.Subscription
	in      chan *nats.Msg // deliveries and status answers, in arrival order
	n       uint64         // the number of the last request sent
}

// openLanePull subscribes the inbox of the pull requests to a stream's
// consumer; the channel holds room beyond what batch-sized requests can
// bring (a full one drops a delivery, which the server then redelivers
// after AckWait).
func openLanePull(nc *nats.Conn, stream, consumer string, batch int) (*lanePull, error) {
	l := &lanePull{
		nc:      nc,
		subject: nextSubject(stream, consumer),
		inbox:   nc.NewInbox(),
		in:      make(chan *nats.Msg, 4*batch+64),
	}
	sub, err := nc.ChanSubscribe(l.inbox+".*", l.in)
	if err != nil {
		return nil, fmt.Errorf("subscribe to the pull inbox of %s: %w", consumer, err)
	}
	l.sub = sub
	return l, nil
}

// laneReq is a pull request in flight.
type laneReq struct {
	id     uint64
	batch  int
	noWait bool
	got    int       // deliveries counted towards it
	end    time.Time // given up on then: its expiry and pullGrace
	hb     time.Duration
	heard  time.Time // sent, or its last heartbeat
}

// request asks for up to batch messages: with noWait the server answers at
// once with what is ready (or 404); otherwise the request waits up to
// expires for one, with idle heartbeats every hb (0: none).
func (l *lanePull) request(batch int, noWait bool, expires, hb time.Duration) (*laneReq, error) {
	l.n++
	r := &laneReq{id: l.n, batch: batch, noWait: noWait, hb: hb}
	body := pullBody(batch, noWait, expires, hb)
	if noWait {
		expires = 0
	}
	now := time.Now()
	r.heard, r.end = now, now.Add(expires+pullGrace)
	if err := l.nc.PublishRequest(l.subject, l.inbox+"."+strconv.FormatUint(r.id, 10), body); err != nil {
		return nil, fmt.Errorf("pull request: %w", err)
	}
	return r, nil
}

// untilCheck is how long after now r is next checked for having ended
// unanswered (expired, or silent for two heartbeats); zero or less when it
// has.
func (r *laneReq) untilCheck(now time.Time) time.Duration {
	return untilSilent(now, r.end, r.heard, r.hb)
}

// status splits an inbox message: for a server answer, the number of the
// request it answers and its status code; for a delivery, code "".
func status(m *nats.Msg) (id uint64, code string) {
	// As nats.go: a message with a body or without headers is a delivery.
	if len(m.Data) > 0 || len(m.Header) == 0 {
		return 0, ""
	}
	if code = m.Header.Get("Status"); code == "" {
		return 0, ""
	}
	id, _ = requestID(m.Subject)
	return id, code
}

// consumerDeleted reports whether a 409 answer says the consumer is gone.
func consumerDeleted(m *nats.Msg) bool {
	return strings.Contains(strings.ToLower(m.Header.Get("Description")), "consumer deleted")
}

// close ends the subscription and returns the deliveries it still holds,
// for the caller to hand back.
func (l *lanePull) close() []*nats.Msg {
	_ = l.sub.Unsubscribe()
	var out []*nats.Msg
	for {
		select {
		case m := <-l.in:
			if _, code := status(m); code == "" {
				out = append(out, m)
			}
		default:
			return out
		}
	}
}

// msg wraps a delivery as a jetstream.Msg.
func (l *lanePull) msg(m *nats.Msg) jetstream.Msg { return &jsMsg{nc: l.nc, msg: m} }

// The pull protocol both pullers speak (lanePull for jobs, puller for
// SLOTS tokens): request n of an inbox replies to <inbox>.<n>.

// nextSubject is a consumer's next-message API subject.
func nextSubject(stream, consumer string) string {
	return jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer
}

// pullBody is the body of a request for up to batch messages: no_wait
// (answered at once, as nats.go's FetchNoWait: no expiry), or waiting up to
// expires with idle heartbeats every hb (0: none).
func pullBody(batch int, noWait bool, expires, hb time.Duration) []byte {
	if noWait {
		return fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, batch)
	}
	return fmt.Appendf(nil, `{"batch":%d,"expires":%d,"idle_heartbeat":%d}`, batch, expires.Nanoseconds(), hb.Nanoseconds())
}

// requestID is the number of the request a status answer on subject
// (<inbox>.<n>) answers.
func requestID(subject string) (uint64, error) {
	return strconv.ParseUint(subject[strings.LastIndexByte(subject, '.')+1:], 10, 64)
}

// untilSilent is how long after now a request given up at end, last heard
// from at heard and asking for heartbeats every hb (0: none), is next
// checked for having gone silent (two missed heartbeats); zero or less when
// it has ended.
func untilSilent(now, end, heard time.Time, hb time.Duration) time.Duration {
	wait := end.Sub(now)
	if hb > 0 {
		wait = min(wait, heard.Add(2*hb).Sub(now))
	}
	return wait
}
