package waypost

// Code is a stable error code, the same string in every language (SPEC §8),
// plus the two the C boundary adds.
type Code string

// Error is every error this package returns: a stable code and a human
// message naming the field or id at fault. Match codes with errors.Is
// against the Err* values, or read Code.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is an *Error with the same code, so
// errors.Is(err, waypost.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code Code, message string) *Error { return &Error{Code: code, Message: message} }
