package mock

import (
	"encoding/json"
	"strings"
	"unicode"
)

// toolMode is how a request constrains tool use, whatever the vendor.
type toolMode int

const (
	toolAuto     toolMode = iota // call the first declared tool
	toolNone                     // never call a tool
	toolRequired                 // must call some tool (first declared)
	toolNamed                    // must call toolName
)

// call is a vendor request normalised to what the mock needs.
type call struct {
	model     string
	stream    bool
	texts     []string // every message text, system included (input tokens)
	prompt    string   // text of the last user message
	system    string   // system prompt, if any
	maxTokens int      // 0 = unlimited
	stop      []string
	tools     []string // declared tool names, in order
	toolMode  toolMode
	toolName  string
	// includeUsage is OpenAI's stream_options.include_usage.
	includeUsage bool
	// prefill is the text of a final assistant message (the start of the
	// answer, to be continued), "" when the last message is not one.
	prefill string
	// embed holds an embeddings call's inputs, dims its vector length,
	// batch whether Gemini's batch method was called.
	embed []string
	dims  int
	batch bool
}

// contextWindow is the context window the mock's ContextLength errors name.
const contextWindow = 8192

// inputWords counts the words of every message text of c.
func inputWords(c *call) int {
	n := 0
	for _, t := range c.texts {
		n += countWords(t)
	}
	return n
}

// finish is the normalised reason a reply ended.
type finish int

const (
	finishStop    finish = iota // natural end
	finishStopSeq               // cut at a stop sequence
	finishLength                // truncated at the max-token limit
	finishTool                  // ended with a tool call
)

// toolCall is a reply's tool call.
type toolCall struct {
	name string
	args string // JSON object text
}

// output is the reply the mock gives to a call, vendor-neutral.
type output struct {
	seq       int64
	model     string
	text      string
	tool      *toolCall
	finish    finish
	stopSeq   string
	inTokens  int
	outTokens int
	// embed, dims and batch are the embeddings call's (see call).
	embed []string
	dims  int
	batch bool
}

// countWords is the mock's tokenizer: whitespace-separated words.
func countWords(s string) int {
	n, in := 0, false
	for _, r := range s {
		sp := unicode.IsSpace(r)
		if !sp && !in {
			n++
		}
		in = !sp
	}
	return n
}

// buildOutput computes the deterministic reply to c.
func (s *Server) buildOutput(c *call, f Faults, seq int64) *output {
	out := &output{seq: seq, model: c.model, embed: c.embed, dims: c.dims, batch: c.batch}
	for _, t := range c.texts {
		out.inTokens += countWords(t)
	}
	if c.embed != nil {
		return out
	}
	if name := pickTool(c); name != "" {
		args := string(s.opts.ToolArguments)
		if args == "" {
			args = "{}"
		}
		out.tool = &toolCall{name: name, args: args}
		out.finish = finishTool
		out.outTokens = countWords(name) + countWords(args)
	} else {
		text := s.reply(c.prompt)
		// A prefill is honoured: the answer is the rest of the reply.
		if rest, ok := strings.CutPrefix(text, c.prefill); ok && c.prefill != "" {
			text = rest
		}
		text, out.stopSeq = cutStop(text, c.stop)
		if out.stopSeq != "" {
			out.finish = finishStopSeq
		}
		if c.maxTokens > 0 {
			if cut, ok := truncateWords(text, c.maxTokens); ok {
				text, out.finish, out.stopSeq = cut, finishLength, ""
			}
		}
		out.text = text
		out.outTokens = countWords(text)
	}
	if f.InputTokens > 0 {
		out.inTokens = f.InputTokens
	}
	if f.OutputTokens > 0 {
		out.outTokens = f.OutputTokens
	}
	return out
}

// reply is the configured reply text for a prompt.
func (s *Server) reply(prompt string) string {
	if s.opts.Reply != nil {
		return s.opts.Reply(prompt)
	}
	return "mock reply to: " + prompt
}

// pickTool returns the tool the reply calls, or "" for a text reply.
func pickTool(c *call) string {
	if len(c.tools) == 0 || c.toolMode == toolNone {
		return ""
	}
	if c.toolMode == toolNamed && c.toolName != "" {
		return c.toolName
	}
	return c.tools[0]
}

// cutStop cuts text before the earliest stop sequence; it returns the
// sequence that matched, or "".
func cutStop(text string, stops []string) (string, string) {
	best, seq := -1, ""
	for _, st := range stops {
		if st == "" {
			continue
		}
		if i := strings.Index(text, st); i >= 0 && (best < 0 || i < best) {
			best, seq = i, st
		}
	}
	if best < 0 {
		return text, ""
	}
	return text[:best], seq
}

// truncateWords keeps the first n words of text (with their original
// spacing); ok reports whether anything was cut.
func truncateWords(text string, n int) (string, bool) {
	words := 0
	in := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		if !sp && !in {
			if words == n {
				return strings.TrimRightFunc(text[:i], unicode.IsSpace), true
			}
			words++
		}
		in = !sp
	}
	return text, false
}

// splitWords splits text into stream pieces, one word each with its leading
// whitespace, so that concatenating the pieces gives text back exactly.
func splitWords(text string) []string {
	var pieces []string
	start := 0
	in := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		if !sp && !in && i > 0 && strings.TrimSpace(text[start:i]) != "" {
			pieces = append(pieces, text[start:i])
			start = i
		}
		in = !sp
	}
	if start < len(text) {
		pieces = append(pieces, text[start:])
	}
	return pieces
}

// splitN splits s into pieces of at most n bytes.
func splitN(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// textOf extracts the text of a string or an array of {type:"text",text}
// parts (OpenAI and Anthropic content), recursing into nested "content".
func textOf(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type    string          `json:"type"`
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b []string
	for _, p := range parts {
		switch {
		case p.Text != "":
			b = append(b, p.Text)
		case len(p.Content) > 0:
			if t := textOf(p.Content); t != "" {
				b = append(b, t)
			}
		}
	}
	return strings.Join(b, "\n")
}
