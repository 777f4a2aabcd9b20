package pattern

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flosch/pongo2/v6"
)

// This file holds the one implementation of every filter that the compiled
// fast path (fast.go) runs as well as pongo2: the textFilters, and the cores
// of default, pex_strlen, pex_random_pin and pex_uuid4.

// ---- Pexip filters ----

func cleanPhone(s string) string {
	kept := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '+' || c >= '0' && c <= '9' {
			kept++
		}
	}
	if kept == len(s) {
		return s // already clean
	}
	var b strings.Builder
	b.Grow(kept)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '+' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// headRunes is string([]rune(s)[:n]) (n clamped to 0..len); like that
// expression it turns invalid UTF-8 into U+FFFD.
func headRunes(s string, n int) string {
	s = validRunes(s)
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return s[:i]
}

// tailRunes is string of the last n runes of []rune(s), as headRunes.
func tailRunes(s string, n int) string {
	s = validRunes(s)
	i := len(s)
	for k := 0; k < n && i > 0; k++ {
		_, w := utf8.DecodeLastRuneInString(s[:i])
		i -= w
	}
	return s[i:]
}

// validRunes is string([]rune(s)): s itself when it is valid UTF-8, else
// s with each invalid byte turned into U+FFFD.
func validRunes(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string([]rune(s))
}

// countArg is the textFilter of a filter taking one required integer n.
func countArg(f func(string, int) string) textFilter {
	return func(a *argPack) (func(string) (string, error), error) {
		if err := a.check("n"); err != nil {
			return nil, err
		}
		n, err := intArg(a, 0, "n", 0, true)
		if err != nil {
			return nil, err
		}
		return func(s string) (string, error) { return f(s, n), nil }, nil
	}
}

var (
	tHead = countArg(headRunes)
	tTail = countArg(tailRunes)
)

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func reverseRunes(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// strlen is pex_strlen: the length in characters.
func strlen(s string) int { return utf8.RuneCountInString(s) }

func fStrlen(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return strlen(str(in)), nil
}

// regexArgs reads the arguments of a regular-expression filter: exactly
// the named strings, all required, the first of them the expression, which
// it compiles.
func regexArgs(a *argPack, names ...string) (*regexp.Regexp, []string, error) {
	if err := a.check(names...); err != nil {
		return nil, nil, err
	}
	args := make([]string, len(names))
	for i, name := range names {
		v, err := strArg(a, i, name, "", true)
		if err != nil {
			return nil, nil, err
		}
		args[i] = v
	}
	re, err := compilePyRegex(args[0])
	if err != nil {
		return nil, nil, err
	}
	return re, args, nil
}

func tRegexReplace(a *argPack) (func(string) (string, error), error) {
	re, args, err := regexArgs(a, "find", "replace")
	if err != nil {
		return nil, err
	}
	tmpl, err := pyReplTemplate(args[1])
	if err != nil {
		return nil, err
	}
	if c := classRunOf(re); c != nil && !strings.Contains(tmpl, "$") {
		return func(s string) (string, error) { return c.replaceAll(s, tmpl) }, nil
	}
	return func(s string) (string, error) { return regexpReplace(re, tmpl, s) }, nil
}

// regexpReplace replaces every match of re in s by the Expand template tmpl.
func regexpReplace(re *regexp.Regexp, tmpl, s string) (string, error) {
	matches := re.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s, nil
	}
	var out []byte
	last := 0
	for _, m := range matches {
		out = append(out, s[last:m[0]]...)
		out = re.ExpandString(out, tmpl, s, m)
		last = m[1]
		if len(out) > maxValueBytes {
			return "", fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
	}
	out = append(out, s[last:]...)
	return string(out), nil
}

// classRun is a regular expression that is one character class, alone ([^A-Z]) or
// repeated greedily once or more ([^a-z0-9.]+): what patterns most often strip from
// names. Its replaceAll with a literal replacement is regexp's, in one pass over the text
// without the regexp machine (a tenth of a no-op plan's rendering went there).
type classRun struct {
	ranges []rune // lo, hi pairs (regexp/syntax's OpCharClass)
	ascii  [2]uint64
	plus   bool
}

// classRunOf is re as a classRun, or nil when it is anything else.
func classRunOf(re *regexp.Regexp) *classRun {
	sre, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	sre = sre.Simplify()
	c := &classRun{}
	if sre.Op == syntax.OpPlus && sre.Flags&syntax.NonGreedy == 0 && len(sre.Sub) == 1 {
		c.plus, sre = true, sre.Sub[0]
	}
	if sre.Op != syntax.OpCharClass || len(sre.Rune) == 0 {
		return nil
	}
	c.ranges = slices.Clone(sre.Rune)
	for r := rune(0); r < utf8.RuneSelf; r++ {
		if c.inRanges(r) {
			c.ascii[r/64] |= 1 << (r % 64)
		}
	}
	return c
}

func (c *classRun) inRanges(r rune) bool {
	for i := 0; i+1 < len(c.ranges); i += 2 {
		if c.ranges[i] <= r && r <= c.ranges[i+1] {
			return true
		}
	}
	return false
}

// at says whether the character at s[i] is in the class, and its width (an invalid byte is
// U+FFFD of width 1, as regexp reads it).
func (c *classRun) at(s string, i int) (bool, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return c.ascii[b/64]&(1<<(b%64)) != 0, 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return c.inRanges(r), n
}

// replaceAll is the regexp filter's loop for a classRun and a literal replacement.
func (c *classRun) replaceAll(s, repl string) (string, error) {
	var out []byte
	matched, last := false, 0
	for i := 0; i < len(s); {
		in, n := c.at(s, i)
		if !in {
			i += n
			continue
		}
		start := i
		for i += n; c.plus && i < len(s); i += n {
			if in, n = c.at(s, i); !in {
				break
			}
		}
		if !matched {
			matched, out = true, make([]byte, 0, len(s)+len(repl))
		}
		out = append(append(out, s[last:start]...), repl...)
		last = i
		if len(out) > maxValueBytes {
			return "", fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
	}
	if !matched {
		return s, nil
	}
	return string(append(out, s[last:]...)), nil
}

func tRegexSearch(a *argPack) (func(string) (string, error), error) {
	re, _, err := regexArgs(a, "pattern")
	if err != nil {
		return nil, err
	}
	return func(s string) (string, error) {
		m := re.FindStringSubmatch(s)
		switch {
		case m == nil:
			return "", nil
		case len(m) > 1:
			return m[1], nil
		}
		return m[0], nil
	}, nil
}

func toUUID(s string) (string, error) {
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
			return "", errors.New("value is neither 16 raw bytes nor base64 of 16 bytes")
		}
	}
	return adGUID(b), nil
}

