package engine

import (
	"errors"
	"fmt"
)

// Kind classifies an engine error; front doors map it to their own status codes.
type Kind int

const (
	KindInternal Kind = iota
	KindNotFound
	KindConflict
	KindInvalid
	KindNotModified
	KindForbidden
)

// Error is an engine error with a Docker-worded message.
type Error struct {
	Kind Kind
	Msg  string
	// ExitCode, when set, is what `docker run` should exit with (126/127 for start failures).
	ExitCode int
}

func (e *Error) Error() string { return e.Msg }

func errorf(k Kind, format string, a ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, a...)}
}

// NotFound, Conflict, Invalid and NotModified build engine errors.
func NotFound(format string, a ...any) error    { return errorf(KindNotFound, format, a...) }
func Conflict(format string, a ...any) error    { return errorf(KindConflict, format, a...) }
func Invalid(format string, a ...any) error     { return errorf(KindInvalid, format, a...) }
func NotModified(format string, a ...any) error { return errorf(KindNotModified, format, a...) }

// KindOf returns the kind of err (KindInternal for foreign errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
