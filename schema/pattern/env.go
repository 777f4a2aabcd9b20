package pattern

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flosch/pongo2/v6"
)

// DefaultMaxOutput is the default bound on one rendering's output.
const DefaultMaxOutput = 64 << 10

// Options configure an Env.
type Options struct {
	// SecretKey keys the HMAC behind pex_random_pin and pex_uuid4. Rendering
	// a template that uses them fails when it is empty.
	SecretKey []byte
	// MaxOutput bounds the bytes one Render may produce (default 64 KiB).
	MaxOutput int
}

// Env is the template environment shared by patterns and email templates.
type Env struct {
	opts Options
	set  *pongo2.TemplateSet
}

// Error is a compile or render error at a position of the template source
// (1-based line and column in characters; 0 when unknown).
type Error struct {
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Seed identifies the object being rendered so generated values are stable.
type Seed struct{ Template, EntryKey, Field string }

// Vars are the values visible to a template.
type Vars map[string]any

// FromAttrs makes Vars from directory attributes: x is the first value of
// attribute x and x_list all of its values. Attributes without values are
// left out (they render as empty). Should attributes x and x_list both
// exist, x_list is all values of x. Template.RenderAttrs renders with the
// same values without building Vars.
func FromAttrs(attrs map[string][]string) Vars {
	v := make(Vars, 2*len(attrs))
	for k, vals := range attrs {
		if len(vals) > 0 {
			v[k] = vals[0]
		}
	}
	for k, vals := range attrs {
		if len(vals) > 0 {
			v[k+"_list"] = strList(vals)
		}
	}
	return v
}

// attrValue is FromAttrs(attrs)[name] without building the map.
func attrValue(attrs map[string][]string, name string) (any, bool) {
	if base, ok := strings.CutSuffix(name, "_list"); ok && len(attrs[base]) > 0 {
		return strList(attrs[base]), true
	}
	if vals := attrs[name]; len(vals) > 0 {
		return vals[0], true
	}
	return nil, false
}

// Template is a compiled template; Render is safe for concurrent use.
type Template struct {
	env     *Env
	name    string
	literal bool
	text    string // literal: the output
	bare    string // the template is exactly {{ name }}
	fast    *fastProg
	tr      *translation
	names   []string
	tpl     *pongo2.Template
}

// refuseLoader is the set's only loader: no template may read another
// template or a file.
type refuseLoader struct{}

func (refuseLoader) Abs(base, name string) string { return name }
func (refuseLoader) Get(path string) (io.Reader, error) {
	return nil, errors.New("templates cannot read files or other templates")
}

// NewEnv returns an environment with its own pongo2 template set.
func NewEnv(opts Options) *Env {
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	set := pongo2.NewSet("roster-pattern", refuseLoader{})
	for _, tag := range []string{"include", "ssi", "import", "extends", "block", "macro", "now", "lorem", "with", "filter", "for", "set"} {
		_ = set.BanTag(tag)
	}
	for f := range bannedPongoFilters {
		_ = set.BanFilter(f)
	}
	return &Env{opts: opts, set: set}
}

// Compile parses src once. name is used in messages only. A bad template
// gives an *Error with a position relative to src.
func (e *Env) Compile(name, src string) (_ *Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("template failed to compile: %v", r)}
		}
	}()
	norm := normalizeNewlines(src)
	t := &Template{env: e, name: name}
	if !hasTags(norm) {
		t.literal, t.text = true, norm
		return t, nil
	}
	tr, perr := translate(norm)
	if perr != nil {
		return nil, perr
	}
	t.tr = tr
	out := tr.b.String()
	tpl, perr2 := e.set.FromString(out)
	if perr2 != nil {
		return nil, tr.mapError(perr2)
	}
	t.tpl = tpl
	for n := range tr.names {
		t.names = append(t.names, n)
	}
	t.fast = compileFast(norm)
	// fast path: exactly "{{ name }}"
	if len(tr.names) == 1 && !tr.usesArgs && !tr.usesSt {
		inner := strings.TrimSpace(norm)
		if strings.HasPrefix(inner, "{{") && strings.HasSuffix(inner, "}}") && inner == norm {
			body := strings.TrimSpace(inner[2 : len(inner)-2])
			if body == t.names[0] && isIdent(body) {
				t.bare = body
			}
		}
	}
	return t, nil
}

func isIdent(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != "" && s != "true" && s != "false" && s != "True" && s != "False" && s != "None" && s != "none"
}

// IsLiteral reports whether the template has no tags at all; Render then
// returns the text as it is (after Jinja's newline normalisation: CR LF to
// LF, and one trailing newline dropped).
func (t *Template) IsLiteral() bool { return t.literal }

// IsFast reports whether the template renders on the compiled fast path
// (literal text and {{ value|filter… }} with constant arguments) rather
// than with pongo2. Both give the same output; the fast path is an order of
// magnitude quicker.
func (t *Template) IsFast() bool { return t.literal || t.fast != nil }

// Render renders the template with vars. seed makes generated values stable.
func (t *Template) Render(vars Vars, seed Seed) (out string, err error) {
	limit := t.env.opts.MaxOutput
	if t.literal {
		return t.text, nil
	}
	if t.fast != nil {
		src := source{vars: vars}
		if s, ok := t.fast.exec(&src, t.env.opts.SecretKey, seed, limit); ok {
			return s, nil
		}
	}
	return t.renderPongo(vars, seed)
}

