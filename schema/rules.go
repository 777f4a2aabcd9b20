package schema

import (
	"github.com/roster-dev/roster/schema/account"

	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// The value rules of SPEC §3 (Pexip Infinity's limits), in one place: validation calls
// them for the values written in the repository, and the render stage for rendered
// values. Each Check function takes a plain value and returns nil or an error whose text
// says what is wrong, the allowed range and how to fix it, without the field's name (the
// caller puts it in front) and without secret values (PINs, passwords).
const (
	MaxNameChars        = 250 // VMR name, descriptions, aliases
	MaxAliases          = 8   // per VMR
	MinCallrate         = 128 // kbps
	MaxCallrate         = 8192
	MaxParticipantLimit = 1_000_000
	MinPINDigits        = 4
	MaxPINDigits        = 20
	MaxCredentialChars  = 100 // device username and password
)

// CheckName checks a VMR name: 1 to 250 characters.
func CheckName(s string) error {
	if s == "" {
		return errors.New("empty; a name has 1 to 250 characters")
	}
	return checkLength(s, MaxNameChars, "shorten it")
}

// CheckDescription checks a VMR's or a device's description: at most 250 characters.
func CheckDescription(s string) error { return checkLength(s, MaxNameChars, "shorten it") }

// CheckDeviceUsername checks a device's username: at most 100 characters.
func CheckDeviceUsername(s string) error { return checkLength(s, MaxCredentialChars, "shorten it") }

// CheckDevicePassword checks a device's password: at most 100 characters.
func CheckDevicePassword(s string) error {
	return checkLength(s, MaxCredentialChars, "use a shorter password")
}

func checkLength(s string, max int, fix string) error {
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("%d characters; at most %d are allowed: %s", n, max, fix)
	}
	return nil
}

// CheckAliasCount checks how many aliases a VMR has: at most 8.
func CheckAliasCount(n int) error {
	if n > MaxAliases {
		return fmt.Errorf("%d aliases; a VMR may have at most %d: remove %d", n, MaxAliases, n-MaxAliases)
	}
	return nil
}

// aliasBadASCII marks the ASCII characters an alias may not hold: spaces, controls and
// <>"\`{}|^ (what CheckAlias's Unicode checks say of them).
var aliasBadASCII = func() (bad [utf8.RuneSelf]bool) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		bad[r] = unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("<>\"\\`{}|^", r)
	}
	return bad
}()

// isAliasHost says whether h is the part after "@" of a URI alias: a domain name or IPv4
// address (dot-separated labels of ASCII letters, digits and inner hyphens), or an IPv6
// literal in brackets, with an optional port of 1 to 5 digits. It is the expression
//
//	^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$
//
// by hand (rules_test.go checks them against each other): every rendered alias passes
// here, and the regular expression was a tenth of a no-op plan's rendering.
func isAliasHost(h string) bool {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := h[i]; !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		host, port = "", h[end+1:]
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i:]
	}
	if port != "" {
		if port[0] != ':' || len(port) < 2 || len(port) > 6 || strings.Trim(port[1:], "0123456789") != "" {
			return false
		}
	}
	if strings.HasPrefix(h, "[") {
		return true
	}
	for {
		label := host
		dot := strings.IndexByte(host, '.')
		if dot >= 0 {
			label = host[:dot]
		}
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
		if dot < 0 {
			return true
		}
		host = host[dot+1:]
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHex(c byte) bool { return c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c >= '0' && c <= '9' }

// aliasSchemeOf is the scheme a URI alias starts with, with its colon: sip:, sips:, h323:
// or tel:, in any case (the expression ^(?i:sips?|h323|tel):); "" when none.
func aliasSchemeOf(s string) string {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return ""
	}
	for _, scheme := range []string{"sip", "sips", "h323", "tel"} {
		if strings.EqualFold(s[:i], scheme) { // Unicode simple folding, as (?i) does
			return s[:i+1]
		}
	}
	return ""
}

const aliasForms = "want a plain alias (meet.alice), a SIP or H.323 URI (meet.alice@example.com, sip:meet.alice@example.com, h323:meet.alice@example.com) or a number (+441632960123)"

