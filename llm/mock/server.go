package mock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Shape names a vendor API shape.
type Shape string

// The vendor shapes the mock speaks.
const (
	ShapeOpenAI    Shape = "openai"
	ShapeAnthropic Shape = "anthropic"
	ShapeGemini    Shape = "gemini"
)

// maxBody bounds request bodies.
const maxBody = 16 << 20

// historySize bounds the recorded-request history.
const historySize = 256

// Options configure a Server. The zero value is a working, fault-free mock.
type Options struct {
	// Faults is the default fault set.
	Faults Faults
	// ModelFaults override Faults (as a whole) for requests naming the model.
	ModelFaults map[string]Faults
	// APIKey, when set, is required on every provider call: OpenAI
	// "Authorization: Bearer KEY", Anthropic "x-api-key: KEY", Gemini
	// "x-goog-api-key: KEY" (or ?key=KEY, which is recorded as KeyInURL).
	// A missing or wrong key gets 401 in the vendor's error shape.
	APIKey string
	// Reply computes the reply text from the last user message's text;
	// nil means "mock reply to: <prompt>".
	Reply func(prompt string) string
	// ToolArguments is the JSON object used as the arguments of tool calls;
	// empty means {}.
	ToolArguments json.RawMessage
	// Models are listed by GET /v1/models (default ["mock-model"]).
	Models []string
	// Seed seeds the random source used for ErrorRate and Jitter, so runs
	// are reproducible. The zero seed is a valid, fixed seed.
	Seed uint64
}

// Validate checks every fault set and the tool arguments.
func (o Options) Validate() error {
	if err := o.Faults.Validate(); err != nil {
		return err
	}
	for m, f := range o.ModelFaults {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("model %q: %w", m, err)
		}
	}
	if len(o.ToolArguments) > 0 {
		var obj map[string]any
		if err := json.Unmarshal(o.ToolArguments, &obj); err != nil {
			return fmt.Errorf("%w: tool arguments must be a JSON object: %v", ErrInvalidFaults, err)
		}
	}
	return nil
}

// Stats are the server's counters since start or the last Reset.
type Stats struct {
	// Requests counts provider calls (completion endpoints of every shape,
	// including rejected ones); model listings and /_mock/ calls are not counted.
	Requests int64 `json:"requests"`
	// OpenAI, Anthropic and Gemini split Requests by shape.
	OpenAI    int64 `json:"openai"`
	Anthropic int64 `json:"anthropic"`
	Gemini    int64 `json:"gemini"`
	// Streams counts calls that asked to stream.
	Streams int64 `json:"streams"`
	// Succeeded counts calls answered completely and normally.
	Succeeded int64 `json:"succeeded"`
	// Errors counts injected faults that broke a call: error statuses
	// (FailFirst, ErrorRate), Malformed bodies and mid-stream errors.
	Errors int64 `json:"errors"`
	// Unauthorized counts calls rejected for a missing or wrong API key.
	Unauthorized int64 `json:"unauthorized"`
	// BadRequests counts calls rejected as invalid (400).
	BadRequests int64 `json:"bad_requests"`
	// InFlight is the number of calls being served now.
	InFlight int64 `json:"in_flight"`
	// MaxInFlight is the most calls ever served at once.
	MaxInFlight int64 `json:"max_in_flight"`
	// Canceled counts calls whose client went away before the response
	// finished (during latency, a hang or a stream).
	Canceled int64 `json:"canceled"`
}

