package workers

import (
	"encoding/json"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Chunk kinds (header topology.HeaderChunkKind).
const (
	chunkData  = "data"
	chunkError = "error"
)

// publishChunk core-publishes one chunk of a streaming job.
func (p *Pool) publishChunk(jobID string, target schemas.Target, kind string, data []byte) error {
	m := &nats.Msg{Subject: topology.Chunks(jobID), Data: data, Header: nats.Header{}}
	m.Header.Set(topology.HeaderChunkKind, kind)
	m.Header.Set(topology.HeaderProvider, target.Provider)
	m.Header.Set(topology.HeaderModel, target.Model)
	return p.cfg.Conn.PublishMsg(m)
}

// completionAsChunk turns an OpenAI chat.completion into one
// chat.completion.chunk carrying the whole answer (each choice's message
// becomes its delta), for adapters that cannot stream. Unknown fields of the
// message are kept; a body that is not a completion is passed as is.
func completionAsChunk(body json.RawMessage) json.RawMessage {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(body, &c); err != nil {
		return body
	}
	var choices []map[string]json.RawMessage
	if err := json.Unmarshal(c["choices"], &choices); err != nil {
		return body
	}
	for _, ch := range choices {
		if msg, ok := ch["message"]; ok {
			ch["delta"] = msg
			delete(ch, "message")
		}
	}
	out, err := json.Marshal(choices)
	if err != nil {
		return body
	}
	c["choices"] = out
	c["object"] = json.RawMessage(`"chat.completion.chunk"`)
	chunk, err := json.Marshal(c)
	if err != nil {
		return body
	}
	return chunk
}