func tToUUID(a *argPack) (func(string) (string, error), error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return toUUID, nil
}

const digits = "0123456789"

// pinArgs reads pex_random_pin's arguments.
func pinArgs(a *argPack) (int, error) {
	if err := a.check("length"); err != nil {
		return 0, err
	}
	n, err := intArg(a, 0, "length", 0, true)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > 256 {
		return 0, fmt.Errorf("length must be 1..256, got %d", n)
	}
	return n, nil
}

var errNoKey = errors.New("no secret key configured for generated values")

// randomPin is the n-th stable PIN of one render.
func randomPin(st *renderState, n int) (string, error) {
	if st == nil || len(st.key) == 0 {
		return "", errNoKey
	}
	return StableSecret(st.key, st.seed.Template, st.seed.EntryKey, st.nextField(), n, digits), nil
}

func fRandomPin(in *pongo2.Value, a *argPack) (any, error) {
	n, err := pinArgs(a)
	if err != nil {
		return nil, err
	}
	return randomPin(a.st, n)
}

// uuid4 is the next stable version-4 UUID of one render.
func uuid4(st *renderState) (string, error) {
	if st == nil || len(st.key) == 0 {
		return "", errNoKey
	}
	var buf [48]byte
	b := stableBytesAppend(buf[:0], st.key, st.seed.Template, st.seed.EntryKey, st.nextField(), 16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var o [36]byte
	hex.Encode(o[0:8], b[0:4])
	o[8] = '-'
	hex.Encode(o[9:13], b[4:6])
	o[13] = '-'
	hex.Encode(o[14:18], b[6:8])
	o[18] = '-'
	hex.Encode(o[19:23], b[8:10])
	o[23] = '-'
	hex.Encode(o[24:36], b[10:16])
	return string(o[:]), nil
}

func fUUID4(in *pongo2.Value, a *argPack) (any, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return uuid4(a.st)
}

// urlEncode quotes like Python's urllib.parse.quote(s, safe="").
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// urlDecode unquotes like Python's urllib.parse.unquote: bad escapes stay.
func urlDecode(s string) string {
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
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// ---- Jinja2 filters ----

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return ""
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// defaultArgs reads default's arguments: the default value and boolean.
func defaultArgs(a *argPack) (*pongo2.Value, bool, error) {
	if err := a.check("default_value", "boolean"); err != nil {
		return nil, false, err
	}
	def, ok := a.arg(0, "default_value")
	if !ok {
		def = pongo2.AsValue("")
	}
	b, _ := a.arg(1, "boolean")
	return def, b != nil && b.IsTrue(), nil
}

// defaultApplies: the default applies when the value is missing or an empty
// string; with boolean=true also to any false value. For text (a string or
// a missing value) that is exactly when the text is empty, whatever
// boolean is: the fast path relies on this.
func defaultApplies(in *pongo2.Value, boolean bool) bool {
	return in == nil || in.IsNil() || (in.IsString() && in.Len() == 0) || (boolean && !in.IsTrue())
}

func fDefault(in *pongo2.Value, a *argPack) (any, error) {
	def, boolean, err := defaultArgs(a)
	if err != nil {
		return nil, err
	}
	if defaultApplies(in, boolean) {
		return def, nil
	}
	return in, nil
}

func tReplace(a *argPack) (func(string) (string, error), error) {
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
	return func(s string) (string, error) {
		n := strings.Count(s, old)
		if count >= 0 && count < n {
			n = count
		}
		if len(s)+n*(len(nw)-len(old)) > maxValueBytes {
			return "", fmt.Errorf("result longer than %d bytes", maxValueBytes)
		}
		return strings.Replace(s, old, nw, count), nil
	}, nil
}

func tTrim(a *argPack) (func(string) (string, error), error) {
	if err := a.check("chars"); err != nil {
		return nil, err
	}
	if c, ok := a.arg(0, "chars"); ok && !c.IsNil() {
		chars := c.String()
		return func(s string) (string, error) { return strings.Trim(s, chars), nil }, nil
	}
	return func(s string) (string, error) { return strings.TrimSpace(s), nil }, nil
}

// tTruncate follows Jinja2: length=255, killwords=False, end='...', leeway=5.
func tTruncate(a *argPack) (func(string) (string, error), error) {
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
	return func(s string) (string, error) {
		s = validRunes(s)
		if utf8.RuneCountInString(s) <= length+leeway {
			return s, nil
		}
		r := []rune(s)
		head := string(r[:length-endLen])
		if kill {
			return head + end, nil
		}
		if k := strings.LastIndexByte(head, ' '); k >= 0 {
			head = head[:k]
		}
		return head + end, nil
	}, nil
}