// RecordedRequest is what reached the wire for one provider call.
type RecordedRequest struct {
	// Seq numbers calls from 1 in arrival order.
	Seq int64 `json:"seq"`
	// Shape is the vendor shape the call was routed to.
	Shape Shape `json:"shape"`
	// Method and Path are the HTTP method and URL path.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Query is the raw query with any key= value redacted.
	Query string `json:"query,omitempty"`
	// Model is the model named by the body (OpenAI, Anthropic) or path (Gemini).
	Model string `json:"model"`
	// Stream reports whether the call asked to stream.
	Stream bool `json:"stream"`
	// System is the system prompt as the mock understood it.
	System string `json:"system,omitempty"`
	// Prompt is the text of the last user message.
	Prompt string `json:"prompt,omitempty"`
	// Header is the request header with Authorization, x-api-key and
	// x-goog-api-key values replaced by "REDACTED".
	Header http.Header `json:"header"`
	// KeyInURL reports an API key passed in the URL (?key=), which
	// Switchboard must never do.
	KeyInURL bool `json:"key_in_url,omitempty"`
	// Body is the raw request body.
	Body json.RawMessage `json:"body"`
}

// faultState is a fault set and how many calls it has served.
type faultState struct {
	f      Faults
	served int
}

// Server is the mock provider; it is an http.Handler. Create it with New
// (to mount yourself) or Listen (to serve on a TCP port).
type Server struct {
	opts Options

	mu     sync.Mutex
	def    faultState
	models map[string]*faultState
	rng    *rand.Rand
	stats  Stats
	seq    int64
	// history is a ring of the last historySize calls: hist[next] is the
	// oldest once full; the records are made into RecordedRequests only
	// when read.
	history []rawRecord
	next    int

	done      chan struct{}
	closeOnce sync.Once

	hs  *http.Server
	ln  net.Listener
	url string
}

// New returns a mock server handler. Invalid fault values are not checked
// here; use Options.Validate (Listen does).
func New(opts Options) *Server {
	s := &Server{
		opts:   opts,
		def:    faultState{f: opts.Faults},
		models: make(map[string]*faultState, len(opts.ModelFaults)),
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		done:   make(chan struct{}),
	}
	for m, f := range opts.ModelFaults {
		s.models[m] = &faultState{f: f}
	}
	return s
}

// Listen validates opts and serves a new mock on addr ("127.0.0.1:0" picks a
// free port) until Close.
func Listen(addr string, opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mock listen %s: %w", addr, err)
	}
	s := New(opts)
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL is the base URL of a listening server (http://127.0.0.1:PORT), "" for
// a server from New. Provider base URLs: OpenAI URL()+"/v1", Anthropic URL(),
// Gemini URL()+"/v1beta".
func (s *Server) URL() string { return s.url }

// Addr is the listening address, "" for a server from New.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close releases hanging calls and, for a listening server, closes the
// listener and all connections. It returns ErrClosed on a second call.
func (s *Server) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.done)
		err = nil
		if s.hs != nil {
			err = s.hs.Close()
		}
	})
	return err
}

// Shutdown stops a listening server gracefully: it releases hanging calls
// and waits for in-flight calls to finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		if s.hs != nil {
			err = s.hs.Shutdown(ctx)
		}
	})
	return err
}

// SetFaults replaces the default fault set and restarts its FailFirst count.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.def = faultState{f: f}
	s.mu.Unlock()
}

// SetModelFaults replaces the fault set for calls naming model and restarts
// its FailFirst count.
func (s *Server) SetModelFaults(model string, f Faults) {
	s.mu.Lock()
	s.models[model] = &faultState{f: f}
	s.mu.Unlock()
}

// ClearModelFaults removes model's override; its calls use the default set.
func (s *Server) ClearModelFaults(model string) {
	s.mu.Lock()
	delete(s.models, model)
	s.mu.Unlock()
}

// Faults returns the default fault set.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.def.f
}

// ModelFaults returns the override for model, if any.
func (s *Server) ModelFaults(model string) (Faults, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.models[model]
	if !ok {
		return Faults{}, false
	}
	return st.f, true
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Reset zeroes the counters (MaxInFlight restarts from the current
// InFlight), forgets recorded requests and restarts every FailFirst count.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{InFlight: s.stats.InFlight, MaxInFlight: s.stats.InFlight}
	s.history, s.next = nil, 0
	s.def.served = 0
	for _, st := range s.models {
		st.served = 0
	}
}

// LastRequest returns the most recent provider call (zero if none).
func (s *Server) LastRequest() RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history) == 0 {
		return RecordedRequest{}
	}
	last := s.next - 1
	if last < 0 {
		last = len(s.history) - 1
	}
	return s.history[last].recorded()
}