// CheckAlias checks one alias of a VMR or a device: 1 to 250 characters, a plain alias, a
// SIP/H.323 URI (user@host, optionally with a sip:, sips: or h323: scheme) or a number.
func CheckAlias(s string) error {
	if s == "" {
		return fmt.Errorf("empty; %s", aliasForms)
	}
	if err := checkLength(s, MaxNameChars, "shorten it"); err != nil {
		return err
	}
	for _, r := range s {
		if r < utf8.RuneSelf && !aliasBadASCII[r] {
			continue // the common case, without the Unicode tables
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("<>\"\\`{}|^", r) {
			return fmt.Errorf("%q contains %q; %s, without spaces or any of <>\"\\`{}|^", s, r, aliasForms)
		}
	}
	rest := s
	if m := aliasSchemeOf(s); m != "" {
		rest = s[len(m):]
	} else if i := strings.IndexByte(s, ':'); i >= 0 && !strings.Contains(s[:i], "@") {
		return fmt.Errorf("%q has the unknown scheme %q; %s", s, s[:i+1], aliasForms)
	}
	at := strings.LastIndexByte(rest, '@')
	switch {
	case rest == "":
		return fmt.Errorf("%q has nothing after its scheme; %s", s, aliasForms)
	case at < 0:
		return nil // a plain alias or a number
	case strings.Count(rest, "@") > 1:
		return fmt.Errorf("%q has more than one \"@\"; %s", s, aliasForms)
	case at == 0:
		return fmt.Errorf("%q has nothing before \"@\"; %s", s, aliasForms)
	case !isAliasHost(rest[at+1:]):
		return fmt.Errorf("%q: %q is not a host name; %s", s, rest[at+1:], aliasForms)
	}
	return nil
}

// CheckCallrate checks max_callrate_in or max_callrate_out: 128 to 8192 kbps, or 0 for
// no limit (the field left out).
func CheckCallrate(kbps int) error {
	if kbps != 0 && (kbps < MinCallrate || kbps > MaxCallrate) {
		return fmt.Errorf("%d kbps is out of range: Pexip accepts %d to %d kbps; use a value in that range, or leave the field out for no limit", kbps, MinCallrate, MaxCallrate)
	}
	return nil
}

// CheckParticipantLimit checks participant_limit: 0 to 1,000,000.
func CheckParticipantLimit(n int) error {
	if n < 0 || n > MaxParticipantLimit {
		return fmt.Errorf("%d is out of range: Pexip accepts 0 to %d; use a value in that range, or leave the field out for no limit", n, MaxParticipantLimit)
	}
	return nil
}

// CheckPIN checks a host or guest PIN: empty (no PIN), or 4 to 20 digits with an optional
// trailing "#". The PIN itself is left out of the message.
func CheckPIN(s string) error {
	if s == "" {
		return nil
	}
	digits := strings.TrimSuffix(s, "#")
	if n := len(digits); n < MinPINDigits || n > MaxPINDigits || strings.Trim(digits, "0123456789") != "" {
		return fmt.Errorf("not a valid PIN: a PIN is %d to %d digits, optionally followed by # (e.g. \"0123\" or \"0123#\"); use digits only, quoted in YAML so leading zeros are kept", MinPINDigits, MaxPINDigits)
	}
	return nil
}

// Violation is a value that breaks a rule: its field (the JSON name, aliases[i]) and why.
type Violation struct {
	Field string
	Err   error
}

// VMRViolations checks a VMR's values. skip reports whether a string value cannot be checked
// yet (a pattern, checked once rendered); nil checks every value. The PIN-settings rules
// hold between fields: allow_guests needs a host PIN, and the guest PIN differs from it.
func VMRViolations(v *account.VMR, skip func(string) bool) []Violation {
	var out []Violation
	add := func(field string, err error) {
		if err != nil {
			out = append(out, Violation{Field: field, Err: err})
		}
	}
	known := func(s string) bool { return skip == nil || !skip(s) }
	if known(v.Name) {
		add("name", CheckName(v.Name))
	}
	if known(v.Description) {
		add("description", CheckDescription(v.Description))
	}
	add("aliases", CheckAliasCount(len(v.Aliases)))
	for i, a := range v.Aliases {
		if known(a) {
			if err := CheckAlias(a); err != nil { // the field's name is made only then
				add("aliases["+strconv.Itoa(i)+"]", err)
			}
		}
	}
	pinKnown, guestKnown := known(v.PIN), known(v.GuestPIN)
	if pinKnown {
		add("pin", CheckPIN(v.PIN))
	}
	if guestKnown {
		add("guest_pin", CheckPIN(v.GuestPIN))
	}
	if v.AllowGuests && pinKnown && v.PIN == "" {
		add("allow_guests", errors.New("true needs a host PIN: set pin (4 to 20 digits), or allow_guests: false"))
	}
	if pinKnown && guestKnown && v.PIN != "" && strings.TrimSuffix(v.GuestPIN, "#") == strings.TrimSuffix(v.PIN, "#") {
		add("guest_pin", errors.New("the same as the host PIN, so guests would join as hosts: choose a different guest PIN"))
	}
	add("max_callrate_in", CheckCallrate(v.MaxCallrateIn))
	add("max_callrate_out", CheckCallrate(v.MaxCallrateOut))
	add("participant_limit", CheckParticipantLimit(v.ParticipantLimit))
	return out
}

// DeviceViolations checks a device's values, as VMRViolations does a VMR's.
func DeviceViolations(d *account.Device, skip func(string) bool) []Violation {
	var out []Violation
	for _, f := range []struct {
		field, value string
		check        func(string) error
	}{
		{"alias", d.Alias, CheckAlias},
		{"description", d.Description, CheckDescription},
		{"username", d.Username, CheckDeviceUsername},
		{"password", d.Password, CheckDevicePassword},
	} {
		if skip != nil && skip(f.value) {
			continue
		}
		if err := f.check(f.value); err != nil {
			out = append(out, Violation{Field: f.field, Err: err})
		}
	}
	return out
}

// CheckLDAPFilter checks a user_filter or disabled_filter with go-ldap's own compiler (what
// is sent to the server); blank means every entry. offset is the 0-based byte offset in s
// of the problem when it is known, else -1.
func CheckLDAPFilter(s string) (offset int, err error) {
	f := strings.TrimSpace(s)
	if f == "" {
		return -1, nil
	}
	_, cerr := ldap.CompileFilter(f)
	if cerr == nil {
		return -1, nil
	}
	msg := cerr.Error()
	var le *ldap.Error
	if errors.As(cerr, &le) && le.Err != nil {
		msg = le.Err.Error()
	}
	msg = strings.TrimPrefix(msg, "ldap: ")
	offset, fix := -1, "write it as RFC 4515 says, e.g. (&(objectClass=inetOrgPerson)(mail=*))"
	switch {
	case strings.HasPrefix(msg, "filter does not start with"):
		offset, fix = 0, "enclose it in parentheses: ("+f+")"
	case msg == "unexpected end of filter":
		offset, fix = len(f), "every \"(\" needs its \")\", e.g. (&(objectClass=inetOrgPerson)(mail=*))"
	case strings.HasPrefix(msg, "finished compiling filter with extra at end: "):
		extra := strings.TrimPrefix(msg, "finished compiling filter with extra at end: ")
		offset, msg, fix = len(f)-len(extra), "extra text after the filter's last \")\"", "combine filters with (&…) or (|…), e.g. (&(objectClass=inetOrgPerson)(mail=*))"
	case strings.Contains(msg, "escape"):
		fix = "write \"*\", \"(\", \")\" and \"\\\" inside a value as \\2a, \\28, \\29 and \\5c"
	default:
		if m := filterPosRE.FindStringSubmatch(msg); m != nil {
			offset, _ = strconv.Atoi(m[1])
			fix = "every \"(\" needs its \")\", e.g. (&(objectClass=inetOrgPerson)(mail=*))"
		}
	}
	if offset >= 0 {
		offset += strings.Index(s, f) // the compiler counts from the trimmed filter
	}
	return offset, fmt.Errorf("%q is not a valid LDAP filter (RFC 4515): %s; %s", f, msg, fix)
}

var filterPosRE = regexp.MustCompile(`at position (\d+)`)
