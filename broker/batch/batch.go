// Package batch runs OpenAI Batch-format files through Switchboard: each
// input line becomes a job, results are written in OpenAI's batch output
// format matched by custom_id, and an interrupted run resumes without sending
// any line twice.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Options configure one batch run.
type Options struct {
	// Input is the OpenAI Batch input file (JSONL).
	Input string
	// Output receives one OpenAI Batch output line per input line.
	Output string
	// Route overrides each line's body.model when set.
	Route string
	// BatchID names the batch; by default it is derived from the input's
	// content, so a re-run of the same file resumes the same batch.
	BatchID string
	// Chunk is how many lines are recorded and published per step.
	Chunk int
	// Progress receives a progress bar when non-nil (a TTY).
	Progress io.Writer
	// Metadata is added to every job (e.g. tenant).
	Metadata map[string]string
}

// Summary counts a run's outcomes.
type Summary struct {
	BatchID   string
	Total     int
	Succeeded int
	Failed    int
	Invalid   int
	// Resumed counts lines already answered by an earlier run.
	Resumed int
	// ErrorLines counts the output's lines that carry an error, this
	// run's and an earlier run's (a script's exit status).
	ErrorLines int
}

// InputLine is one line of the OpenAI Batch input format.
type InputLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// OutputLine is one line of the OpenAI Batch output format.
type OutputLine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *OutputResponse `json:"response"`
	Error    *OutputError    `json:"error"`
}

// OutputResponse is the response part of an output line.
type OutputResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// OutputError is the error part of an output line.
type OutputError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// stateLine records that a line was given a job id (intent) and, later, that
// its job was durably published (sent).
type stateLine struct {
	CustomID string `json:"custom_id"`
	JobID    string `json:"job_id"`
	Sent     bool   `json:"sent,omitempty"`
}

type pending struct {
	line  int
	input InputLine
	jobID string
	sent  bool
}