// Requests returns the recorded provider calls, oldest first (at most the
// last 256).
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedRequest, 0, len(s.history))
	for i := range s.history {
		out = append(out, s.history[(s.next+i)%len(s.history)].recorded())
	}
	return out
}

// ServeHTTP routes provider calls by path and /_mock/ control calls.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/_mock/"):
		s.serveControl(w, r)
	case strings.HasSuffix(p, "/chat/completions"):
		s.serveCall(openAI{}, w, r)
	case strings.HasSuffix(p, "/embeddings"):
		s.serveCall(openAIEmbed{}, w, r)
	case strings.Contains(p, "/models/") && isGeminiEmbed(p):
		s.serveCall(geminiEmbed{}, w, r)
	case strings.Contains(p, "/models/") && strings.Contains(p[strings.LastIndex(p, "/"):], ":"):
		s.serveCall(gemini{}, w, r)
	case strings.HasSuffix(p, "/messages"):
		s.serveCall(anthropic{}, w, r)
	case strings.HasSuffix(p, "/models"):
		s.serveModels(w, r)
	default:
		writeJSON(w, http.StatusNotFound, openAIErrorBody(http.StatusNotFound, "unknown path "+p))
	}
}

// vendor is one API shape: how to read a call and write its answers.
type vendor interface {
	shape() Shape
	// key extracts the API key sent with r.
	key(r *http.Request) string
	// parse reads a call; a non-nil error is a 400 with that message.
	parse(r *http.Request, body []byte) (*call, error)
	// writeError writes an error response in the vendor's shape.
	writeError(w http.ResponseWriter, status int, msg string)
	// writeContextLength writes the vendor's 400 for a request over the
	// model's context window.
	writeContextLength(w http.ResponseWriter, c *call)
	// prefillRejection is the vendor's 400 message for a conversation that
	// ends with an assistant message.
	prefillRejection() string
	// writeReply writes a complete non-streaming answer.
	writeReply(w http.ResponseWriter, out *output)
	// newStream returns the encoder for a streaming answer.
	newStream(r *http.Request, c *call, out *output) streamEncoder
}

// streamEncoder formats one streaming answer as raw wire events.
type streamEncoder interface {
	contentType() string
	// head returns the events sent before any content.
	head() [][]byte
	// pieces returns the content pieces, one chunk each.
	pieces() []string
	// chunk formats content piece i.
	chunk(i int, piece string) []byte
	// tail returns the events that end the stream normally.
	tail() [][]byte
	// finishLen is how many leading events of tail carry the finish
	// reason; terminated reports whether tail's last event is a
	// terminator that carries nothing else (OpenAI [DONE], message_stop).
	finishLen() int
	terminated() bool
	// fail formats a mid-stream error event.
	fail(status int, msg string) []byte
	// malformed is a broken event.
	malformed() []byte
}

