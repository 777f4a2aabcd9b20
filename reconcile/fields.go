package reconcile

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/roster-dev/roster/schema/account"
)

// field is one named value of an object as the plan shows it. Objects are shown as
// ordered field lists, written straight to JSON or text: a plan of a million changes
// builds no maps and needs no reflection to print.
type field struct {
	name  string
	value any // string, int, bool or []string
}

// secretFields are masked in every plan format unless --show-secrets: the secret fields,
// by name and by email variable.
var secretFields = secretNames(account.VMRFields, secretNames(account.DeviceFields, map[string]bool{}))

func secretNames[T any](fields []account.Field[T], names map[string]bool) map[string]bool {
	for _, f := range fields {
		if f.Secret {
			names[f.Name], names[f.Email] = true, true
		}
	}
	return names
}

const mask = "********"

// printed shows x's printed fields; a nil list as an empty one.
func printed[T any](fields []account.Field[T], x *T) []field {
	fs := make([]field, 0, len(fields))
	for i := range fields {
		f := &fields[i]
		if !f.Printed {
			continue
		}
		v := f.Value(x)
		if l, ok := v.([]string); ok && l == nil {
			v = []string{}
		}
		fs = append(fs, field{f.Name, v})
	}
	return fs
}

func userFields(u *account.User) []field {
	f := []field{{"userid", u.UserID}, {"email", u.Email}, {"first_name", u.FirstName}, {"last_name", u.LastName},
		{"language", u.Language}, {"host_privilege", u.HostPrivilege}, {"time_zone", u.TimeZone},
		{"active", u.Active}, {"origin", u.Origin}, {"license", u.License}}
	for i, v := range u.Tracking.Values() {
		if v != "" {
			f = append(f, field{trackingSlots[i], v})
		}
	}
	return f
}

func inviteFields(in *account.Invite) []field {
	return []field{{"email", in.Email}, {"name", in.Name}, {"username", in.Username}, {"status", in.Status},
		{"expires_at", in.ExpiresAt.UTC().Format(time.RFC3339)}}
}

func trackingFields(g *account.TrackingGroup) []field {
	codes := make([]string, len(g.Codes))
	for i, c := range g.Codes {
		codes[i] = c.Code
		if !c.Active {
			codes[i] += " (inactive)"
		}
		if c.Default {
			codes[i] += " (default)"
		}
	}
	return []field{{"slot", g.Slot}, {"name", g.Name}, {"input_mode", g.InputMode}, {"usage", g.Usage},
		{"sort", g.Sort}, {"codes", codes}}
}

// fieldsOf shows the object x holds (a *account.VMR, *account.Device, *account.User,
// *account.Invite or *account.TrackingGroup); nil when it holds none.
func fieldsOf(x any) []field {
	switch v := x.(type) {
	case *account.VMR:
		if v != nil {
			return printed(account.VMRFields, v)
		}
	case *account.Device:
		if v != nil {
			return printed(account.DeviceFields, v)
		}
	case *account.User:
		if v != nil {
			return userFields(v)
		}
	case *account.Invite:
		if v != nil {
			return inviteFields(v)
		}
	case *account.TrackingGroup:
		if v != nil {
			return trackingFields(v)
		}
	}
	return nil
}

// hasFields reports whether fieldsOf(x) is not nil: x holds an object.
func hasFields(x any) bool {
	switch v := x.(type) {
	case *account.VMR:
		return v != nil
	case *account.Device:
		return v != nil
	case *account.User:
		return v != nil
	case *account.Invite:
		return v != nil
	case *account.TrackingGroup:
		return v != nil
	}
	return false
}

