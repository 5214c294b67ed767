package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-llm/switchboard/broker/messages"
	"github.com/switchboard-llm/switchboard/schemas"
)

// dialect is the API shape a request is answered in: OpenAI's chat
// completions or Anthropic's Messages. Jobs run the same way either way;
// only the answer's body, stream events and error shape differ.
type dialect struct {
	// name labels metrics ("chat", "messages"; streams add "_stream").
	name string
	// writeError answers an error in the dialect's shape.
	writeError func(w http.ResponseWriter, e *apiError)
	// response is the body of a succeeded Result.
	response func(res *schemas.Result) ([]byte, error)
	// newStream converts one job's chunks.
	newStream func(job *schemas.Job) streamConv
}

// streamConv writes one streamed answer in a dialect.
type streamConv interface {
	// chunk relays one chat.completion.chunk.
	chunk(out *sse, data []byte) error
	// check reports whether a whole completion can be sent by whole.
	check(resp json.RawMessage) error
	// whole sends a completion the worker answered without streaming.
	whole(out *sse, resp json.RawMessage) error
	// done ends a succeeded stream.
	done(out *sse, res *schemas.Result) error
	// fail ends a stream that already started with an error event.
	fail(out *sse, e *apiError) error
}

var openAIDialect = &dialect{
	name:       "chat",
	writeError: writeError,
	response:   func(res *schemas.Result) ([]byte, error) { return res.Response, nil },
	newStream:  func(*schemas.Job) streamConv { return openAIStream{} },
}

// openAIStream relays chunks as they are and ends with [DONE].
type openAIStream struct{}

func (openAIStream) chunk(out *sse, data []byte) error { return out.data(data) }

func (openAIStream) check(resp json.RawMessage) error {
	_, err := completionChunk(resp)
	return err
}

func (openAIStream) whole(out *sse, resp json.RawMessage) error {
	chunk, err := completionChunk(resp)
	if err != nil {
		return err
	}
	return out.data(chunk)
}

func (openAIStream) done(out *sse, res *schemas.Result) error {
	attemptsComment(out, res)
	return out.data([]byte("[DONE]"))
}

func (openAIStream) fail(out *sse, e *apiError) error { return out.data(e.body()) }

// embeddingsDialect answers POST /v1/embeddings: OpenAI's embeddings list
// as the worker stored it.
var embeddingsDialect = &dialect{
	name:       "embeddings",
	writeError: writeError,
	response:   func(res *schemas.Result) ([]byte, error) { return res.Response, nil },
	newStream:  func(*schemas.Job) streamConv { return openAIStream{} },
}

var anthropicDialect = &dialect{
	name:       "messages",
	writeError: writeAnthropicError,
	response: func(res *schemas.Result) ([]byte, error) {
		m, err := messages.FromCompletion(res.Response)
		if err != nil {
			return nil, err
		}
		return marshalText(m)
	},
	newStream: func(job *schemas.Job) streamConv {
		model := job.Route
		if job.Model != "" {
			model = job.Model
		}
		return &anthropicStream{st: messages.NewStream(model)}
	},
}

// writeAnthropicError answers e in Anthropic's shape
// {"type":"error","error":{"type","message"}} with Anthropic's status.
func writeAnthropicError(w http.ResponseWriter, e *apiError) {
	status, typ := messages.ErrorStatus(e.Status)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(messages.ErrorBody(typ, anthropicMessage(e)))
}

// anthropicMessage is e's message, naming its parameter when the message
// does not already start with it.
func anthropicMessage(e *apiError) string {
	if e.Param != "" && !strings.HasPrefix(e.Message, e.Param) {
		return e.Param + ": " + e.Message
	}
	return e.Message
}

// anthropicStream converts chunks into Messages events.
type anthropicStream struct {
	st *messages.Stream
}

func (a *anthropicStream) send(out *sse, evs []messages.Event) error {
	for _, ev := range evs {
		if err := out.event(ev.Name, ev.Data); err != nil {
			return err
		}
	}
	return nil
}

func (a *anthropicStream) chunk(out *sse, data []byte) error {
	evs, err := a.st.Chunk(data)
	if err != nil {
		return nil // the worker checked every chunk; an unreadable one carries nothing to send
	}
	return a.send(out, evs)
}

func (a *anthropicStream) check(resp json.RawMessage) error {
	_, err := messages.FromCompletion(resp)
	return err
}

func (a *anthropicStream) whole(out *sse, resp json.RawMessage) error {
	return a.chunk(out, resp)
}

func (a *anthropicStream) done(out *sse, res *schemas.Result) error {
	evs := a.st.Finish()
	if err := a.send(out, evs[:len(evs)-1]); err != nil {
		return err
	}
	attemptsComment(out, res)
	return a.send(out, evs[len(evs)-1:]) // message_stop
}

func (a *anthropicStream) fail(out *sse, e *apiError) error {
	_, typ := messages.ErrorStatus(e.Status)
	ev := messages.ErrorEvent(typ, anthropicMessage(e))
	return out.event(ev.Name, ev.Data)
}
