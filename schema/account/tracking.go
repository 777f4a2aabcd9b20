package account

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Tracking holds a user's ten tracking-code values (WebEx TRACKING CODE 1…10) in one
// string: the JSON array of the values up to the last non-empty one, "" when all are
// empty — exactly what the users table stores.
//
// Why not [10]string: that is 160 bytes in every user, loaded or desired, and most of the
// ten are empty; 400,000 users spent 64 MB on it. A string is 16 bytes, compares with ==,
// and is loaded from the database without decoding. It is a value: With returns a new one.
type Tracking string

// MakeTracking packs ten values.
func MakeTracking(v [10]string) Tracking {
	last := -1
	for i, s := range v {
		if s != "" {
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	n := 1 + last
	for _, s := range v[:last+1] {
		if !plainJSON(s) {
			b, _ := json.Marshal(v[:last+1])
			return Tracking(b)
		}
		n += len(s) + 2
	}
	// every value is plain: its JSON is itself in quotes (what json.Marshal writes)
	b := make([]byte, 0, n+1)
	b = append(b, '[')
	for i, s := range v[:last+1] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), s...), '"')
	}
	return Tracking(append(b, ']'))
}

// plainJSON says whether json.Marshal writes s as it is, in quotes: valid UTF-8 without
// control characters, quotes, backslashes, the HTML-escaped <, > and &, or U+2028 and
// U+2029. A user's every rendering and reconcile packs and unpacks its values; through
// encoding/json that was a tenth of a no-op plan's rendering.
func plainJSON(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// Values unpacks the ten values.
func (t Tracking) Values() [10]string {
	var out [10]string
	if t == "" || t.plainValues(&out) {
		return out
	}
	out = [10]string{}
	var vals []string
	json.Unmarshal([]byte(t), &vals)
	copy(out[:], vals)
	return out
}

// plainValues unpacks t into out when it is what MakeTracking writes for plain values
// (["a","","b"], at most ten, each plainJSON): json.Unmarshal's result without its cost.
// It reports false, out unspecified, for anything else.
func (t Tracking) plainValues(out *[10]string) bool {
	s := string(t)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	s = s[1 : len(s)-1]
	for i := 0; ; i++ {
		if i == 10 || len(s) < 2 || s[0] != '"' {
			return false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return false
		}
		v := s[1 : 1+end]
		if !plainJSON(v) {
			return false
		}
		out[i], s = v, s[2+end:]
		if s == "" {
			return true
		}
		if s[0] != ',' {
			return false
		}
		s = s[1:]
	}
}

// Get returns value i (0–9).
func (t Tracking) Get(i int) string { return t.Values()[i] }

// With returns t with value i set to v.
func (t Tracking) With(i int, v string) Tracking {
	vals := t.Values()
	vals[i] = v
	return MakeTracking(vals)
}

// MarshalJSON writes the ten values as an array, as a [10]string would.
func (t Tracking) MarshalJSON() ([]byte, error) {
	v := t.Values()
	return json.Marshal(v[:])
}

// UnmarshalJSON reads an array of up to ten values.
func (t *Tracking) UnmarshalJSON(b []byte) error {
	var vals []string
	if err := json.Unmarshal(b, &vals); err != nil {
		return err
	}
	var v [10]string
	copy(v[:], vals)
	*t = MakeTracking(v)
	return nil
}
