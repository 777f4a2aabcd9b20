package pattern

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flosch/pongo2/v6"
)

// Limits applied at compile time so that a hostile template cannot blow the
// parser's stack or memory.
const (
	maxSourceBytes = 1 << 20 // 1 MiB of template source
	maxDepth       = 64      // nesting of brackets and of block tags
)

// segment maps a run of translated output back to the source.
type segment struct {
	out, src int
	verbatim bool // output bytes equal source bytes one for one
}

// translation is the result of rewriting a Jinja2/pongo2 template into a form
// pongo2 parses.
type translation struct {
	src      string // normalised source
	b        strings.Builder
	segs     []segment
	names    map[string]bool // root identifiers the template may read
	consts   []string        // string literals that pongo2 cannot spell
	usesArgs bool            // uses __pexargs / __pexkw
	usesSt   bool            // needs the render state (loops, set, generators)
	depth    int
}

// jinjaFilters maps a Jinja2 filter name to the pongo2 filter that implements
// it with Jinja's semantics.
var jinjaFilters = map[string]string{}

// statefulFilters always receive an argument pack (they need the render state).
var statefulFilters = map[string]bool{"pex_random_pin": true, "pex_uuid4": true}

// bannedPongoFilters are pongo2 built-ins refused because they are
// nondeterministic or can allocate without bound (width parameters).
var bannedPongoFilters = map[string]string{
	"random":       "is nondeterministic",
	"ljust":        "can allocate without bound",
	"rjust":        "can allocate without bound",
	"center":       "can allocate without bound",
	"stringformat": "can allocate without bound; use format",
	"floatformat":  "can allocate without bound; use round",
}

// tagRule says what happens to a tag name.
var allowedTags = map[string]string{
	"if": "if", "elif": "elif", "else": "else", "endif": "endif",
	"for": "pex_for", "empty": "empty", "endfor": "endfor",
	"set":       "pex_set",
	"spaceless": "spaceless", "endspaceless": "endspaceless",
	"templatetag": "templatetag", "firstof": "firstof", "cycle": "cycle",
	"ifchanged": "ifchanged", "endifchanged": "endifchanged",
	"ifequal": "ifequal", "endifequal": "endifequal",
	"ifnotequal": "ifnotequal", "endifnotequal": "endifnotequal",
	"widthratio": "widthratio",
}

var blockOpeners = map[string]bool{"if": true, "for": true, "spaceless": true, "ifchanged": true, "ifequal": true, "ifnotequal": true}

var refusedTags = map[string]string{
	"include":    "would read another template or file",
	"ssi":        "would read a file",
	"import":     "would read another template",
	"from":       "would read another template",
	"extends":    "would read another template",
	"block":      "belongs to template inheritance, which is not available",
	"macro":      "macros are not available (they allow unbounded recursion)",
	"call":       "macros are not available",
	"now":        "is nondeterministic",
	"lorem":      "is nondeterministic",
	"with":       "is not available (it allows unbounded value growth)",
	"filter":     "filter blocks are not available; apply filters to expressions",
	"autoescape": "is not available; output is never escaped",
	"endblock":   "belongs to template inheritance, which is not available",
	"endmacro":   "macros are not available",
}

type tokKind int

const (
	tkIdent tokKind = iota
	tkNumber
	tkString
	tkSymbol
)

type tok struct {
	kind tokKind
	val  string // identifier, number text, symbol, or decoded string value
	pos  int    // byte offset in source
	end  int    // byte offset after the token in source
}

func (t *translation) errAt(pos int, format string, a ...any) *Error {
	line, col := lineCol(t.src, pos)
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, a...)}
}

