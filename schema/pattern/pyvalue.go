package pattern

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/flosch/pongo2/v6"
)

// pyFloat is a float that prints like Python's repr (4.0, 0.1, 1e+16).
type pyFloat float64

func (f pyFloat) String() string { return formatPyFloat(float64(f)) }

func formatPyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	a := math.Abs(f)
	if a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// strList is a list of strings that prints like a Python list.
type strList []string

func (l strList) String() string { return reprList(l, pyRepr) }

// anyList is a list of values that prints like a Python list.
type anyList []any

func (l anyList) String() string { return reprList(l, reprAny) }

// reprList prints l like a Python list, each element by repr.
func reprList[E any](l []E, repr func(E) string) string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = repr(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func reprAny(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return pyRepr(x)
	case *pongo2.Value:
		return reprAny(x.Interface())
	}
	return toStr(v)
}

// pyRepr quotes s like Python's repr of a str.
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// pyValue converts a Go value from Vars into the value a template sees.
func pyValue(v any) any {
	switch x := v.(type) {
	case float64:
		return pyFloat(x)
	case float32:
		return pyFloat(x)
	case []string:
		return strList(x)
	case []any:
		return anyList(x)
	}
	return v
}

// outStr is what {{ v }} prints.
func outStr(v *pongo2.Value) string {
	if v == nil || v.IsNil() {
		return ""
	}
	switch x := v.Interface().(type) {
	case float64:
		return formatPyFloat(x)
	case float32:
		return formatPyFloat(float64(x))
	}
	return v.String()
}

// toStr renders a value exactly as pongo2 prints it in {{ }}.
func toStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case *pongo2.Value:
		return outStr(x)
	}
	return outStr(pongo2.AsValue(v))
}

// items lists what a for loop or join iterates over: list elements, the
// characters of a string, or the sorted keys of a map.
func items(v *pongo2.Value) ([]any, error) {
	if v == nil || v.IsNil() {
		return nil, nil
	}
	x := v.Interface()
	switch s := x.(type) {
	case string:
		out := make([]any, 0, len(s))
		for _, r := range s {
			out = append(out, string(r))
		}
		return out, nil
	case strList:
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = e
		}
		return out, nil
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out, nil
	case reflect.Map:
		keys := rv.MapKeys()
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = k.Interface()
		}
		sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
		return out, nil
	case reflect.String:
		return items(pongo2.AsValue(rv.String()))
	}
	return nil, fmt.Errorf("%s is not iterable", rv.Kind())
}
