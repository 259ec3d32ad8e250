package image

import (
	"errors"
	"fmt"

	"github.com/distribution/reference"
)

// notFoundError is returned when an image, reference or blob is not in the store.
// It implements the NotFound() marker that containerd/errdefs and moby's errdefs recognise.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) NotFound()     {}

// invalidError is returned for malformed input (references, archives). It implements
// the InvalidParameter() (moby) and InvalidArgument() (containerd) markers.
type invalidError struct{ err error }

func (e *invalidError) Error() string     { return e.err.Error() }
func (e *invalidError) Unwrap() error     { return e.err }
func (e *invalidError) InvalidParameter() {}
func (e *invalidError) InvalidArgument()  {}

// IsNotFound reports whether err means the image (or reference, or blob) does not exist.
func IsNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf)
}

// IsInvalidArgument reports whether err is caused by malformed input: an invalid reference
// ("invalid reference format…") or an unreadable or inconsistent archive. The API maps it to 400.
func IsInvalidArgument(err error) bool {
	var ie interface{ InvalidParameter() }
	return errors.As(err, &ie)
}

// errNoSuchImage builds Docker's not-found error for what the user typed.
func errNoSuchImage(refOrID string) error {
	return &notFoundError{msg: "No such image: " + familiarInput(refOrID)}
}

// familiarInput renders user input the way Docker's "No such image" message does:
// a name gets its default tag and familiar form; anything else is shown as given.
func familiarInput(s string) string {
	if idRE.MatchString(s) {
		if len(s) == 64 {
			return "sha256:" + s
		}
		return s
	}
	if n, err := reference.ParseNormalizedNamed(s); err == nil {
		return reference.FamiliarString(reference.TagNameOnly(n))
	}
	return s
}

func invalidf(format string, a ...any) error { return &invalidError{err: fmt.Errorf(format, a...)} }
