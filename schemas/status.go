package schemas

import "net/http"

// StatusClientClosed is the status of a job whose caller went away before
// its answer: nginx's 499.
const StatusClientClosed = 499

// HTTPStatus maps an error type to the HTTP status a caller sees. It is the
// one mapping, used by the gateway's error answers, the llm.complete
// service's error code and the batch output: the caller's mistakes are 4xx,
// upstream trouble is 502 (an upstream auth failure is the operator's
// config problem), and no_target, where no provider was called at all, is
// 503: the broker itself cannot serve the job now.
func HTTPStatus(errType string) int {
	switch errType {
	case ErrInvalidRequest, ErrContentFilter, ErrContextLength:
		return http.StatusBadRequest
	case ErrNotFound:
		return http.StatusNotFound
	case ErrRateLimited, ErrBudgetExceeded:
		return http.StatusTooManyRequests
	case ErrTimeout, ErrDeadlineExceeded:
		return http.StatusGatewayTimeout
	case ErrCanceled:
		return StatusClientClosed
	case ErrNoTarget:
		return http.StatusServiceUnavailable
	case ErrInternal:
		return http.StatusInternalServerError
	default: // auth, server_error, connection, bad_response, stream_broken, exhausted, unknown
		return http.StatusBadGateway
	}
}