// lineCol returns the 1-based line and rune column of byte offset pos.
func lineCol(s string, pos int) (int, int) {
	if pos > len(s) {
		pos = len(s)
	}
	line, start := 1, 0
	for i := 0; i < pos; i++ {
		if s[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return line, utf8.RuneCountInString(s[start:pos]) + 1
}

// emit writes generated text standing for source offset src.
func (t *translation) emit(s string, src int) {
	t.segs = append(t.segs, segment{out: t.b.Len(), src: src})
	t.b.WriteString(s)
}

// emitVerbatim writes source text [from,to) unchanged.
func (t *translation) emitVerbatim(from, to int) {
	if from >= to {
		return
	}
	t.segs = append(t.segs, segment{out: t.b.Len(), src: from, verbatim: true})
	t.b.WriteString(t.src[from:to])
}

// srcOffset maps an output byte offset back to a source byte offset.
func (t *translation) srcOffset(out int) int {
	best := segment{}
	for _, s := range t.segs {
		if s.out > out {
			break
		}
		best = s
	}
	if best.verbatim {
		return best.src + out - best.out
	}
	return best.src
}

// normalizeNewlines turns \r\n and \r into \n and drops one trailing newline,
// as Jinja2's default environment does.
func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return strings.TrimSuffix(s, "\n")
}

// hasTags reports whether s contains any template syntax.
func hasTags(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// translate rewrites src (already normalised) into pongo2 syntax.
func translate(src string) (*translation, *Error) {
	t := &translation{src: src, names: map[string]bool{}}
	if len(src) > maxSourceBytes {
		return nil, &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("template is larger than %d bytes", maxSourceBytes)}
	}
	t.emit("{% autoescape off %}", 0)
	var stack []int // open block tag positions
	i := 0
	for i < len(src) {
		j := indexOpen(src, i)
		if j < 0 {
			t.emitVerbatim(i, len(src))
			break
		}
		t.emitVerbatim(i, j)
		switch src[j+1] {
		case '#':
			if j+2 < len(src) && src[j+2] == '-' {
				return nil, t.errAt(j, "whitespace control in comments ({#-) is not supported")
			}
			k := strings.Index(src[j+2:], "#}")
			if k < 0 {
				return nil, t.errAt(j, "comment not closed")
			}
			if src[j+2+k-1] == '-' {
				return nil, t.errAt(j+2+k-1, "whitespace control in comments (-#}) is not supported")
			}
			i = j + 2 + k + 2
		case '{':
			end, err := t.expr(j)
			if err != nil {
				return nil, err
			}
			i = end
		case '%':
			end, name, namePos, err := t.tag(j)
			if err != nil {
				return nil, err
			}
			switch {
			case blockOpeners[name]:
				stack = append(stack, namePos)
				if len(stack) > maxDepth {
					return nil, t.errAt(namePos, "blocks nested deeper than %d", maxDepth)
				}
			case strings.HasPrefix(name, "end") && len(stack) > 0:
				stack = stack[:len(stack)-1]
			}
			i = end
		}
	}
	t.emit("{% endautoescape %}", len(src))
	if k := strings.IndexByte(t.b.String(), 1); k >= 0 {
		// pongo2's lexer uses U+0001 as its end-of-input marker
		return nil, t.errAt(t.srcOffset(k), "control character U+0001 is not allowed outside string literals")
	}
	return t, nil
}

// indexOpen finds the next "{{", "{%" or "{#" at or after i.
func indexOpen(s string, i int) int {
	for {
		k := strings.IndexByte(s[i:], '{')
		if k < 0 || i+k+1 >= len(s) {
			return -1
		}
		c := s[i+k+1]
		if c == '{' || c == '%' || c == '#' {
			return i + k
		}
		i += k + 1
	}
}

// lexInner tokenises the inside of a tag starting at pos until closer ("}}"
// or "%}", optionally preceded by "-"). It returns the tokens, the offset of
// the closer (including a "-") and the offset after it.
func (t *translation) lexInner(pos int, closer string) ([]tok, int, int, *Error) {
	src := t.src
	var toks []tok
	i := pos
	for {
		if i >= len(src) {
			return nil, 0, 0, t.errAt(pos-2, "%q not closed", map[string]string{"}}": "{{", "%}": "{%"}[closer])
		}
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '-' && strings.HasPrefix(src[i+1:], closer):
			return toks, i, i + 1 + len(closer), nil
		case strings.HasPrefix(src[i:], closer):
			return toks, i, i + len(closer), nil
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			k := i + 1
			for k < len(src) && (src[k] == '_' || src[k] >= 'a' && src[k] <= 'z' || src[k] >= 'A' && src[k] <= 'Z' || src[k] >= '0' && src[k] <= '9') {
				k++
			}
			toks = append(toks, tok{kind: tkIdent, val: src[i:k], pos: i, end: k})
			i = k
		case c >= '0' && c <= '9':
			k := i + 1
			for k < len(src) && (src[k] >= '0' && src[k] <= '9' || src[k] == '_') {
				k++
			}
			if k+1 < len(src) && src[k] == '.' && src[k+1] >= '0' && src[k+1] <= '9' {
				k++
				for k < len(src) && src[k] >= '0' && src[k] <= '9' {
					k++
				}
			}
			toks = append(toks, tok{kind: tkNumber, val: strings.ReplaceAll(src[i:k], "_", ""), pos: i, end: k})
			i = k
		case c == '\'' || c == '"':
			val, k, err := t.lexString(i)
			if err != nil {
				return nil, 0, 0, err
			}
			toks = append(toks, tok{kind: tkString, val: val, pos: i, end: k})
			i = k
		default:
			sym := ""
			for _, s := range []string{"==", "!=", ">=", "<=", "**", "//", "&&", "||"} {
				if strings.HasPrefix(src[i:], s) {
					sym = s
					break
				}
			}
			if sym == "" {
				r, n := utf8.DecodeRuneInString(src[i:])
				if !strings.ContainsRune("()[]{}.,:|=<>+-*/%~!^", r) {
					return nil, 0, 0, t.errAt(i, "unexpected character %q", r)
				}
				sym = src[i : i+n]
			}
			toks = append(toks, tok{kind: tkSymbol, val: sym, pos: i, end: i + len(sym)})
			i += len(sym)
		}
	}
}

