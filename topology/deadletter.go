package topology

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/redact"
)

// MaxReasonLen bounds the reason header of a dead letter.
const MaxReasonLen = 512

// DeadLetterMsg is the dead letter of payload on llm.dlq.<class>: the reason
// (cut to MaxReasonLen on a character boundary) and the source subject in headers, and msgID, when
// set, as Nats-Msg-Id so a redelivered original is stored once.
func DeadLetterMsg(class, source, reason, msgID string, payload []byte) *nats.Msg {
	reason = redact.Clip(reason, MaxReasonLen)
	m := &nats.Msg{Subject: DLQ(class), Data: payload, Header: nats.Header{}}
	m.Header.Set(HeaderError, reason)
	m.Header.Set(HeaderSource, source)
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	return m
}
