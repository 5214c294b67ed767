// Package jsonobj edits the top level of a JSON object without disturbing
// anything else: members keep their order and their values stay byte for byte
// as the caller wrote them.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
)

// ErrNotObject is returned when the input is not a JSON object.
var ErrNotObject = errors.New("request body must be a JSON object")

// Member is one top-level member of an object.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Object is an ordered list of top-level members.
type Object struct {
	Members []Member
}

// Parse splits a JSON object into its top-level members, in order. Like
// encoding/json it accepts duplicate names and invalid UTF-8 (the
// values are copied as they are).
func Parse(data []byte) (*Object, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotObject, err)
	}
	if tok.Kind() != '{' {
		return nil, ErrNotObject
	}
	o := &Object{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotObject, err)
		}
		key := tok.String()
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrNotObject, key, err)
		}
		o.Members = append(o.Members, Member{Key: key, Value: bytes.Clone(raw)})
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotObject, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the object", ErrNotObject)
	}
	return o, nil
}

// Get returns the value of key, if present.
func (o *Object) Get(key string) (json.RawMessage, bool) {
	for _, m := range o.Members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of key in place, or appends the member.
func (o *Object) Set(key string, value json.RawMessage) {
	found := false
	out := o.Members[:0]
	for _, m := range o.Members {
		if m.Key == key {
			if found {
				continue // drop duplicates so the value is unambiguous
			}
			m.Value, found = value, true
		}
		out = append(out, m)
	}
	o.Members = out
	if !found {
		o.Members = append(o.Members, Member{Key: key, Value: value})
	}
}

// Delete removes every member named key.
func (o *Object) Delete(key string) {
	out := o.Members[:0]
	for _, m := range o.Members {
		if m.Key != key {
			out = append(out, m)
		}
	}
	o.Members = out
}

// Bytes renders the object.
func (o *Object) Bytes() []byte {
	var b bytes.Buffer
	size := 2
	for _, m := range o.Members {
		size += len(m.Key) + len(m.Value) + 4
	}
	b.Grow(size)
	b.WriteByte('{')
	for i, m := range o.Members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := jsontext.AppendQuote(b.AvailableBuffer(), m.Key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.Value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