// serveCall is the pipeline shared by every shape: record, authenticate,
// validate, inject faults, answer.
func (s *Server) serveCall(v vendor, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		v.writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
		return
	}
	body, err := readBody(r)
	c, perr := v.parse(r, body)
	if c == nil {
		c = &call{}
	}
	if err != nil {
		perr = err
	}

	authorized := s.opts.APIKey == "" || v.key(r) == s.opts.APIKey

	// One critical section counts the call, records it and, for a valid
	// call, draws its faults.
	var (
		f     Faults
		fail  bool
		delay time.Duration
	)
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.stats.Requests++
	switch v.shape() {
	case ShapeOpenAI:
		s.stats.OpenAI++
	case ShapeAnthropic:
		s.stats.Anthropic++
	case ShapeGemini:
		s.stats.Gemini++
	}
	if c.stream {
		s.stats.Streams++
	}
	s.stats.InFlight++
	if s.stats.InFlight > s.stats.MaxInFlight {
		s.stats.MaxInFlight = s.stats.InFlight
	}
	s.record(seq, v.shape(), r, c, body)
	switch {
	case !authorized:
		s.stats.Unauthorized++
	case perr != nil:
		s.stats.BadRequests++
	default:
		f, fail, delay = s.decideLocked(c.model)
	}
	s.mu.Unlock()
	succeeded := false
	defer func() {
		s.mu.Lock()
		s.stats.InFlight--
		if succeeded {
			s.stats.Succeeded++
		}
		s.mu.Unlock()
	}()

	if !authorized {
		v.writeError(w, http.StatusUnauthorized, "invalid or missing API key")
		return
	}
	if perr != nil {
		v.writeError(w, http.StatusBadRequest, perr.Error())
		return
	}

	if !s.wait(r.Context(), delay) {
		s.abortIfClosing()
		return
	}
	if f.Hang {
		s.wait(r.Context(), -1)
		s.abortIfClosing()
		return
	}
	if fail {
		s.count(func(st *Stats) { st.Errors++ })
		if f.RetryAfter > 0 {
			secs := int64((f.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", fmt.Sprint(secs))
		}
		if f.ErrorBody != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(f.status())
			_, _ = io.WriteString(w, f.ErrorBody)
			return
		}
		v.writeError(w, f.status(), injectedMessage(f.status()))
		return
	}
	if f.ContextLength {
		s.count(func(st *Stats) { st.BadRequests++ })
		v.writeContextLength(w, c)
		return
	}
	if f.RejectPrefill && c.prefill != "" {
		s.count(func(st *Stats) { st.BadRequests++ })
		v.writeError(w, http.StatusBadRequest, v.prefillRejection())
		return
	}
	out := s.buildOutput(c, f, seq)
	if c.stream {
		succeeded = s.serveStream(w, r, f, v.newStream(r, c, out))
		return
	}
	if f.CutAfterChunks > 0 {
		// A non-streaming answer cut mid-body: part of the JSON, then the
		// connection drops.
		s.count(func(st *Stats) { st.Errors++ })
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id":"mock-cut","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"mock`)
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	if f.Malformed {
		s.count(func(st *Stats) { st.Errors++ })
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id":"mock-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"tru`)
		return
	}
	v.writeReply(w, out)
	succeeded = true
}

// readBody reads a request body of at most maxBody bytes, in one
// allocation when the request declares its length.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= maxBody {
		body := make([]byte, n, n+1)
		// net/http's body reader ends at the declared length.
		m, err := io.ReadFull(r.Body, body)
		return body[:m], err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = errors.New("request body too large")
	}
	return body, err
}

// serveStream writes a streaming answer, injecting TTFB, ChunkDelay,
// Malformed and ErrorAfterChunks; it reports whether the stream ended
// completely and normally.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, f Faults, enc streamEncoder) bool {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", enc.contentType())
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ctx := r.Context()
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			s.canceled(ctx)
			return false
		}
		if err := rc.Flush(); err != nil {
			s.canceled(ctx)
			return false
		}
		return true
	}
	if !s.wait(ctx, f.TTFB) {
		s.abortIfClosing()
		return false
	}
	if f.Malformed {
		s.count(func(st *Stats) { st.Errors++ })
		send(enc.malformed())
		return false
	}
	for _, ev := range enc.head() {
		if !send(ev) {
			return false
		}
	}
	failStream := func() {
		s.count(func(st *Stats) { st.Errors++ })
		send(enc.fail(f.status(), injectedMessage(f.status())))
		// Drop the connection: no terminating chunk, no end-of-stream event.
		panic(http.ErrAbortHandler)
	}
	cut := func() {
		s.count(func(st *Stats) { st.Errors++ })
		if f.CutWithFinish {
			for _, ev := range enc.tail()[:enc.finishLen()] {
				if !send(ev) {
					return
				}
			}
		}
		panic(http.ErrAbortHandler)
	}
	stall := func() {
		s.count(func(st *Stats) { st.Errors++ })
		s.wait(ctx, -1)
		s.abortIfClosing()
	}
	// at applies the faults due after n content chunks; false: the call ended.
	at := func(n int) bool {
		switch {
		case f.ErrorAfterChunks > 0 && n == f.ErrorAfterChunks:
			failStream()
		case f.CutAfterChunks > 0 && n == f.CutAfterChunks:
			cut()
		case f.StallAfterChunks > 0 && n == f.StallAfterChunks:
			stall()
			return false
		case f.MalformedAfterChunks > 0 && n == f.MalformedAfterChunks:
			return send(enc.malformed())
		}
		return true
	}
	pieces := enc.pieces()
	for i, p := range pieces {
		if i > 0 && !at(i) {
			return false
		}
		if i > 0 && !s.wait(ctx, f.ChunkDelay) {
			s.abortIfClosing()
			return false
		}
		if !send(enc.chunk(i, p)) {
			return false
		}
	}
	// Faults set past the last chunk strike after it.
	for _, n := range []int{f.ErrorAfterChunks, f.CutAfterChunks, f.StallAfterChunks, f.MalformedAfterChunks} {
		if n >= len(pieces) && n > 0 && !at(n) {
			return false
		}
	}
	tail := enc.tail()
	if f.NoDone && enc.terminated() {
		tail = tail[:len(tail)-1]
	}
	for _, ev := range tail {
		if !send(ev) {
			return false
		}
	}
	return true
}

