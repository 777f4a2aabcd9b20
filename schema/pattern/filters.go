package pattern

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode"
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
			if p.kw == nil {
				p.kw = map[string]*pongo2.Value{}
			}
			p.kw[k.name] = k.val
			continue
		}
		p.pos = append(p.pos, a)
	}
	return pongo2.AsValue(p)
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
	for k := range p.kw {
		found := false
		for _, n := range names {
			found = found || n == k
		}
		if !found {
			return fmt.Errorf("unexpected keyword argument %q", k)
		}
	}
	return nil
}

type filterFn func(in *pongo2.Value, a *argPack) (any, error)

// pexFilters are registered under their own names; jinjaImpl under "pexj_"
// names that the translator substitutes for the Jinja name.
var pexFilters = map[string]filterFn{}

var jinjaImpl = map[string]filterFn{}

func init() {
	pexFilters = map[string]filterFn{
		"pex_clean_phone_number": fCleanPhone,
		"pex_head":               fHead,
		"pex_tail":               fTail,
		"pex_hash":               fHash,
		"pex_md5":                fMD5,
		"pex_base64":             fBase64,
		"pex_reverse":            fReverse,
		"pex_strlen":             fStrlen,
		"pex_regex_replace":      fRegexReplace,
		"pex_regex_search":       fRegexSearch,
		"pex_to_uuid":            fToUUID,
		"pex_random_pin":         fRandomPin,
		"pex_uuid4":              fUUID4,
		"pex_url_encode":         fURLEncode,
		"pex_url_decode":         fURLDecode,
	}
	jinjaImpl = map[string]filterFn{
		"abs": fAbs, "capitalize": fCapitalize, "default": fDefault, "d": fDefault,
		"first": fFirst, "last": fLast, "float": fFloat, "int": fInt,
		"format": fFormat, "join": fJoin, "length": fLength, "count": fLength,
		"lower": fLower, "upper": fUpper, "replace": fReplace, "round": fRound,
		"striptags": fStriptags, "trim": fTrim, "truncate": fTruncate, "string": fString,
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

func fCleanPhone(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := str(in)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '+' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func fHead(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("n"); err != nil {
		return nil, err
	}
	n, err := intArg(a, 0, "n", 0, true)
	if err != nil {
		return nil, err
	}
	r := []rune(str(in))
	if n < 0 {
		n = 0
	}
	if n < len(r) {
		r = r[:n]
	}
	return string(r), nil
}

func fTail(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("n"); err != nil {
		return nil, err
	}
	n, err := intArg(a, 0, "n", 0, true)
	if err != nil {
		return nil, err
	}
	r := []rune(str(in))
	if n < 0 {
		n = 0
	}
	if n < len(r) {
		r = r[len(r)-n:]
	}
	return string(r), nil
}

func fHash(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(str(in)))
	return hex.EncodeToString(sum[:]), nil
}

func fMD5(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	sum := md5.Sum([]byte(str(in)))
	return hex.EncodeToString(sum[:]), nil
}

func fBase64(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return base64.StdEncoding.EncodeToString([]byte(str(in))), nil
}

func fReverse(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	r := []rune(str(in))
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r), nil
}

func fStrlen(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return utf8.RuneCountInString(str(in)), nil
}

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

func fRegexReplace(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("find", "replace"); err != nil {
		return nil, err
	}
	find, err := strArg(a, 0, "find", "", true)
	if err != nil {
		return nil, err
	}
	repl, err := strArg(a, 1, "replace", "", true)
	if err != nil {
		return nil, err
	}
	re, err := compilePyRegex(find)
	if err != nil {
		return nil, err
	}
	tmpl, err := pyReplTemplate(repl)
	if err != nil {
		return nil, err
	}
	s := str(in)
	var out []byte
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		out = append(out, s[last:m[0]]...)
		out = re.ExpandString(out, tmpl, s, m)
		last = m[1]
		if len(out) > maxValueBytes {
			return nil, fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
	}
	out = append(out, s[last:]...)
	return string(out), nil
}

func fRegexSearch(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("pattern"); err != nil {
		return nil, err
	}
	p, err := strArg(a, 0, "pattern", "", true)
	if err != nil {
		return nil, err
	}
	re, err := compilePyRegex(p)
	if err != nil {
		return nil, err
	}
	m := re.FindStringSubmatch(str(in))
	switch {
	case m == nil:
		return "", nil
	case len(m) > 1:
		return m[1], nil
	}
	return m[0], nil
}

func fToUUID(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := str(in)
	if s == "" {
		return "", nil
	}
	b := []byte(s)
	if len(b) != 16 {
		var err error
		b, err = base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
		}
		if err != nil || len(b) != 16 {
			return nil, errors.New("value is neither 16 raw bytes nor base64 of 16 bytes")
		}
	}
	return adGUID(b), nil
}