// Run submits every unanswered line of the input and waits until each has an
// output line, or ctx ends (a later Run resumes).
func Run(ctx context.Context, client *broker.Client, js jetstream.JetStream, opts Options) (*Summary, error) {
	if opts.Chunk <= 0 {
		opts.Chunk = 256
	}
	data, err := os.ReadFile(opts.Input)
	if err != nil {
		return nil, fmt.Errorf("read input: %w", err)
	}
	sum := &Summary{BatchID: opts.BatchID}
	if sum.BatchID == "" {
		h := sha256.Sum256(data)
		sum.BatchID = "batch_" + hex.EncodeToString(h[:8])
	}
	if !schemas.ValidToken(sum.BatchID) {
		return nil, fmt.Errorf("batch id %q must be a NATS subject token (no spaces, '.', '*' or '>')", sum.BatchID)
	}

	out, done, earlierErrors, err := openOutput(opts.Output)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	sum.ErrorLines = earlierErrors
	statePath := opts.Output + ".state"
	state, err := readState(statePath)
	if err != nil {
		return nil, err
	}
	stateFile, err := os.OpenFile(statePath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	defer stateFile.Close()

	w := &writer{file: out, out: bufio.NewWriterSize(out, 64<<10), done: done, sum: sum}
	var todo []*pending
	seen := map[string]int{}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		lineNo := i + 1
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		sum.Total++
		in, perr := parseLine(raw)
		if perr == nil {
			if prev, dup := seen[in.CustomID]; dup {
				perr = fmt.Errorf("duplicate custom_id %q (first on line %d)", in.CustomID, prev)
				in.CustomID = ""
			} else {
				seen[in.CustomID] = lineNo
			}
		}
		if perr != nil {
			id := in.CustomID
			if id == "" {
				id = fmt.Sprintf("line-%d", lineNo)
			}
			if !done[id] {
				if err := w.write(OutputLine{ID: "batch_req_" + id, CustomID: id,
					Error: &OutputError{Code: "invalid_request", Message: fmt.Sprintf("line %d: %v", lineNo, perr)}}); err != nil {
					return sum, err
				}
			}
			sum.Invalid++
			continue
		}
		if done[in.CustomID] {
			sum.Resumed++
			continue
		}
		p := &pending{line: lineNo, input: in}
		if st, ok := state[in.CustomID]; ok {
			p.jobID, p.sent = st.JobID, st.Sent
		}
		todo = append(todo, p)
	}
	if err := w.sync(); err != nil {
		return sum, err
	}
	byJob := make(map[string]*pending, len(todo))
	for _, p := range todo {
		if p.jobID == "" {
			p.jobID = schemas.NewJobID()
		}
		byJob[p.jobID] = p
	}

	// Collect results first, so none is missed while submitting.
	results := make(chan *batchResult, 1024)
	cons, err := js.OrderedConsumer(ctx, topology.StreamResults, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topology.BatchResults(sum.BatchID)},
	})
	if err != nil {
		return sum, fmt.Errorf("read results: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if res, err := decodeResult(m.Data()); err == nil {
			results <- res
		}
	})
	if err != nil {
		return sum, fmt.Errorf("read results: %w", err)
	}
	defer cc.Stop()

	bar := newProgress(opts.Progress, sum.Total)
	// remaining counts submitted lines still without an output line; lines
	// the client rejects get a failed Result too, so every one is answered
	// through the results stream.
	remaining := len(todo)
	handle := func(res *batchResult) error {
		p, ok := byJob[res.ID]
		if !ok || w.done[p.input.CustomID] {
			return nil // another batch's run, or a redelivery
		}
		if err := w.write(outputFor(p, res)); err != nil {
			return err
		}
		remaining--
		bar.update(len(w.done), sum)
		return nil
	}
	bar.update(len(w.done), sum)
	for start := 0; start < len(todo); start += opts.Chunk {
		chunk := todo[start:min(start+opts.Chunk, len(todo))]
		if err := submitChunk(ctx, client, js, stateFile, chunk, sum.BatchID, opts); err != nil {
			return sum, err
		}
		for drained := false; !drained; {
			select {
			case res := <-results:
				if err := handle(res); err != nil {
					return sum, err
				}
			default:
				drained = true
			}
		}
	}
	flush := time.NewTicker(500 * time.Millisecond)
	defer flush.Stop()
	for remaining > 0 {
		select {
		case <-ctx.Done():
			_ = w.sync()
			bar.finish()
			return sum, fmt.Errorf("interrupted with %d of %d lines pending (re-run to resume): %w", remaining, sum.Total, ctx.Err())
		case res := <-results:
			if err := handle(res); err != nil {
				return sum, err
			}
		case <-flush.C:
			if err := w.sync(); err != nil {
				return sum, err
			}
		}
	}
	bar.finish()
	if err := w.sync(); err != nil {
		return sum, err
	}
	return sum, nil
}

// submitChunk records intents durably, publishes the chunk's jobs and records
// them as sent. A crash between the two records republishes with the same
// job id and dedup id, so the line still runs once.
func submitChunk(ctx context.Context, client *broker.Client, js jetstream.JetStream, state *os.File, chunk []*pending, batchID string, opts Options) error {
	// The chunk's records go out in one write before each sync instead of
	// one write each; whatever is recorded when the chunk ends early is
	// written out too (an early end leaves it unsynced, as before).
	buf := bufio.NewWriter(state)
	defer func() { _ = buf.Flush() }()
	syncState := func() error {
		if err := buf.Flush(); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
		if err := state.Sync(); err != nil {
			return fmt.Errorf("sync state: %w", err)
		}
		return nil
	}
	enc := json.NewEncoder(buf)
	var toSend []*pending
	for _, p := range chunk {
		if p.sent {
			continue
		}
		if err := enc.Encode(stateLine{CustomID: p.input.CustomID, JobID: p.jobID}); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
		toSend = append(toSend, p)
	}
	if len(toSend) == 0 {
		return nil
	}
	if err := syncState(); err != nil {
		return err
	}
	// The chunk's jobs are published pipelined (a synchronous publish per
	// line waits a round trip each); a line is recorded as sent only once
	// the server has confirmed it, and one whose async publish failed is
	// published again synchronously (same dedup id), which reports a full
	// queue or an outage as before.
	type inFlight struct {
		p   *pending
		job *schemas.Job
		fut jetstream.PubAckFuture
	}
	var sent []inFlight
	for _, p := range toSend {
		job := jobFor(p, batchID, opts)
		if err := client.Prepare(job); err != nil {
			if errType, code := broker.RejectType(err); code != 500 && errType != schemas.ErrRateLimited {
				// Answer the line now with the error (invalid, expired,
				// over budget); it is never sent.
				res := broker.FailedResult(job, errType, err.Error()+routeHint(job, opts, err), time.Now())
				res.Error.StatusCode = code
				if perr := broker.PublishResult(ctx, js, client.Conn(), job, res); perr != nil {
					return perr
				}
				continue
			}
			return err
		}
		fut, err := topology.PublishJobAsync(js, job)
		if err != nil {
			fut = nil // published synchronously below
		}
		sent = append(sent, inFlight{p: p, job: job, fut: fut})
	}
	expired := make(chan struct{}) // closed: every later wait ends at once
	stop := time.AfterFunc(confirmWait, func() { close(expired) })
	defer stop.Stop()
	for _, s := range sent {
		if !confirmed(ctx, s.fut, expired) {
			if err := topology.PublishJob(ctx, js, s.job); err != nil {
				return fmt.Errorf("line %d: %w", s.p.line, err)
			}
		}
		s.p.sent = true
		if err := enc.Encode(stateLine{CustomID: s.p.input.CustomID, JobID: s.p.jobID, Sent: true}); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
	}
	return syncState()
}

