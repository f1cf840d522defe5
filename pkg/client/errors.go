package client

import (
	"fmt"
	"strings"
)

// The codes of API errors (docs/api.md, "Errors").
const (
	CodeBadRequest      = "bad_request"
	CodeInvalidPipeline = "invalid_pipeline"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "too_large"
	CodeUnsupportedType = "unsupported_media_type"
	CodeTooManyRequests = "too_many_requests"
	CodeInternal        = "internal"
)

// Error is an error answered by the API: an HTTP status of 400 or more. Code is empty when
// the body was not the API's error document (a proxy's page, for instance); Message then
// holds the start of the body.
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
}

// Detail is one problem of a pipeline file refused with CodeInvalidPipeline. Line and Col
// start at 1; both are 0 for a problem with the whole file.
type Detail struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for _, d := range e.Details {
		b.WriteString("\n" + d.String())
	}
	return b.String()
}

// String renders the detail as "line:col: message (hint: ...)".
func (d Detail) String() string {
	var b strings.Builder
	if d.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", d.Line, d.Col)
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString(" (hint: " + d.Hint + ")")
	}
	return b.String()
}

// UnreachableError is a call that got no answer: nothing listens at URL, the name does not
// resolve, the connection broke.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the server is unreachable at %s: %v (start it with `conveyor server`, or point at another with --server or CONVEYOR_SERVER)", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }
