package pexip

// Every point of PEXIP.md marked *(unverified)* that the code depends on is here, one
// declaration each, so that checking them against a real management node means reading
// this file only. The fake (pexipfake) follows the same choices.

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// patchStatuses are the answers to a PATCH that mean "changed". PEXIP.md: 202, "some
// versions 204" (unverified); 200 is accepted too, as Django answers it when asked to
// return the object.
var patchStatuses = []int{202, 204, 200}

// CascadeDeletesAliases: deleting a conference deletes its aliases (unverified). roster
// does not rely on it: a deliverer deletes a conference's aliases before the conference,
// and treats an alias already gone (404) as deleted.
const CascadeDeletesAliases = false

// DefaultRate is the requests per minute roster sends when config.cue does not say: under
// the node's limit of "about 1,000 requests per 60 s" (unverified figure).
const DefaultRate = 900

// FieldMessage is one message of a 400 body; Field is "" for a message about the request
// as a whole.
type FieldMessage struct {
	Field, Message string
}

// decodeErrorBody reads a 400 body. Its exact shape is unverified; it accepts what
// Django/tastypie (on which the API is built) produce:
//
//	{"conference": {"name": ["Conference with this Name already exists."]}}  (resource envelope)
//	{"name": ["…"], "pin": "…"}                                            (fields)
//	{"error": "…"} or {"error_message": "…"} or {"__all__": ["…"]}          (whole request)
//
// Messages come sorted by field, so the first named field is stable. A body that is not
// a JSON object gives none.
func decodeErrorBody(body []byte) []FieldMessage {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	var out []FieldMessage
	for k, raw := range top {
		field := k
		if isWholeRequestKey(k) {
			field = ""
		}
		if msgs, ok := messages(raw); ok {
			for _, m := range msgs {
				out = append(out, FieldMessage{field, m})
			}
			continue
		}
		var inner map[string]json.RawMessage // a resource envelope
		if json.Unmarshal(raw, &inner) != nil {
			continue
		}
		for f, r := range inner {
			if isWholeRequestKey(f) {
				f = ""
			}
			if msgs, ok := messages(r); ok {
				for _, m := range msgs {
					out = append(out, FieldMessage{f, m})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Field == "") != (out[j].Field == "") {
			return out[i].Field != "" // named fields first
		}
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return out[i].Message < out[j].Message
	})
	return out
}

func isWholeRequestKey(k string) bool {
	return k == "error" || k == "error_message" || k == "__all__" || k == "detail"
}

// messages reads a string or a list of strings.
func messages(raw json.RawMessage) ([]string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l, true
	}
	return nil, false
}

// isDuplicateMessage: a 400 about a unique field says "… with this <Field> already
// exists." (Django's wording; unverified for Pexip).
func isDuplicateMessage(m string) bool {
	return strings.Contains(strings.ToLower(m), "already exist")
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date (RFC 9110). Which of
// the two Pexip sends is unverified; both are honoured. A missing or unreadable value
// is 0 (the caller's backoff applies); a huge one is capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 || n != n {
			return 0
		}
		if n > maxRetryAfter.Seconds() {
			return maxRetryAfter
		}
		d = time.Duration(n * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return max(0, min(d, maxRetryAfter))
}

// maxRetryAfter bounds one wait: a node asking for more is treated as asking for this.
const maxRetryAfter = 10 * time.Minute

// The policy interface's unverified points (PEXIP.md §2), for the policy server to use.

// PolicyCallrateBPSPerKbps: a policy answer's max_callrate_in/out are in bps, kbps × 1000
// (unverified), where the management API's are in kbps.
const PolicyCallrateBPSPerKbps = 1000

// PolicyWait is how long a conferencing node waits for a policy answer before falling
// back to its own database (unverified: "about 5 s"); roster's budget is far below it.
const PolicyWait = 5 * time.Second
