package schemas

import "errors"

// ErrInvalid is wrapped by every validation error, so callers can map any of
// them to "bad request" with errors.Is.
var ErrInvalid = errors.New("invalid message")

// ErrLimit is wrapped (besides ErrInvalid) by the errors of a value over an
// identifier limit (limits.go): too long or outside its character set. It is
// always the caller's mistake (HTTP 400), never an unknown route or model.
var ErrLimit = errors.New("identifier limit")

// FieldError names the field of a message that failed validation.
type FieldError struct {
	Field string
	Msg   string
	// Err, when set, is a second sentinel the error matches (ErrLimit).
	Err error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes every FieldError match ErrInvalid, and Err when set.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}
