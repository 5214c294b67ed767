// Package sse reads a text/event-stream response body.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MaxLine caps one line of the stream; longer lines are an error.
const MaxLine = 16 << 20

// ErrLineTooLong is returned when one line exceeds MaxLine.
var ErrLineTooLong = errors.New("event stream line too long")

// Event is one dispatched server-sent event.
type Event struct {
	// Name is the "event:" field, empty for the default "message".
	Name string
	// Data is the "data:" lines joined by newlines.
	Data []byte
}

// Reader yields the events of a stream.
type Reader struct {
	r *bufio.Reader
}

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// an event cut off by the end of the stream (no blank line after it) is
// returned, as far as it got, with io.ErrUnexpectedEOF.
func (s *Reader) Next() (Event, error) {
	var ev Event
	var data bytes.Buffer
	hasData, pending := false, false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if pending {
					ev.Data = data.Bytes()
					return ev, io.ErrUnexpectedEOF
				}
				return ev, io.EOF
			}
			return ev, err
		}
		if len(line) == 0 {
			if !hasData && ev.Name == "" {
				pending = false
				continue
			}
			ev.Data = data.Bytes()
			return ev, nil
		}
		pending = true
		if line[0] == ':' {
			continue // comment / keep-alive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			ev.Name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
}

func (s *Reader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := s.r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return nil, ErrLineTooLong
		}
		if !isPrefix {
			return line, nil
		}
	}
}