// confirmWait bounds the wait for a chunk's async publishes; those not
// confirmed by then are published again synchronously.
const confirmWait = 10 * time.Second

// confirmed waits for an async publish: false when it failed, was never
// started (nil), or ctx ended or the chunk's wait passed first.
func confirmed(ctx context.Context, f jetstream.PubAckFuture, timeout <-chan struct{}) bool {
	if f == nil {
		return false
	}
	select {
	case <-f.Ok():
		return true
	case <-f.Err():
		return false
	default:
	}
	select {
	case <-f.Ok():
		return true
	case <-f.Err():
		return false
	case <-ctx.Done():
		return false
	case <-timeout:
		return false
	}
}

// routeHint explains an unknown route that came from a line's body.model
// (OpenAI batch files name models, Switchboard routes them).
func routeHint(job *schemas.Job, opts Options, err error) string {
	var fe *schemas.FieldError
	if opts.Route != "" || job.Route == "" || !errors.As(err, &fe) || fe.Field != "route" {
		return ""
	}
	return fmt.Sprintf(" (the line's body.model %q is taken as a route name: pass --route NAME to send every line through a route, or write body.model as provider/model)", job.Route)
}

// isEmbeddings reports whether a batch line's url is the embeddings endpoint.
func isEmbeddings(url string) bool { return url == "/v1/embeddings" || url == "/embeddings" }

func jobFor(p *pending, batchID string, opts Options) *schemas.Job {
	job := &schemas.Job{ID: p.jobID, Batch: batchID, Request: p.input.Body,
		Metadata: map[string]string{schemas.MetaCustomID: p.input.CustomID}}
	if isEmbeddings(p.input.URL) {
		job.Kind = schemas.KindEmbeddings
	}
	for k, v := range opts.Metadata {
		job.Metadata[k] = v
	}
	if opts.Route != "" {
		job.Route = opts.Route
	} else {
		var body struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(p.input.Body, &body)
		if strings.Contains(body.Model, "/") {
			job.Model = body.Model
		} else {
			job.Route = body.Model
		}
	}
	return job
}

func parseLine(raw []byte) (InputLine, error) {
	var in InputLine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var loose InputLine
		_ = json.Unmarshal(raw, &loose)
		return loose, fmt.Errorf("invalid JSON: %v", err)
	}
	switch {
	case in.CustomID == "":
		return in, errors.New("custom_id is required")
	case in.Method != "" && in.Method != "POST":
		return in, fmt.Errorf("method %q: only POST is supported", in.Method)
	case in.URL != "" && in.URL != "/v1/chat/completions" && in.URL != "/chat/completions" && !isEmbeddings(in.URL):
		return in, fmt.Errorf("url %q: only /v1/chat/completions and /v1/embeddings are supported", in.URL)
	case len(in.Body) == 0 || in.Body[0] != '{':
		return in, errors.New("body must be a JSON object (a chat-completions or embeddings request)")
	}
	if err := schemas.CheckText("custom_id", in.CustomID, schemas.MaxMetaValueLen, true); err != nil {
		in.CustomID = "" // the output line names the line instead
		return in, err
	}
	return in, nil
}

