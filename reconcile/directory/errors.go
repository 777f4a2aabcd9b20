package directory

import "errors"

// ErrFailClosed is wrapped by every error a Directory returns from Search (and by NewLDAP's
// connection errors): the search did not complete, so nothing of it may be used and the
// caller must change nothing for the templates that searched.
var ErrFailClosed = errors.New("directory search failed (fail closed)")
