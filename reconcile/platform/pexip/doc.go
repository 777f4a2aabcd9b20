// Package pexip is a small client of Pexip Infinity's management REST API
// (/api/admin/configuration/v1/, see PEXIP.md §1), on net/http and encoding/json: no
// Pexip Go client exists. It knows the four resources roster owns — conferences (VMRs,
// created with their aliases), conference aliases, devices and end users — and how to
// list (paging through meta.next), get, create (201 + Location), patch only the fields
// given, and delete them. Answers are classified into errors a deliverer can act on
// (ErrDuplicate with the field, ErrInvalid, ErrNotFound, ErrRateLimited with Retry-After,
// ErrServer, ErrNetwork); rate-limited, server and network errors are retried with
// backoff, every request waits for a token of a per-minute rate limiter, and a 429
// pauses every request of the client until its Retry-After has passed.
//
// # Ownership marker
//
// roster must recognise on the platform the objects it made: after a crash between a
// create and the record of its id, the create is sent again, meets "already exists",
// and must adopt the object only if roster made it; a hand-made object with the same
// name, or one of another roster, is a conflict and is left alone.
//
// The marker is a suffix of the description: "<description> [roster:<instance>]",
// where instance names one roster installation (see Marker). The choice, field by field:
//
//   - sync_tag is Pexip's own LDAP sync's (PEXIP.md): never set or read.
//   - tag is a managed field of roster's VMRs and devices (the usage-tracking tag of the
//     templates); a marker there would overwrite the operator's value.
//   - description is free text on conferences, aliases and devices. Pexip's LDAP sync
//     writes descriptions from its templates, but only ever whole values from directory
//     attributes, never a bracketed "[roster:…]" suffix, so a synced object never
//     carries the marker; a human copying it by hand is the only false positive, and an
//     instance id makes a second roster's objects visible as not ours. It costs up to
//     len(MarkerSuffix) of the 250 characters; a longer description is cut to fit.
//
// End users have no free-text field (every field is the person's data), so they carry
// no marker: an end user is adopted on "already exists" only by the deliverer's other
// evidence (see package push), never by this package.
//
// Credentials: the password goes only into the Authorization header; it never appears
// in an error (every message is scrubbed of it), and a URL holding credentials is refused.
package pexip