// decideLocked picks the fault set for model, consumes one FailFirst slot
// and draws the random error and jitter; s.mu must be held.
func (s *Server) decideLocked(model string) (f Faults, fail bool, delay time.Duration) {
	st := &s.def
	if m, ok := s.models[model]; ok {
		st = m
	}
	f = st.f
	fail = st.served < f.FailFirst
	st.served++
	if !fail && f.ErrorRate > 0 {
		fail = s.rng.Float64() < f.ErrorRate
	}
	delay = f.Latency
	if f.Jitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(f.Jitter)))
	}
	return f, fail, delay
}

// wait blocks for d (forever when d < 0) and reports whether the call may go
// on; a client disconnect counts as Canceled, a server close does not.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d == 0 {
		if ctx.Err() != nil {
			s.canceled(ctx)
			return false
		}
		return true
	}
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-s.done:
		return false
	case <-ctx.Done():
		s.canceled(ctx)
		return false
	}
}

// abortIfClosing drops the connection without a response when the server is
// closing, so a released call never looks like a valid empty answer.
func (s *Server) abortIfClosing() {
	select {
	case <-s.done:
		panic(http.ErrAbortHandler)
	default:
	}
}

// canceled counts a client disconnect unless the server is closing.
func (s *Server) canceled(ctx context.Context) {
	select {
	case <-s.done:
		return
	default:
	}
	s.count(func(st *Stats) { st.Canceled++ })
}

// count applies f to the counters under the lock.
func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// rawRecord is a call as received; recorded makes it a RecordedRequest.
// The header and body are the request's own (net/http makes them per
// request and the mock never changes them), so recording copies nothing.
type rawRecord struct {
	seq      int64
	shape    Shape
	method   string
	path     string
	rawQuery string
	model    string
	stream   bool
	system   string
	prompt   string
	header   http.Header
	body     []byte
}

// record adds a call to the history ring; s.mu must be held.
func (s *Server) record(seq int64, shape Shape, r *http.Request, c *call, body []byte) {
	rec := rawRecord{
		seq: seq, shape: shape, method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery,
		model: c.model, stream: c.stream, system: c.system, prompt: c.prompt,
		header: r.Header, body: body,
	}
	if len(s.history) < historySize {
		s.history = append(s.history, rec)
		return
	}
	s.history[s.next] = rec
	s.next = (s.next + 1) % historySize
}

