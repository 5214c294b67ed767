package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Sentinel errors of the gateway.
var (
	// ErrNoConn means Options carried no NATS connection.
	ErrNoConn = errors.New("gateway: a NATS connection is required")
	// ErrNoConfig means Options carried no config.
	ErrNoConfig = errors.New("gateway: a config is required")
	// ErrKeyNotSet means a configured gateway key's environment variable is empty.
	ErrKeyNotSet = errors.New("gateway key environment variable is not set")
)

// StatusClientClosed is the status recorded (and, when anyone still listens,
// sent) when the client went away before its answer: nginx's 499.
const StatusClientClosed = schemas.StatusClientClosed

// OpenAI error types used in error bodies.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found_error"
	typeRateLimit      = "rate_limit_error"
	typeQuota          = "insufficient_quota"
	typeTimeout        = "timeout_error"
	typeUpstream       = "upstream_error"
	typeServer         = "server_error"
	typeCanceled       = "canceled"
	typeUnavailable    = "service_unavailable"
)

// apiError is an error answered in OpenAI's shape
// {"error":{"message","type","param","code"}}.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code"`
	// UpstreamCode is the failing provider's own error code, when it gave one.
	UpstreamCode string `json:"upstream_code,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header when > 0.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

// body renders the error as OpenAI's error object. Messages are JSON for
// people to read: "<key>" stays "<key>", not "\u003ckey\u003e".
func (e *apiError) body() []byte {
	b, _ := marshalText(struct {
		Error *apiError `json:"error"`
	}{e})
	return b
}

// marshalText is json.Marshal without HTML escaping of <, > and &: the
// answers are application/json, never embedded in HTML.
func marshalText(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func invalid(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: "invalid_request", Param: param, Message: fmt.Sprintf(format, args...)}
}

// ResultError maps a failed Result's error to an HTTP status (the one
// mapping, schemas.HTTPStatus) and the OpenAI error type of its body.
func ResultError(info *schemas.ErrorInfo) (status int, errType string) {
	if info == nil {
		return http.StatusBadGateway, typeUpstream
	}
	status = schemas.HTTPStatus(info.Type)
	switch info.Type {
	case schemas.ErrBudgetExceeded:
		return status, typeQuota
	case schemas.ErrNoTarget:
		return status, typeUnavailable
	}
	switch status {
	case http.StatusTooManyRequests:
		return status, typeRateLimit
	case http.StatusBadRequest:
		return status, typeInvalidRequest
	case http.StatusNotFound:
		return status, typeNotFound
	case http.StatusGatewayTimeout:
		return status, typeTimeout
	case StatusClientClosed:
		return status, typeCanceled
	case http.StatusInternalServerError:
		return status, typeServer
	default:
		return status, typeUpstream
	}
}

// fromResult builds the error answer of a failed Result.
func fromResult(res *schemas.Result) *apiError {
	info := res.Error
	status, typ := ResultError(info)
	e := &apiError{Status: status, Type: typ, Code: "upstream_error", Message: "job failed"}
	if info != nil {
		e.Code, e.UpstreamCode = errorCode(info), info.Code
		e.Message = info.Message
		if e.Message == "" {
			e.Message = "job failed: " + info.Type
		}
	}
	if n := len(res.Attempts); n > 0 {
		e.Message = fmt.Sprintf("%s (after %d attempt%s)", e.Message, n, plural(n))
	}
	if status == http.StatusTooManyRequests {
		e.RetryAfter = 1
	}
	return e
}

// fromErrorInfo builds the error answer of a stream's error chunk.
func fromErrorInfo(info *schemas.ErrorInfo) *apiError {
	status, typ := ResultError(info)
	e := &apiError{Status: status, Type: typ, Code: errorCode(info), UpstreamCode: info.Code, Message: info.Message}
	if e.Message == "" {
		e.Message = "stream failed: " + info.Type
	}
	return e
}

// errorCode is the code a caller sees for a failed job: its error type, or
// OpenAI's context_length_exceeded for a context-window error whatever the
// vendor (what OpenAI SDK users test for).
func errorCode(info *schemas.ErrorInfo) string {
	if info.Type == schemas.ErrContextLength {
		return "context_length_exceeded"
	}
	return info.Type
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// fromSubmit maps an error of Prepare/Submit/Complete to its answer.
// prefix is stripped from field names ("request." for chat bodies, whose
// fields are top level to the caller).
func fromSubmit(err error, prefix string) *apiError {
	var fe *schemas.FieldError
	switch {
	case errors.Is(err, topology.ErrQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "queue_full", RetryAfter: 1,
			Message: "the job queue is full; retry later"}
	case errors.Is(err, router.ErrBudgetExceeded):
		return &apiError{Status: http.StatusTooManyRequests, Type: typeQuota, Code: schemas.ErrBudgetExceeded, RetryAfter: 60,
			Message: err.Error()}
	case errors.Is(err, broker.ErrDeadlineExceeded):
		return &apiError{Status: http.StatusGatewayTimeout, Type: typeTimeout, Code: schemas.ErrDeadlineExceeded,
			Message: "the request's deadline passed before a result arrived"}
	case errors.As(err, &fe):
		field := strings.TrimPrefix(fe.Field, prefix)
		if fe.Field == "request" && strings.Contains(fe.Msg, "over the limit") {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
				Message: "request body is too large: " + fe.Msg}
		}
		if errors.Is(err, schemas.ErrLimit) {
			return invalid(field, "%s: %s", field, fe.Msg)
		}
		if fe.Field == "route" || fe.Field == "model" {
			return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
				Message: "model: " + fe.Msg}
		}
		return invalid(field, "%s: %s", field, fe.Msg)
	case errors.Is(err, schemas.ErrInvalid):
		return invalid("", "%v", err)
	default:
		return &apiError{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "broker_unavailable", RetryAfter: 1,
			Message: "the broker could not accept the job: " + err.Error()}
	}
}