// lexString decodes a Jinja2 string literal at i (Python unicode-escape rules).
func (t *translation) lexString(i int) (string, int, *Error) {
	src := t.src
	q := src[i]
	var b strings.Builder
	k := i + 1
	for {
		if k >= len(src) {
			return "", 0, t.errAt(i, "string not closed")
		}
		c := src[k]
		if c == q {
			return b.String(), k + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			k++
			continue
		}
		if k+1 >= len(src) {
			return "", 0, t.errAt(i, "string not closed")
		}
		e := src[k+1]
		k += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'f':
			b.WriteByte(12)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte(11)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := int(e - '0')
			for m := 0; m < 2 && k < len(src) && src[k] >= '0' && src[k] <= '7'; m++ {
				n = n*8 + int(src[k]-'0')
				k++
			}
			b.WriteRune(rune(n))
		case 'x', 'u', 'U':
			w := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if k+w > len(src) {
				return "", 0, t.errAt(k-2, "truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(src[k:k+w], 16, 32)
			if err != nil || n > utf8.MaxRune {
				return "", 0, t.errAt(k-2, "invalid \\%c escape", e)
			}
			b.WriteRune(rune(n))
			k += w
		case 'N':
			return "", 0, t.errAt(k-2, "\\N{...} escapes are not supported")
		default:
			// Python keeps unknown escapes as they are.
			b.WriteByte('\\')
			k--
		}
	}
}

// lexOpened tokenises the "{{ ... }}" or "{% ... %}" at j (closer "}}" or
// "%}"). It returns the tokens, the pongo2 tag opener they translate under
// ("{%", or "{%-" when the source opens with whitespace control), the offset
// of the closer (including a "-") and the offset after it.
func (t *translation) lexOpened(j int, closer string) ([]tok, string, int, int, *Error) {
	start := j + 2
	open := "{%"
	switch {
	case start < len(t.src) && t.src[start] == '-':
		start++
		open = "{%-"
	case start < len(t.src) && t.src[start] == '+':
		return nil, "", 0, 0, t.errAt(j, "'%s+' is not supported", t.src[j:start])
	}
	toks, closePos, end, err := t.lexInner(start, closer)
	return toks, open, closePos, end, err
}

// expr translates "{{ ... }}" starting at j.
func (t *translation) expr(j int) (int, *Error) {
	toks, open, closePos, end, err := t.lexOpened(j, "}}")
	if err != nil {
		return 0, err
	}
	if len(toks) == 0 {
		return 0, t.errAt(j, "empty expression")
	}
	// {{ x }} becomes {% pex_print x %} so values print as Python would.
	t.emit(open+" pex_print ", j)
	if err := t.exprToks(toks, false); err != nil {
		return 0, err
	}
	closer := " %}"
	if t.src[closePos] == '-' {
		closer = " -%}"
	}
	t.emit(closer, closePos)
	return end, nil
}

// tag translates "{% ... %}" starting at j.
func (t *translation) tag(j int) (int, string, int, *Error) {
	toks, open, closePos, end, err := t.lexOpened(j, "%}")
	if err != nil {
		return 0, "", 0, err
	}
	if len(toks) == 0 || toks[0].kind != tkIdent {
		return 0, "", 0, t.errAt(j, "tag name expected")
	}
	name := toks[0].val
	if why, bad := refusedTags[name]; bad {
		return 0, "", 0, t.errAt(toks[0].pos, "tag %q is not allowed: %s", name, why)
	}
	if name == "raw" || name == "verbatim" {
		return t.raw(j, name, toks, end)
	}
	pname, ok := allowedTags[name]
	if !ok {
		return 0, "", 0, t.errAt(toks[0].pos, "unknown tag %q", name)
	}
	rest := toks[1:]
	switch name {
	case "for":
		t.usesSt = true
		for _, tk := range rest {
			if tk.kind == tkIdent && (tk.val == "recursive" || tk.val == "if") {
				return 0, "", 0, t.errAt(tk.pos, "'for ... %s' is not supported", tk.val)
			}
		}
		t.emit(open+" "+pname+" ", j)
		// emit binding names verbatim, then the iterable as an expression
		k := 0
		for ; k < len(rest); k++ {
			if rest[k].kind == tkIdent && rest[k].val == "in" {
				break
			}
			if rest[k].kind == tkString || rest[k].kind == tkNumber {
				return 0, "", 0, t.errAt(rest[k].pos, "loop variable expected")
			}
			t.emit(rest[k].val+" ", rest[k].pos)
		}
		if k == len(rest) {
			return 0, "", 0, t.errAt(toks[0].pos, "'for' needs 'in'")
		}
		if len(rest[:k]) == 0 {
			return 0, "", 0, t.errAt(toks[0].pos, "loop variable expected")
		}
		t.emit("in ", rest[k].pos)
		if err := t.exprToks(rest[k+1:], false); err != nil {
			return 0, "", 0, err
		}
	case "set":
		t.usesSt = true
		t.emit(open+" "+pname+" ", j)
		if len(rest) < 2 || rest[0].kind != tkIdent || rest[1].val != "=" {
			return 0, "", 0, t.errAt(toks[0].pos, "expected 'set name = expression' (block set and unpacking are not supported)")
		}
		t.emit(rest[0].val+" = ", rest[0].pos)
		if err := t.exprToks(rest[2:], false); err != nil {
			return 0, "", 0, err
		}
	default:
		t.emit(open+" "+pname+" ", j)
		if err := t.exprToks(rest, false); err != nil {
			return 0, "", 0, err
		}
	}
	t.emit(" "+t.src[closePos:end], closePos)
	return end, name, toks[0].pos, nil
}

// raw handles {% raw %}...{% endraw %} (and pongo2's verbatim).
func (t *translation) raw(j int, name string, toks []tok, end int) (int, string, int, *Error) {
	if len(toks) != 1 || t.src[j+2] == '-' || t.src[end-3] == '-' {
		return 0, "", 0, t.errAt(j, "%q takes no arguments or whitespace control", name)
	}
	endName := "end" + name
	k := end
	for {
		m := strings.Index(t.src[k:], "{%")
		if m < 0 {
			return 0, "", 0, t.errAt(j, "%q not closed", name)
		}
		k += m
		inner, _, e, err := t.lexInner(k+2, "%}")
		if err == nil && len(inner) == 1 && inner[0].val == endName && t.src[k+2] != '-' {
			body := t.src[end:k]
			if strings.Contains(body, "{% endverbatim") {
				return 0, "", 0, t.errAt(end, "raw text may not contain '{%% endverbatim'")
			}
			t.emit("{% verbatim %}", j)
			t.emitVerbatim(end, k)
			t.emit("{% endverbatim %}", k)
			return e, name, toks[0].pos, nil
		}
		k += 2
	}
}

// exprToks translates an expression token list.
func (t *translation) exprToks(toks []tok, _ bool) *Error {
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		prev := ""
		if i > 0 && toks[i-1].kind == tkSymbol {
			prev = toks[i-1].val
		}
		switch tk.kind {
		case tkString:
			t.emitString(tk)
		case tkNumber:
			t.emit(tk.val, tk.pos)
		case tkSymbol:
			switch tk.val {
			case "~":
				return t.errAt(tk.pos, "operator '~' is not supported; write the parts side by side")
			case "**", "//":
				return t.errAt(tk.pos, "operator %q is not supported", tk.val)
			case "{", "}":
				return t.errAt(tk.pos, "dict literals are not supported")
			case "(", "[":
				t.depth++
				if t.depth > maxDepth {
					return t.errAt(tk.pos, "expression nested deeper than %d", maxDepth)
				}
			case ")", "]":
				t.depth--
			case "|":
				n, err := t.filter(toks, i)
				if err != nil {
					return err
				}
				i = n
				continue
			}
			t.emit(tk.val, tk.pos)
		case tkIdent:
			switch tk.val {
			case "True", "true":
				t.emit("true", tk.pos)
				continue
			case "False", "false":
				t.emit("false", tk.pos)
				continue
			case "None", "none":
				t.emit("__pex_none", tk.pos)
				continue
			case "is":
				return t.errAt(tk.pos, "tests ('is ...') are not supported")
			case "and", "or", "not", "in", "as", "export":
				t.emit(" "+tk.val+" ", tk.pos)
				continue
			}
			if strings.HasPrefix(tk.val, "__pex") {
				return t.errAt(tk.pos, "names starting with __pex are reserved")
			}
			if prev != "." {
				t.names[tk.val] = true
				if tk.val == "range" {
					t.usesSt = true
				}
			}
			t.emit(tk.val, tk.pos)
		}
		if i+1 < len(toks) && toks[i+1].pos > tk.end {
			t.emit(" ", tk.end)
		}
	}
	return nil
}

