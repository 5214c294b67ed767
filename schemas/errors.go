package schemas

import "errors"

// ErrInvalid is wrapped by every validation error, so callers can map any of
// them to "bad request" with errors.Is.
var ErrInvalid = errors.New("invalid message")

// FieldError names the field of a message that failed validation.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }
