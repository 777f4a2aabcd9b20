package pattern

import (
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flosch/pongo2/v6"
)

// maxValueBytes bounds every string a filter or {% set %} produces, so a
// hostile pattern cannot grow values without bound.
const maxValueBytes = 1 << 20

// argPack carries Jinja-style filter arguments (several, and by keyword) in
// the single parameter a pongo2 filter takes.
type argPack struct {
	pos []*pongo2.Value
	kw  map[string]*pongo2.Value
	st  *renderState
}

type kwArg struct {
	name string
	val  *pongo2.Value
}

// pexArgs is called as __pexargs(...) by translated templates.
func pexArgs(ctx *pongo2.ExecutionContext, args ...*pongo2.Value) *pongo2.Value {
	p := &argPack{st: stateOf(ctx)}
	for _, a := range args {
		if k, ok := a.Interface().(*kwArg); ok {
			p.add(k.name, k.val)
			continue
		}
		p.add("", a)
	}
	return pongo2.AsValue(p)
}

// add appends a positional argument (name "") or sets a keyword argument.
func (p *argPack) add(name string, v *pongo2.Value) {
	if name == "" {
		p.pos = append(p.pos, v)
		return
	}
	if p.kw == nil {
		p.kw = map[string]*pongo2.Value{}
	}
	p.kw[name] = v
}

// pexKw is called as __pexkw("name", value) for keyword arguments.
func pexKw(name, v *pongo2.Value) *pongo2.Value {
	return pongo2.AsValue(&kwArg{name: name.String(), val: v})
}

func unpack(param *pongo2.Value) *argPack {
	if p, ok := param.Interface().(*argPack); ok {
		return p
	}
	if param.IsNil() {
		return &argPack{}
	}
	return &argPack{pos: []*pongo2.Value{param}}
}

// arg returns argument i (or the keyword name); ok is false if absent.
func (p *argPack) arg(i int, name string) (*pongo2.Value, bool) {
	if i < len(p.pos) {
		return p.pos[i], true
	}
	if v, ok := p.kw[name]; ok {
		return v, true
	}
	return nil, false
}

// check verifies at most len(names) arguments and only known keywords.
func (p *argPack) check(names ...string) error {
	if len(p.pos) > len(names) {
		return fmt.Errorf("takes at most %d argument(s), got %d", len(names), len(p.pos))
	}
	bad := ""
	for k := range p.kw {
		found := false
		for _, n := range names {
			found = found || n == k
		}
		if !found && (bad == "" || k < bad) {
			bad = k // the first in order, so the message does not vary
		}
	}
	if bad != "" {
		return fmt.Errorf("unexpected keyword argument %q", bad)
	}
	return nil
}

type filterFn func(in *pongo2.Value, a *argPack) (any, error)

// textFilter is a filter whose result depends only on its input's text. It
// checks and reads its arguments once and returns the function it applies
// to the text. The pongo2 filters (through fromText) and the compiled fast
// path (at compile time) both call it, so each filter has one
// implementation.
type textFilter func(a *argPack) (func(string) (string, error), error)

// textFilters are the filters that are textFilters, by template name.
var textFilters = map[string]textFilter{}

// fromText makes a pongo2 filter of a textFilter.
func fromText(tf textFilter) filterFn {
	return func(in *pongo2.Value, a *argPack) (any, error) {
		f, err := tf(a)
		if err != nil {
			return nil, err
		}
		return f(str(in))
	}
}

// noArgs is a textFilter taking no arguments.
func noArgs(f func(string) string) textFilter {
	run := func(s string) (string, error) { return f(s), nil }
	return func(a *argPack) (func(string) (string, error), error) {
		if err := a.check(); err != nil {
			return nil, err
		}
		return run, nil
	}
}

// pexFilters are registered under their own names; jinjaImpl under "pexj_"
// names that the translator substitutes for the Jinja name.
var pexFilters = map[string]filterFn{}

var jinjaImpl = map[string]filterFn{}

func init() {
	textFilters = map[string]textFilter{
		"pex_clean_phone_number": noArgs(cleanPhone),
		"pex_head":               tHead,
		"pex_tail":               tTail,
		"pex_hash":               noArgs(hashHex),
		"pex_md5":                noArgs(md5Hex),
		"pex_base64":             noArgs(base64Std),
		"pex_reverse":            noArgs(reverseRunes),
		"pex_regex_replace":      tRegexReplace,
		"pex_regex_search":       tRegexSearch,
		"pex_to_uuid":            tToUUID,
		"pex_url_encode":         noArgs(urlEncode),
		"pex_url_decode":         noArgs(urlDecode),
		"capitalize":             noArgs(capitalize),
		"lower":                  noArgs(strings.ToLower),
		"upper":                  noArgs(strings.ToUpper),
		"replace":                tReplace,
		"trim":                   tTrim,
		"truncate":               tTruncate,
	}
	pexFilters = map[string]filterFn{
		"pex_strlen":     fStrlen,
		"pex_random_pin": fRandomPin,
		"pex_uuid4":      fUUID4,
	}
	jinjaImpl = map[string]filterFn{
		"abs": fAbs, "default": fDefault, "d": fDefault,
		"first": fFirst, "last": fLast, "float": fFloat, "int": fInt,
		"format": fFormat, "join": fJoin, "length": fLength, "count": fLength,
		"round": fRound, "striptags": fStriptags, "string": fString,
	}
	for name, tf := range textFilters {
		if strings.HasPrefix(name, "pex_") {
			pexFilters[name] = fromText(tf)
		} else {
			jinjaImpl[name] = fromText(tf)
		}
	}
	// pongo2 keeps filters in one global registry. Only new names are added
	// (pex_* and pexj_*), so no pongo2 built-in changes behaviour for any
	// other user of the library in the same process.
	for name, fn := range pexFilters {
		register(name, fn)
	}
	for name, fn := range jinjaImpl {
		jinjaFilters[name] = "pexj_" + name
		register("pexj_"+name, fn)
	}
}

func register(name string, fn filterFn) {
	f := func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		out, err := fn(in, unpack(param))
		if err == nil {
			if s, ok := out.(string); ok && len(s) > maxValueBytes {
				err = fmt.Errorf("result longer than %d bytes", maxValueBytes)
			}
		}
		if err != nil {
			return nil, &pongo2.Error{Sender: "filter:" + name, OrigError: fmt.Errorf("%s: %w", strings.TrimPrefix(name, "pexj_"), err)}
		}
		if v, ok := out.(*pongo2.Value); ok {
			return v, nil
		}
		return pongo2.AsValue(out), nil
	}
	if pongo2.FilterExists(name) {
		_ = pongo2.ReplaceFilter(name, f)
		return
	}
	if err := pongo2.RegisterFilter(name, f); err != nil {
		panic(err)
	}
}

func str(v *pongo2.Value) string {
	if v == nil || v.IsNil() {
		return ""
	}
	return v.String()
}

// intArg reads an integer argument, accepting ints, floats and numeric text.
func intArg(a *argPack, i int, name string, def int, required bool) (int, error) {
	v, ok := a.arg(i, name)
	if !ok {
		if required {
			return 0, fmt.Errorf("argument %q is required", name)
		}
		return def, nil
	}
	if v.IsInteger() || v.IsFloat() {
		return v.Integer(), nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(str(v)))
	if err != nil {
		return 0, fmt.Errorf("argument %q must be an integer, got %q", name, str(v))
	}
	return n, nil
}

func strArg(a *argPack, i int, name, def string, required bool) (string, error) {
	v, ok := a.arg(i, name)
	if !ok {
		if required {
			return "", fmt.Errorf("argument %q is required", name)
		}
		return def, nil
	}
	return str(v), nil
}

// ---- Pexip filters ----

// regexCache holds compiled Python-style regular expressions.
var regexCache = newLRU(256)

// compilePyRegex compiles a Python regular expression with Go's RE2.
func compilePyRegex(p string) (*regexp.Regexp, error) {
	if re, ok := regexCache.get(p); ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression: %w", err)
	}
	regexCache.put(p, re)
	return re, nil
}

// pyReplTemplate converts a Python re.sub replacement (\1, \g<1>, \g<name>)
// into a Go Expand template.
func pyReplTemplate(r string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		if c == '$' {
			b.WriteString("$$")
			continue
		}
		if c != '\\' || i+1 >= len(r) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := r[i]; {
		case e >= '0' && e <= '9':
			j := i + 1
			if j < len(r) && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			b.WriteString("${" + r[i:j] + "}")
			i = j - 1
		case e == 'g':
			end := strings.IndexByte(r[i:], '>')
			if i+1 >= len(r) || r[i+1] != '<' || end < 0 {
				return "", errors.New(`bad \g escape in replacement`)
			}
			b.WriteString("${" + r[i+2:i+end] + "}")
			i += end
		case e == 'n':
			b.WriteByte('\n')
		case e == 't':
			b.WriteByte('\t')
		case e == 'r':
			b.WriteByte('\r')
		case e == '\\':
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

// adGUID formats a Microsoft GUID (first three groups little-endian).
func adGUID(b []byte) string {
	o := []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}
	o = append(o, b[8:16]...)
	h := hex.EncodeToString(o)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ---- Jinja2 filters ----

func number(in *pongo2.Value) (any, bool) {
	if in == nil || in.IsNil() {
		return nil, false
	}
	switch x := in.Interface().(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case pyFloat:
		return float64(x), true
	}
	if in.IsInteger() {
		return in.Integer(), true
	}
	if in.IsFloat() {
		return in.Float(), true
	}
	return nil, false
}

func fAbs(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	n, ok := number(in)
	if !ok {
		return nil, fmt.Errorf("bad operand type %s (want a number)", kind(in))
	}
	if i, ok := n.(int); ok {
		if i < 0 {
			i = -i
		}
		return i, nil
	}
	return pyFloat(math.Abs(n.(float64))), nil
}

func kind(v *pongo2.Value) string {
	if v == nil || v.IsNil() {
		return "undefined"
	}
	if v.IsString() {
		return "string"
	}
	return reflect.TypeOf(v.Interface()).Kind().String()
}

func fFirst(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	it, err := items(in)
	if err != nil {
		return nil, err
	}
	if len(it) == 0 {
		return nil, nil
	}
	return it[0], nil
}

func fLast(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	if in != nil && !in.IsNil() && reflect.ValueOf(in.Interface()).Kind() == reflect.Map {
		return nil, errors.New("a mapping has no last item")
	}
	it, err := items(in)
	if err != nil {
		return nil, err
	}
	if len(it) == 0 {
		return nil, nil
	}
	return it[len(it)-1], nil
}

// parsePyFloat parses text the way Python's float() does.
func parsePyFloat(s string) (float64, bool) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "_", ""))
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity", "nan":
	default:
		if s == "" || strings.ContainsAny(s, "xXpP") {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

func fFloat(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("default"); err != nil {
		return nil, err
	}
	def, ok := a.arg(0, "default")
	if n, ok := number(in); ok {
		if i, isInt := n.(int); isInt {
			return pyFloat(i), nil
		}
		return pyFloat(n.(float64)), nil
	}
	if in != nil && in.IsString() {
		if f, ok := parsePyFloat(in.String()); ok {
			return pyFloat(f), nil
		}
	}
	if ok {
		return def, nil
	}
	return pyFloat(0), nil
}

func fInt(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("default", "base"); err != nil {
		return nil, err
	}
	def, hasDef := a.arg(0, "default")
	base, err := intArg(a, 1, "base", 10, false)
	if err != nil {
		return nil, err
	}
	if n, ok := number(in); ok {
		if i, isInt := n.(int); isInt {
			return i, nil
		}
		f := n.(float64)
		if !math.IsInf(f, 0) && !math.IsNaN(f) {
			return int(f), nil
		}
	} else if in != nil && in.IsString() {
		s := strings.TrimSpace(strings.ReplaceAll(in.String(), "_", ""))
		if i, err := strconv.ParseInt(s, base, 64); err == nil {
			return int(i), nil
		}
		if f, ok := parsePyFloat(s); ok && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return int(f), nil
		}
	}
	if hasDef {
		return def, nil
	}
	return 0, nil
}

func fFormat(in *pongo2.Value, a *argPack) (any, error) {
	args := make([]any, len(a.pos))
	for i, v := range a.pos {
		args[i] = v.Interface()
	}
	kw := map[string]any{}
	for k, v := range a.kw {
		kw[k] = v.Interface()
	}
	if len(args) > 0 && len(kw) > 0 {
		return nil, errors.New("can't handle positional and keyword arguments at the same time")
	}
	return pyFormat(str(in), args, kw)
}

func fJoin(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("d"); err != nil {
		return nil, err
	}
	sep, _ := strArg(a, 0, "d", "", false)
	it, err := items(in)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for i, v := range it {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(toStr(v))
		if b.Len() > maxValueBytes {
			return nil, fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
	}
	return b.String(), nil
}

func fLength(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	if in == nil || in.IsNil() {
		return 0, nil
	}
	if in.IsString() {
		return utf8.RuneCountInString(in.String()), nil
	}
	rv := reflect.ValueOf(in.Interface())
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return rv.Len(), nil
	}
	return nil, fmt.Errorf("object of type %s has no length", kind(in))
}

func fString(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return str(in), nil
}

func fRound(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("precision", "method"); err != nil {
		return nil, err
	}
	prec, err := intArg(a, 0, "precision", 0, false)
	if err != nil {
		return nil, err
	}
	method, _ := strArg(a, 1, "method", "common", false)
	n, ok := number(in)
	if !ok {
		return nil, fmt.Errorf("bad operand type %s (want a number)", kind(in))
	}
	f, isF := n.(float64)
	if !isF {
		f = float64(n.(int))
	}
	if prec < -308 || prec > 308 {
		return nil, fmt.Errorf("precision %d out of range", prec)
	}
	p := math.Pow(10, float64(prec))
	switch method {
	case "common":
		if prec >= 0 && prec <= 17 {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', prec, 64), 64)
			return pyFloat(r), nil
		}
		return pyFloat(math.RoundToEven(f*p) / p), nil
	case "ceil":
		return pyFloat(math.Ceil(f*p) / p), nil
	case "floor":
		return pyFloat(math.Floor(f*p) / p), nil
	}
	return nil, errors.New("method must be common, ceil or floor")
}

var (
	reComment = regexp.MustCompile(`(?s)<!--.*?-->`)
	reTag     = regexp.MustCompile(`(?s)<[^>]*>`)
)

func fStriptags(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := reComment.ReplaceAllString(str(in), "")
	s = reTag.ReplaceAllString(s, "")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " "), nil
}
