package policy

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Alias comparison.
//
// A conferencing node sends the dialled alias as it received it: with or without a URI
// scheme, in any letter case. roster stores aliases as rendered (usually lower case, from
// LDAP mail attributes). Two aliases are the same when their normalized forms compare
// equal ignoring letter case — on the host part after '@' (DNS names are
// case-insensitive) and, by choice, on the local part too:
//
//   - RFC 3261 makes a SIP URI's user part case-sensitive, but in practice the local part
//     is an e-mail style name (meet.alice@…) that people type, endpoints upper-case and
//     directories store in any case; a call to Meet.Alice@example.com that falls back to
//     Pexip's database, or is rejected, because of letter case would be a support call,
//     not a feature. H.323 IDs and E.164 numbers carry no meaningful case either.
//   - The cost is that two stored aliases differing only in letter case (roster's own
//     uniqueness check is exact) fold together. The index then prefers the object whose
//     alias matches the dialled one exactly; if none or several do, the alias is ambiguous
//     and answered as unknown (policy_unknown), never with a guess. Snapshot.Status counts
//     such collisions so the operator can see them.
//
// Normalization (normalizeAlias): surrounding whitespace trimmed, an enclosing <…>
// removed, a leading sip:, sips:, h323: or tel: scheme removed (any case), and after a
// scheme any URI parameters or headers (;transport=tls, ?subject=…) cut off. URL decoding
// happens once, where the alias is read from the request: local_alias as any query value
// (application/x-www-form-urlencoded, so a literal '+' is a space and an E.164 '+' comes
// as %2B, as every URL encoder writes it), the registration alias as a path segment
// (RFC 3986, where '+' is itself).

// schemes are the URI schemes stripped from an alias, lower case, with their colon.
var schemes = [...]string{"sip:", "sips:", "h323:", "tel:"}

// normalizeAlias returns alias without scheme, brackets, parameters and surrounding
// whitespace, letter case preserved. It allocates nothing.
func normalizeAlias(alias string) string {
	s := strings.TrimSpace(alias)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	for _, p := range schemes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			if i := strings.IndexAny(s, ";?"); i >= 0 {
				s = s[:i]
			}
			s = strings.TrimSpace(s)
			break
		}
	}
	return s
}

// foldAlias is the case-folded form of a normalized alias: the hash key of the index.
// strings.ToLower returns its argument unchanged (no allocation) when there is nothing to
// lower, which is the common case.
func foldAlias(norm string) string { return strings.ToLower(norm) }

// equalFolded reports whether stored (a normalized alias, any case) folds to folded.
func equalFolded(stored, folded string) bool {
	if len(stored) != len(folded) {
		// Lower-casing can change the length of non-ASCII text.
		return hasNonASCII(stored) && strings.ToLower(stored) == folded
	}
	for i := 0; i < len(stored); i++ {
		c := stored[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(stored) == folded
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// queryParam returns the first value of name in a raw query string, decoded as
// url.ParseQuery would, without building a map of every parameter. ok is false when the
// parameter is absent or its encoding is invalid.
func queryParam(rawQuery, name string) (value string, ok bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != name {
			if key, err := url.QueryUnescape(k); err != nil || key != name {
				continue
			}
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return "", false
		}
		return val, true
	}
	return "", false
}