// recorded redacts the keys of a call and returns it as a RecordedRequest
// with its own copies of the header and body.
func (rec *rawRecord) recorded() RecordedRequest {
	h := rec.header.Clone()
	for _, k := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
		if len(h.Values(k)) > 0 {
			h.Set(k, "REDACTED")
		}
	}
	q, _ := url.ParseQuery(rec.rawQuery)
	keyInURL := q.Has("key")
	if keyInURL {
		q.Set("key", "REDACTED")
	}
	return RecordedRequest{
		Seq: rec.seq, Shape: rec.shape, Method: rec.method, Path: rec.path, Query: q.Encode(),
		Model: rec.model, Stream: rec.stream, System: rec.system, Prompt: rec.prompt,
		Header: h, KeyInURL: keyInURL, Body: json.RawMessage(append([]byte(nil), rec.body...)),
	}
}

// injectedMessage is the message of an injected error.
func injectedMessage(status int) string {
	return fmt.Sprintf("mock injected error (status %d)", status)
}

// jsonContentType is the Content-Type header value of JSON responses.
var jsonContentType = []string{"application/json"}

// writeJSON writes v as a JSON response (with a trailing newline) in one
// write, with its Content-Length.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "mock: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// mustJSON marshals values that cannot fail to marshal.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// sse formats a server-sent event; event may be "".
func sse(event string, data []byte) []byte {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return []byte(b.String())
}

// serveModels answers GET .../models in the shape the headers suggest.
func (s *Server) serveModels(w http.ResponseWriter, r *http.Request) {
	var v vendor = openAI{}
	switch {
	case r.Header.Get("anthropic-version") != "" || r.Header.Get("x-api-key") != "":
		v = anthropic{}
	case r.Header.Get("x-goog-api-key") != "" || strings.HasPrefix(r.URL.Path, "/v1beta/"):
		v = gemini{}
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		v.writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
		return
	}
	if s.opts.APIKey != "" && v.key(r) != s.opts.APIKey {
		v.writeError(w, http.StatusUnauthorized, "invalid or missing API key")
		return
	}
	models := s.opts.Models
	if len(models) == 0 {
		models = []string{"mock-model"}
	}
	writeJSON(w, http.StatusOK, v.(interface{ modelList([]string) any }).modelList(models))
}

// serveControl answers the /_mock/ endpoints.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	bad := func(status int, msg string) {
		writeJSON(w, status, map[string]string{"error": msg})
	}
	switch r.URL.Path {
	case "/_mock/stats":
		if r.Method != http.MethodGet {
			bad(http.StatusMethodNotAllowed, "use GET")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_mock/reset":
		if r.Method != http.MethodPost {
			bad(http.StatusMethodNotAllowed, "use POST")
			return
		}
		s.Reset()
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_mock/last":
		writeJSON(w, http.StatusOK, s.LastRequest())
	case "/_mock/faults":
		model := r.URL.Query().Get("model")
		switch r.Method {
		case http.MethodGet:
			f := s.Faults()
			if model != "" {
				var ok bool
				if f, ok = s.ModelFaults(model); !ok {
					bad(http.StatusNotFound, "no fault override for model "+model)
					return
				}
			}
			writeJSON(w, http.StatusOK, f)
		case http.MethodPut:
			dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
			dec.DisallowUnknownFields()
			var j faultsJSON
			if err := dec.Decode(&j); err != nil {
				bad(http.StatusBadRequest, "bad faults JSON: "+err.Error())
				return
			}
			f := j.faults()
			if err := f.Validate(); err != nil {
				bad(http.StatusBadRequest, err.Error())
				return
			}
			if model != "" {
				s.SetModelFaults(model, f)
			} else {
				s.SetFaults(f)
			}
			writeJSON(w, http.StatusOK, f)
		case http.MethodDelete:
			if model == "" {
				s.SetFaults(Faults{})
			} else {
				s.ClearModelFaults(model)
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			bad(http.StatusMethodNotAllowed, "use GET, PUT or DELETE")
		}
	default:
		bad(http.StatusNotFound, "unknown mock control path "+r.URL.Path)
	}
}

// queryKey returns the ?key= value of r.
func queryKey(r *http.Request) string {
	v, _ := url.ParseQuery(r.URL.RawQuery)
	return v.Get("key")
}