// emitString writes a decoded string literal in a form pongo2 reads back
// exactly.
func (t *translation) emitString(tk tok) {
	if !pongoSafe(tk.val) {
		name := "__pex_c" + strconv.Itoa(len(t.consts))
		t.consts = append(t.consts, tk.val)
		t.emit(name, tk.pos)
		return
	}
	s := strings.ReplaceAll(tk.val, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	t.emit(`"`+s+`"`, tk.pos)
}

// pongoSafe reports whether pongo2's lexer reads s back from a double-quoted
// literal with only \" and \\ escaped.
func pongoSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// filter translates "| name [ (args) | :arg ]" at toks[i] ("|") and returns the
// index of the last consumed token.
func (t *translation) filter(toks []tok, i int) (int, *Error) {
	if i+1 >= len(toks) || toks[i+1].kind != tkIdent {
		return 0, t.errAt(toks[i].pos, "filter name expected after '|'")
	}
	nt := toks[i+1]
	name := nt.val
	pname := name
	switch {
	case jinjaFilters[name] != "":
		pname = jinjaFilters[name]
	case strings.HasPrefix(name, "pex_"):
		if !pongo2.FilterExists(name) || pexFilters[name] == nil {
			return 0, t.errAt(nt.pos, "unknown filter %q", name)
		}
	case strings.HasPrefix(name, "pexj_"):
		return 0, t.errAt(nt.pos, "unknown filter %q", name)
	default:
		if why, bad := bannedPongoFilters[name]; bad {
			return 0, t.errAt(nt.pos, "filter %q is not allowed: %s", name, why)
		}
		if !pongo2.FilterExists(name) {
			return 0, t.errAt(nt.pos, "unknown filter %q", name)
		}
	}
	t.emit("|", toks[i].pos)
	t.emit(pname, nt.pos)
	k := i + 1
	if k+1 < len(toks) && toks[k+1].kind == tkSymbol && toks[k+1].val == "(" && toks[k+1].pos == nt.end {
		// find the matching ")"
		depth, m := 0, k+1
		for ; m < len(toks); m++ {
			if toks[m].kind != tkSymbol {
				continue
			}
			switch toks[m].val {
			case "(", "[":
				depth++
			case ")", "]":
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if m == len(toks) {
			return 0, t.errAt(toks[k+1].pos, "unclosed '('")
		}
		t.usesArgs = true
		t.emit(":__pexargs(", toks[k+1].pos)
		t.depth++
		if t.depth > maxDepth {
			return 0, t.errAt(toks[k+1].pos, "expression nested deeper than %d", maxDepth)
		}
		args := toks[k+2 : m]
		// a literal regular expression is checked now, not at render time
		if (name == "pex_regex_replace" || name == "pex_regex_search") && len(args) > 0 && args[0].kind == tkString &&
			(len(args) == 1 || args[1].kind == tkSymbol && args[1].val == ",") {
			if _, err := compilePyRegex(args[0].val); err != nil {
				return 0, t.errAt(args[0].pos, "%s: %v", name, err)
			}
		}
		// split at top-level commas
		first := true
		for len(args) > 0 {
			d, c := 0, 0
			for ; c < len(args); c++ {
				if args[c].kind == tkSymbol {
					switch args[c].val {
					case "(", "[":
						d++
					case ")", "]":
						d--
					case ",":
						if d == 0 {
							goto split
						}
					}
				}
			}
		split:
			arg := args[:c]
			if len(arg) == 0 {
				return 0, t.errAt(args[0].pos, "argument expected")
			}
			if !first {
				t.emit(", ", arg[0].pos)
			}
			first = false
			if len(arg) >= 2 && arg[0].kind == tkIdent && arg[1].kind == tkSymbol && arg[1].val == "=" {
				if len(arg) == 2 {
					return 0, t.errAt(arg[1].pos, "value expected after '='")
				}
				t.emit(`__pexkw("`+arg[0].val+`", `, arg[0].pos)
				if err := t.exprToks(arg[2:], false); err != nil {
					return 0, err
				}
				t.emit(")", arg[len(arg)-1].end)
			} else if err := t.exprToks(arg, false); err != nil {
				return 0, err
			}
			if c < len(args) {
				args = args[c+1:]
				if len(args) == 0 {
					// trailing comma, as Python allows
					break
				}
			} else {
				args = nil
			}
		}
		t.depth--
		t.emit(")", toks[m].pos)
		return m, nil
	}
	if statefulFilters[name] {
		t.usesArgs = true
		t.emit(":__pexargs()", nt.end)
	}
	return k, nil
}
