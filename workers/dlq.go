package workers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// poison dead-letters a message that is not a job this pool can run (raw
// payload, reason and source subject in headers), then terminates it so it
// is never redelivered. If the dead letter cannot be stored the message is
// Nak'd instead: nothing is dropped.
func (p *Pool) poison(msg jetstream.Msg, reason string) {
	dl := topology.DeadLetterMsg(topology.DLQPoison, msg.Subject(), reason, poisonMsgID(msg), msg.Data())
	if _, err := p.publishAll([]*nats.Msg{dl}); err != nil {
		p.log.Warn("dead-letter poison message", "err", err)
		_ = msg.NakWithDelay(p.cfg.NakDelay)
		return
	}
	p.stats.poison.Add(1)
	if err := msg.Term(); err != nil {
		p.log.Warn("term poison message", "err", err)
	}
	p.log.Warn("poison message dead-lettered", "subject", msg.Subject(), "reason", redact.Clip(reason, 200))
}

// poisonMsgID identifies a poison message by its stream sequence, so a
// redelivered copy is stored once.
func poisonMsgID(msg jetstream.Msg) string {
	if md, err := msg.Metadata(); err == nil {
		return "poison." + md.Stream + "." + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	sum := sha256.Sum256(msg.Data())
	return "poison." + hex.EncodeToString(sum[:16])
}

// deadLetter is the DLQ entry of a job that exhausted its targets: the job
// with every attempt, the reason and the source subject.
func (p *Pool) deadLetter(msg jetstream.Msg, job *schemas.Job, res *schemas.Result) (*nats.Msg, error) {
	dead := *job
	dead.Attempts = res.Attempts
	data, err := json.Marshal(&dead)
	if err != nil {
		return nil, err
	}
	reason := res.Error.Type
	if res.Error.Message != "" {
		reason += ": " + res.Error.Message
	}
	return topology.DeadLetterMsg(topology.DLQExhausted, msg.Subject(), reason, topology.DLQMsgID(job.ID, job.Hop), data), nil
}