// RenderAttrs renders the template with directory attributes, exactly as
// Render(FromAttrs(attrs), seed) would, but without building Vars unless
// the template needs pongo2.
func (t *Template) RenderAttrs(attrs map[string][]string, seed Seed) (string, error) {
	return t.RenderAttrsWith(attrs, nil, seed)
}

// RenderAttrsWith is RenderAttrs with extra values (such as the entry's dn)
// that take precedence over attributes of the same name, as if they had been
// set in FromAttrs(attrs).
func (t *Template) RenderAttrsWith(attrs map[string][]string, extra Vars, seed Seed) (string, error) {
	if t.literal {
		return t.text, nil
	}
	if t.fast != nil {
		src := source{vars: extra, attrs: attrs, isAttrs: true}
		if s, ok := t.fast.exec(&src, t.env.opts.SecretKey, seed, t.env.opts.MaxOutput); ok {
			return s, nil
		}
	}
	// only the names the template reads
	vars := make(Vars, len(t.names))
	for _, n := range t.names {
		if v, ok := extra[n]; ok {
			vars[n] = v
		} else if v, ok := attrValue(attrs, n); ok {
			vars[n] = v
		}
	}
	return t.renderPongo(vars, seed)
}

// renderPongo renders with pongo2 (and the {{ name }} shortcut).
func (t *Template) renderPongo(vars Vars, seed Seed) (out string, err error) {
	limit := t.env.opts.MaxOutput
	if t.literal {
		return t.text, nil
	}
	if t.bare != "" {
		v, ok := vars[t.bare]
		if !ok {
			return "", nil
		}
		s := toStr(pyValue(v))
		if len(s) > limit {
			return "", &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("output longer than %d bytes", limit)}
		}
		return s, nil
	}
	return t.execPongo(vars, seed)
}

// execPongo renders with pongo2 alone.
func (t *Template) execPongo(vars Vars, seed Seed) (out string, err error) {
	limit := t.env.opts.MaxOutput
	ctx := make(pongo2.Context, len(t.names)+len(t.tr.consts)+3)
	for _, n := range t.names {
		if v, ok := vars[n]; ok && v != nil {
			ctx[n] = pyValue(v)
		}
	}
	for i, c := range t.tr.consts {
		ctx[fmt.Sprintf("__pex_c%d", i)] = c
	}
	if t.tr.usesArgs || t.tr.usesSt {
		ctx[stateKey] = &renderState{key: t.env.opts.SecretKey, seed: seed, start: time.Now()}
		ctx["__pexargs"] = pexArgs
		ctx["__pexkw"] = pexKw
		if _, user := ctx["range"]; !user && t.tr.names["range"] {
			ctx["range"] = rangeFn
		}
	}
	// pongo2 panics on some inputs (e.g. integer modulo by zero); a
	// template must never take the process down.
	defer func() {
		if r := recover(); r != nil {
			out, err = "", &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("template failed: %v", r)}
		}
	}()
	w := &boundedWriter{limit: limit}
	w.b.Grow(64)
	if err := t.tpl.ExecuteWriterUnbuffered(ctx, w); err != nil {
		return "", t.tr.mapError(err)
	}
	if w.over {
		return "", &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("output longer than %d bytes", limit)}
	}
	return w.b.String(), nil
}

// boundedWriter keeps at most limit bytes and remembers an overflow.
type boundedWriter struct {
	b     strings.Builder
	limit int
	over  bool
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.over || w.b.Len()+len(p) > w.limit {
		w.over = true
		return 0, errors.New("output limit exceeded")
	}
	return w.b.Write(p)
}

func (w *boundedWriter) WriteString(s string) (int, error) {
	if w.over || w.b.Len()+len(s) > w.limit {
		w.over = true
		return 0, errors.New("output limit exceeded")
	}
	return w.b.WriteString(s)
}

// mapError turns a pongo2 error into an *Error positioned in the source.
func (t *translation) mapError(err error) *Error {
	var pe *pongo2.Error
	if !errors.As(err, &pe) {
		return &Error{Msg: err.Error()}
	}
	msg := "template error"
	if pe.OrigError != nil {
		msg = pe.OrigError.Error()
	}
	if pe.Line <= 0 {
		return &Error{Line: 1, Col: 1, Msg: msg}
	}
	out := t.b.String()
	off := offsetOf(out, pe.Line, pe.Column)
	line, col := lineCol(t.src, t.srcOffset(off))
	return &Error{Line: line, Col: col, Msg: msg}
}

// offsetOf converts pongo2's 1-based line and rune column into a byte offset.
func offsetOf(s string, line, col int) int {
	i := 0
	for l := 1; l < line; l++ {
		k := strings.IndexByte(s[i:], '\n')
		if k < 0 {
			return len(s)
		}
		i += k + 1
	}
	for c := 1; c < col && i < len(s); c++ {
		_, n := utf8.DecodeRuneInString(s[i:])
		if s[i] == '\n' {
			break
		}
		i += n
	}
	return i
}