// adGUID formats a Microsoft GUID (first three groups little-endian).
func adGUID(b []byte) string {
	o := []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}
	o = append(o, b[8:16]...)
	h := hex.EncodeToString(o)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func fRandomPin(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("length"); err != nil {
		return nil, err
	}
	n, err := intArg(a, 0, "length", 0, true)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 256 {
		return nil, fmt.Errorf("length must be 1..256, got %d", n)
	}
	st := a.st
	if st == nil || len(st.key) == 0 {
		return nil, errors.New("no secret key configured for generated values")
	}
	return StableSecret(st.key, st.seed.Template, st.seed.EntryKey, st.nextField(), n, "0123456789"), nil
}

func fUUID4(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	st := a.st
	if st == nil || len(st.key) == 0 {
		return nil, errors.New("no secret key configured for generated values")
	}
	b := stableBytes(st.key, st.seed.Template, st.seed.EntryKey, st.nextField(), 16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// fURLEncode quotes like Python's urllib.parse.quote(s, safe="").
func fURLEncode(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := str(in)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// fURLDecode unquotes like Python's urllib.parse.unquote: bad escapes stay.
func fURLDecode(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := str(in)
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s)+0 && i+2 <= len(s)-1 {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
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

func fCapitalize(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	s := str(in)
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return "", nil
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:]), nil
}

// fDefault: the default applies when the value is missing or an empty
// string; with boolean=true also to any false value.
func fDefault(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("default_value", "boolean"); err != nil {
		return nil, err
	}
	def, ok := a.arg(0, "default_value")
	if !ok {
		def = pongo2.AsValue("")
	}
	b, _ := a.arg(1, "boolean")
	if in == nil || in.IsNil() || (in.IsString() && in.Len() == 0) || (b != nil && b.IsTrue() && !in.IsTrue()) {
		return def, nil
	}
	return in, nil
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

func fLower(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return strings.ToLower(str(in)), nil
}

func fUpper(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return strings.ToUpper(str(in)), nil
}

func fString(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return str(in), nil
}

func fReplace(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("old", "new", "count"); err != nil {
		return nil, err
	}
	old, err := strArg(a, 0, "old", "", true)
	if err != nil {
		return nil, err
	}
	nw, err := strArg(a, 1, "new", "", true)
	if err != nil {
		return nil, err
	}
	count, err := intArg(a, 2, "count", -1, false)
	if err != nil {
		return nil, err
	}
	s := str(in)
	n := strings.Count(s, old)
	if count >= 0 && count < n {
		n = count
	}
	if len(s)+n*(len(nw)-len(old)) > maxValueBytes {
		return nil, fmt.Errorf("result longer than %d bytes", maxValueBytes)
	}
	return strings.Replace(s, old, nw, count), nil
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

func fTrim(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("chars"); err != nil {
		return nil, err
	}
	if c, ok := a.arg(0, "chars"); ok && !c.IsNil() {
		return strings.Trim(str(in), c.String()), nil
	}
	return strings.TrimSpace(str(in)), nil
}

// fTruncate follows Jinja2: length=255, killwords=False, end='...', leeway=5.
func fTruncate(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check("length", "killwords", "end", "leeway"); err != nil {
		return nil, err
	}
	length, err := intArg(a, 0, "length", 255, false)
	if err != nil {
		return nil, err
	}
	kill := false
	if v, ok := a.arg(1, "killwords"); ok {
		kill = v.IsTrue()
	}
	end, _ := strArg(a, 2, "end", "...", false)
	leeway, err := intArg(a, 3, "leeway", 5, false)
	if err != nil {
		return nil, err
	}
	endLen := utf8.RuneCountInString(end)
	if length < endLen {
		return nil, fmt.Errorf("expected length >= %d, got %d", endLen, length)
	}
	if leeway < 0 {
		return nil, fmt.Errorf("expected leeway >= 0, got %d", leeway)
	}
	r := []rune(str(in))
	if len(r) <= length+leeway {
		return string(r), nil
	}
	head := string(r[:length-endLen])
	if kill {
		return head + end, nil
	}
	if k := strings.LastIndexByte(head, ' '); k >= 0 {
		head = head[:k]
	}
	return head + end, nil
}