// batchResult is the part of a Result an output line is made of.
type batchResult struct {
	V        int                `json:"v"`
	ID       string             `json:"id"`
	Status   string             `json:"status"`
	Response json.RawMessage    `json:"response"`
	Error    *schemas.ErrorInfo `json:"error"`
}

// decodeResult reads the fields of a Result an output line needs (the
// rest, attempts above all, is only scanned).
func decodeResult(data []byte) (*batchResult, error) {
	var r batchResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("result: invalid JSON: %w", err)
	}
	if r.V != schemas.Version {
		return nil, fmt.Errorf("result: unsupported version %d", r.V)
	}
	return &r, nil
}

func outputFor(p *pending, res *batchResult) OutputLine {
	line := OutputLine{ID: "batch_req_" + res.ID, CustomID: p.input.CustomID}
	if res.Status == schemas.StatusSucceeded {
		line.Response = &OutputResponse{StatusCode: 200, RequestID: res.ID, Body: res.Response}
		return line
	}
	e := res.Error
	if e == nil {
		e = &schemas.ErrorInfo{Type: schemas.ErrInternal, Message: "job failed without an error"}
	}
	status := e.StatusCode
	if status == 0 {
		status = schemas.HTTPStatus(e.Type)
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": e.Message, "type": e.Type, "code": e.Type}})
	line.Response = &OutputResponse{StatusCode: status, RequestID: res.ID, Body: body}
	line.Error = &OutputError{Code: e.Type, Message: e.Message}
	return line
}

// writer appends output lines through a buffer that sync writes out and
// syncs (every 500ms and at the end). Lines lost with a crash before then
// are written again by the next run: their Results stay on RESULTS.
type writer struct {
	file *os.File
	out  *bufio.Writer
	done map[string]bool
	sum  *Summary
}

func (w *writer) write(line OutputLine) error {
	data, err := json.Marshal(line)
	if err != nil {
		return err
	}
	if _, err := w.out.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	w.done[line.CustomID] = true
	if line.Error != nil {
		w.sum.ErrorLines++
	}
	switch {
	case line.Response == nil:
	case line.Error == nil:
		w.sum.Succeeded++
	default:
		w.sum.Failed++
	}
	return nil
}

// sync writes the buffered lines out and syncs the file.
func (w *writer) sync() error {
	if err := w.out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := w.file.Sync(); err != nil {
		return fmt.Errorf("sync output: %w", err)
	}
	return nil
}

// openOutput opens the output for appending and returns the custom_ids it
// already answers and how many of its lines carry an error; a torn last
// line (a crash mid-write) is cut off.
func openOutput(path string) (f *os.File, done map[string]bool, errorLines int, err error) {
	done = map[string]bool{}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, 0, fmt.Errorf("read output: %w", err)
	}
	valid := 0
	for len(data[valid:]) > 0 {
		nl := bytes.IndexByte(data[valid:], '\n')
		if nl < 0 {
			break
		}
		var line OutputLine
		if json.Unmarshal(data[valid:valid+nl], &line) != nil {
			break
		}
		done[line.CustomID] = true
		if line.Error != nil {
			errorLines++
		}
		valid += nl + 1
	}
	f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("open output: %w", err)
	}
	if err := f.Truncate(int64(valid)); err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("truncate output: %w", err)
	}
	if _, err := f.Seek(int64(valid), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return f, done, errorLines, nil
}

func readState(path string) (map[string]stateLine, error) {
	state := map[string]stateLine{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return state, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var st stateLine
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue // a torn last record
		}
		if prev, ok := state[st.CustomID]; ok && prev.JobID == st.JobID {
			st.Sent = st.Sent || prev.Sent
		}
		state[st.CustomID] = st
	}
	return state, sc.Err()
}
