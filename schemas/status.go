package schemas

import "net/http"

// HTTPStatus maps an error type to the HTTP status a caller sees: the one
// place that decides it, used by the gateway and the batch output.
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
		return 499
	case ErrAuth, ErrServerError, ErrConnection, ErrBadResponse, ErrNoTarget, ErrStreamBroken:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}