// appendObjectJSON writes the object x holds as appendJSONObject(maskFields(fieldsOf(x),
// show)) does, VMRs and devices straight from their field lists: a first apply prints
// 800,000 of them, and a field list boxed every value.
func appendObjectJSON(b []byte, x any, show bool) []byte {
	switch v := x.(type) {
	case *account.VMR:
		if v != nil {
			return appendPrintedJSON(b, account.VMRFields, v, show)
		}
	case *account.Device:
		if v != nil {
			return appendPrintedJSON(b, account.DeviceFields, v, show)
		}
	case *account.User:
		if v != nil {
			return appendUserJSON(b, v, show)
		}
	}
	return appendJSONObject(b, maskFields(fieldsOf(x), show))
}

// appendUserJSON is appendJSONObject(maskFields(userFields(u), show)) without the field list.
func appendUserJSON(b []byte, u *account.User, show bool) []byte {
	str := func(b []byte, name, v string) []byte {
		if len(b) > 0 && b[len(b)-1] != '{' {
			b = append(b, ", "...)
		}
		b = append(appendJSONString(b, name), ": "...)
		if !show && secretFields[name] && v != "" {
			v = mask
		}
		return appendJSONString(b, v)
	}
	b = append(b, '{')
	b = str(str(str(str(b, "userid", u.UserID), "email", u.Email), "first_name", u.FirstName), "last_name", u.LastName)
	b = str(str(str(b, "language", u.Language), "host_privilege", u.HostPrivilege), "time_zone", u.TimeZone)
	b = append(appendJSONString(append(b, ", "...), "active"), ": "...)
	if !show && secretFields["active"] {
		b = appendJSONString(b, mask)
	} else {
		b = strconv.AppendBool(b, u.Active)
	}
	b = str(str(b, "origin", u.Origin), "license", u.License)
	for i, v := range u.Tracking.Values() {
		if v != "" {
			b = str(b, trackingSlots[i], v)
		}
	}
	return append(b, '}')
}

// appendPrintedJSON is appendJSONObject(maskFields(printed(fields, x), show)) without
// the field list.
func appendPrintedJSON[T any](b []byte, fields []account.Field[T], x *T, show bool) []byte {
	b = append(b, '{')
	first := true
	for i := range fields {
		f := &fields[i]
		if !f.Printed {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = appendJSONString(b, f.Name)
		b = append(b, ": "...)
		masked := !show && secretFields[f.Name] // as maskFields: any value but "" is masked
		switch f.Type {
		case account.String:
			if v := *f.Str(x); !masked || v == "" {
				b = appendJSONString(b, v)
				continue
			}
		case account.Strings:
			if !masked {
				b = append(b, '[')
				for j, s := range *f.List(x) {
					if j > 0 {
						b = append(b, ", "...)
					}
					b = appendJSONString(b, s)
				}
				b = append(b, ']')
				continue
			}
		case account.Bool:
			if !masked {
				b = strconv.AppendBool(b, *f.Flag(x))
				continue
			}
		case account.Int:
			if !masked {
				b = strconv.AppendInt(b, int64(*f.Num(x)), 10)
				continue
			}
		}
		b = appendJSONString(b, mask)
	}
	return append(b, '}')
}

// maskFields replaces secret values, unless show.
func maskFields(fs []field, show bool) []field {
	if show {
		return fs
	}
	for i, f := range fs {
		if secretFields[f.name] && f.value != "" {
			fs[i].value = mask
		}
	}
	return fs
}

// appendJSONObject writes fields as a JSON object, in their order.
func appendJSONObject(b []byte, fs []field) []byte {
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendJSONString(b, f.name)
		b = append(b, ": "...)
		switch v := f.value.(type) {
		case string:
			b = appendJSONString(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		case []string:
			b = append(b, '[')
			for j, s := range v {
				if j > 0 {
					b = append(b, ", "...)
				}
				b = appendJSONString(b, s)
			}
			b = append(b, ']')
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// appendJSONString writes s as a JSON string: UTF-8 kept, quotes, backslashes and control
// characters escaped (invalid UTF-8 becomes U+FFFD, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	clean := true // most values need no escaping: copy them whole
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return append(append(b, s...), '"')
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
