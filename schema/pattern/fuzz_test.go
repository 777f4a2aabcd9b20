package pattern

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCompileRender: any source either compiles or fails with a positioned
// *Error; rendering never panics and fails only with *Error.
func FuzzCompileRender(f *testing.F) {
	for _, s := range []string{
		"{{sn|truncate(5)|upper}}", "{{ '%s.%s'|format(givenName, sn) }}",
		"{% for m in mail_list %}{{ m }}{% if not loop.last %}, {% endif %}{% endfor %}",
		"{{ mail|pex_regex_replace('@.*$', '') }}", "{% include 'x' %}", "{{ x|truncatechars:5 }}",
		"{% raw %}{{ a }}{% endraw %}", "{% set a = 'x' %}{{ a }}", "{# c #}{{ a|d('b') }}", "{{- a -}}",
		"{{ ''|pex_random_pin(6) }}", "{% if a == 'b' %}x{% elif c %}y{% else %}z{% endif %}",
	} {
		f.Add(s)
	}
	e := NewEnv(Options{SecretKey: []byte("k"), MaxOutput: 4096})
	vars := FromAttrs(testAttrs)
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := e.Compile("fuzz", src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Col < 1 {
				t.Fatalf("compile error %T %v not a positioned *Error", err, err)
			}
			return
		}
		out, err := tpl.Render(vars, Seed{"t", "e", "f"})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("render error %T %v not *Error", err, err)
			}
			return
		}
		if len(out) > 4096 {
			t.Fatalf("output %d bytes over the limit", len(out))
		}
	})
}

// jinjaQuote spells s as a Jinja2 single-quoted literal.
func jinjaQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// FuzzTranslateText: the translator keeps literal text and string literals
// exactly, and the {{ x }} fast path renders like the general path.
func FuzzTranslateText(f *testing.F) {
	for _, s := range []string{"plain", "a\"b'c\\d", "Ørjan\n", "{ } %", "\\1 \\n", "{{", "x\r\ny"} {
		f.Add(s)
	}
	e := NewEnv(Options{SecretKey: []byte("k"), MaxOutput: 1 << 20})
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		// a string literal round-trips through lexing and re-spelling (line
		// ends normalised, as Jinja does)
		nl := strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
		tpl, err := e.Compile("lit", "{{ "+jinjaQuote(s)+" }}")
		if err != nil {
			t.Fatalf("literal %q: %v", s, err)
		}
		if out, err := tpl.Render(nil, Seed{}); err != nil || out != nl {
			t.Fatalf("literal %q rendered %q, %v", s, out, err)
		}
		// text without template syntax is kept, with Jinja's newline rules
		if !hasTags(s) && !strings.HasSuffix(s, "{") && !strings.ContainsRune(s, 1) {
			tpl, err := e.Compile("text", s+"{{ '' }}")
			if err != nil {
				t.Fatalf("text %q: %v", s, err)
			}
			want := nl
			if out, err := tpl.Render(nil, Seed{}); err != nil || out != want {
				t.Fatalf("text %q rendered %q, %v; want %q", s, out, err, want)
			}
		}
		// fast path == general path
		fast, _ := e.Compile("fast", "{{ x }}")
		slow, _ := e.Compile("slow", "{{ x }}{{ '' }}")
		v := Vars{"x": s}
		a, err1 := fast.Render(v, Seed{})
		b, err2 := slow.Render(v, Seed{})
		if a != b || err1 != nil || err2 != nil {
			t.Fatalf("fast %q (%v) != slow %q (%v)", a, err1, b, err2)
		}
	})
}
