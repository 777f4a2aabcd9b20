package pattern

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/flosch/pongo2/v6"
)

// maxFormatWidth bounds widths and precisions in format specifiers.
const maxFormatWidth = 1000

// pyFormat implements Python's printf-style "%" formatting, as Jinja's
// format filter uses it: %s %r %d %i %u %f %F %e %E %g %G %x %X %o %c %%,
// flags "-+ 0#", width and precision, and %(name)s with keyword arguments.
func pyFormat(f string, args []any, kw map[string]any) (string, error) {
	var b strings.Builder
	next := 0
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(f) {
			return "", errors.New("incomplete format")
		}
		var arg any
		named := false
		if f[i] == '(' {
			end := strings.IndexByte(f[i:], ')')
			if end < 0 {
				return "", errors.New("incomplete format key")
			}
			key := f[i+1 : i+end]
			v, ok := kw[key]
			if !ok {
				return "", fmt.Errorf("format key %q not given", key)
			}
			arg, named = v, true
			i += end + 1
		}
		flags := ""
		for i < len(f) && strings.IndexByte("-+ 0#", f[i]) >= 0 {
			flags += string(f[i])
			i++
		}
		width := ""
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			width += string(f[i])
			i++
		}
		prec := ""
		if i < len(f) && f[i] == '.' {
			prec = "."
			i++
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				prec += string(f[i])
				i++
			}
		}
		if w, _ := strconv.Atoi(width); w > maxFormatWidth {
			return "", fmt.Errorf("format width %d too large", w)
		}
		if p, _ := strconv.Atoi(strings.TrimPrefix(prec, ".")); p > maxFormatWidth {
			return "", fmt.Errorf("format precision %d too large", p)
		}
		if i >= len(f) {
			return "", errors.New("incomplete format")
		}
		verb := f[i]
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if !named {
			if next >= len(args) {
				return "", errors.New("not enough arguments for format string")
			}
			arg = args[next]
			next++
		}
		if v, ok := arg.(*pongo2.Value); ok {
			arg = v.Interface()
		}
		spec := "%" + flags + width + prec
		switch verb {
		case 's':
			b.WriteString(fmt.Sprintf(strings.ReplaceAll(spec, "0", "")+"s", pyStr(arg)))
		case 'r', 'a':
			b.WriteString(fmt.Sprintf(strings.ReplaceAll(spec, "0", "")+"s", reprAny(arg)))
		case 'd', 'i', 'u':
			n, err := pyNumber(arg, verb)
			if err != nil {
				return "", err
			}
			b.WriteString(fmt.Sprintf("%"+flags+width+"d", int64(math.Trunc(n))))
		case 'f', 'F', 'e', 'E', 'g', 'G':
			n, err := pyNumber(arg, verb)
			if err != nil {
				return "", err
			}
			if prec == "" {
				prec = ".6"
			}
			b.WriteString(fmt.Sprintf("%"+flags+width+prec+string(verb), n))
		case 'x', 'X', 'o':
			n, err := pyNumber(arg, verb)
			if err != nil {
				return "", err
			}
			s := fmt.Sprintf("%"+flags+width+string(verb), int64(n))
			if verb == 'o' && strings.Contains(flags, "#") {
				s = strings.Replace(s, "0", "0o", 1)
			}
			b.WriteString(s)
		case 'c':
			switch x := arg.(type) {
			case string:
				if len([]rune(x)) != 1 {
					return "", errors.New("%c requires int or char")
				}
				b.WriteString(x)
			default:
				n, err := pyNumber(arg, verb)
				if err != nil {
					return "", err
				}
				b.WriteRune(rune(int64(n)))
			}
		default:
			return "", fmt.Errorf("unsupported format character %q", verb)
		}
		if b.Len() > maxValueBytes {
			return "", fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
	}
	if next < len(args) {
		return "", errors.New("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

// pyStr is Python's str() of a template value.
func pyStr(v any) string {
	if v == nil {
		return "None"
	}
	return toStr(v)
}

func pyNumber(v any, verb byte) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case pyFloat:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%%%c format: a real number is required, not %s", verb, kind(pongo2.AsValue(v)))
}

// lru is a small bounded cache of compiled regular expressions.
type lru struct {
	mu  sync.Mutex
	max int
	m   map[string]*regexp.Regexp
}

func newLRU(n int) *lru { return &lru{max: n, m: map[string]*regexp.Regexp{}} }

func (c *lru) get(k string) (*regexp.Regexp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	re, ok := c.m[k]
	return re, ok
}

func (c *lru) put(k string, re *regexp.Regexp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = re
}
