package pexip

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of failure, for errors.Is on an *Error.
var (
	ErrDuplicate   = errors.New("already exists")    // 400 naming a unique field
	ErrInvalid     = errors.New("invalid value")     // 400 otherwise
	ErrNotFound    = errors.New("not found")         // 404
	ErrRateLimited = errors.New("rate limited")      // 429
	ErrServer      = errors.New("server error")      // 5xx
	ErrNetwork     = errors.New("network error")     // no answer
	ErrAuth        = errors.New("not authorised")    // 401, 403
	ErrUnexpected  = errors.New("unexpected answer") // anything else, or an undecodable body
)

// Error is a failed request: what was done, what the platform answered, and, for a 400,
// the field it named.
type Error struct {
	Op         string        // e.g. "create conference"
	Status     int           // HTTP status; 0 when there was no answer
	Kind       error         // one of the Err* values
	Field      string        // the field a 400 named, when it named one
	Detail     string        // the platform's message, scrubbed of credentials
	RetryAfter time.Duration // from Retry-After, when sent
	// MayHaveActed: an earlier try of the same call got no answer or a 5xx, so the node
	// may have acted on it (a create answered "already exists" may be the call's own).
	MayHaveActed bool
	cause        error // a network error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pexip: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	b.WriteString(e.Kind.Error())
	if e.Field != "" {
		b.WriteString(" (")
		b.WriteString(e.Field)
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Kind, e.cause}
	}
	return []error{e.Kind}
}

// Retryable reports whether err may succeed when sent again unchanged: rate limited,
// a server error or no answer. Duplicates, invalid values, missing objects and refused
// credentials will not.
func Retryable(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrServer) || errors.Is(err, ErrNetwork)
}

// RetryAfterOf returns the Retry-After err carries, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// MayHaveActed reports whether err is a call's answer after an earlier try of it that
// may have taken effect (see Error.MayHaveActed).
func MayHaveActed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.MayHaveActed
}

// FieldOf returns the field a 400 named, or "".
func FieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// classify turns a non-success answer into an *Error.
func classify(op string, status int, retryAfter string, body []byte, now time.Time) *Error {
	e := &Error{Op: op, Status: status}
	switch {
	case status == 400:
		e.Kind = ErrInvalid
		msgs := decodeErrorBody(body)
		if len(msgs) == 0 {
			e.Detail = snippet(body)
			break
		}
		e.Field, e.Detail = msgs[0].Field, msgs[0].Message
		for _, m := range msgs {
			if isDuplicateMessage(m.Message) {
				e.Kind, e.Field, e.Detail = ErrDuplicate, m.Field, m.Message
				break
			}
		}
	case status == 401 || status == 403:
		e.Kind = ErrAuth
	case status == 404:
		e.Kind = ErrNotFound
	case status == 429:
		e.Kind = ErrRateLimited
		e.RetryAfter = parseRetryAfter(retryAfter, now)
	case status >= 500:
		e.Kind = ErrServer
		e.RetryAfter = parseRetryAfter(retryAfter, now)
		e.Detail = snippet(body)
	default:
		e.Kind = ErrUnexpected
		e.Detail = snippet(body)
	}
	return e
}

// snippet is the start of a body, for a message: one line, at most 200 bytes.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "")
}
