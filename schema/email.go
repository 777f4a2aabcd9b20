package schema

import "net/mail"

// validEmail reports whether s is a bare address (local@domain, no display name or
// brackets). Common addresses take a fast path; anything unusual goes through net/mail.
func validEmail(s string) bool {
	if s == "" || len(s) > 254 {
		return false
	}
	if fastEmail(s) {
		return true
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// ValidEmail is validEmail for other packages (overrides, rendered owner addresses).
func ValidEmail(s string) bool { return validEmail(s) }

// fastEmail accepts dot-atom@dot-atom addresses made of common characters; a subset of
// what net/mail accepts.
func fastEmail(s string) bool {
	at := -1
	prevDot := true // no leading dot
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '+':
			prevDot = false
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		case c == '@':
			if at >= 0 || prevDot {
				return false
			}
			at = i
			prevDot = true
		default:
			return false
		}
	}
	return at > 0 && at < len(s)-1 && !prevDot
}
