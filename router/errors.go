package router

import "errors"

// ErrBudgetExceeded is wrapped by *BudgetError: the job's tenant is over
// its daily or monthly budget and its budget says reject. The gateway maps
// it to 429 with error type budget_exceeded (schemas.ErrBudgetExceeded).
var ErrBudgetExceeded = errors.New(budgetExceeded)

const budgetExceeded = "budget exceeded"

// BudgetError names the tenant over budget and which budget.
type BudgetError struct {
	Tenant string
	// Reason says which cap was hit, e.g. "daily budget of $5.00 reached ($5.02 spent)".
	Reason string
}

func (e *BudgetError) Error() string {
	t := e.Tenant
	if t == "" {
		t = "(none)"
	}
	return budgetExceeded + " for tenant " + t + ": " + e.Reason
}

// Unwrap makes every BudgetError match ErrBudgetExceeded.
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }
