package schema

import (
	"embed"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	cueyaml "cuelang.org/go/encoding/yaml"
)

//go:embed cue/*.cue
var cueFS embed.FS

// schemaSet is the embedded CUE schema compiled in one cue.Context. A cue.Context is not
// safe for concurrent use, so every Load/LoadConfig builds its own.
type schemaSet struct {
	ctx    *cue.Context
	schema cue.Value
}

func newSchemaSet(file string) (*schemaSet, error) {
	src, err := cueFS.ReadFile("cue/" + file)
	if err != nil {
		return nil, fmt.Errorf("read embedded schema: %w", err)
	}
	ctx := cuecontext.New()
	v := ctx.CompileBytes(src, cue.Filename("schema/cue/"+file))
	if v.Err() != nil {
		return nil, fmt.Errorf("compile embedded schema %s: %w", file, v.Err())
	}
	return &schemaSet{ctx: ctx, schema: v}, nil
}

func (s *schemaSet) def(name string) cue.Value {
	return s.schema.LookupPath(cue.ParsePath(name))
}

// parseData turns a YAML or CUE file into a CUE value carrying the file's positions.
// display is the path used in positions and errors.
func (s *schemaSet) parseData(display string, data []byte) (cue.Value, ErrorList) {
	var v cue.Value
	if strings.HasSuffix(display, ".cue") {
		v = s.ctx.CompileBytes(data, cue.Filename(display))
	} else {
		f, err := cueyaml.Extract(display, data)
		if err != nil {
			return cue.Value{}, syntaxErrors(display, err)
		}
		v = s.ctx.BuildFile(f)
	}
	if err := v.Err(); err != nil {
		return cue.Value{}, syntaxErrors(display, err)
	}
	return v, nil
}

// syntaxErrors converts a parse error (CUE or YAML) into positioned errors.
var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?(?:line (\d+): )?`)

func syntaxErrors(display string, err error) ErrorList {
	var out ErrorList
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if msg == "" {
			msg = e.Error()
		}
		p := e.Position()
		line, col := 0, 0
		if p.IsValid() {
			line, col = p.Line(), p.Column()
		}
		// yaml.v3 messages read "file:3: did not find ..." or "yaml: line 3: ...".
		msg = strings.TrimPrefix(msg, display+":")
		if m := regexp.MustCompile(`^(\d+): `).FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		}
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil && m[1] != "" {
			line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		}
		out = append(out, &Error{Path: display, Line: line, Col: col, Msg: "syntax error: " + strings.TrimSpace(msg)})
	}
	if len(out) == 0 {
		out = append(out, &Error{Path: display, Msg: "syntax error: " + err.Error()})
	}
	return out
}

// check unifies data with the definition def, validates it, and converts CUE's errors into
// positioned errors in display (falling back to data's own positions).
func (s *schemaSet) check(def string, display string, data cue.Value) (cue.Value, ErrorList) {
	v := s.def(def).Unify(data)
	err := v.Validate(cue.Concrete(true), cue.All())
	if err == nil {
		return v, nil
	}
	return v, convertErrors(err, display, data)
}

var (
	maxRunesRE = regexp.MustCompile(`^invalid value .* \(does not satisfy strings\.MaxRunes\((\d+)\)\)$`)
	minRunesRE = regexp.MustCompile(`^invalid value .* \(does not satisfy strings\.MinRunes\((\d+)\)\)$`)
	conflictRE = regexp.MustCompile(`^conflicting values (.+?) and (.+?)(?: \(mismatched types [^()]*\))?$`)
	disjRE     = regexp.MustCompile(`^\d+ errors in empty disjunction:?$`)
)

type cueErr struct {
	path  string
	sel   []string
	msg   string
	pos   token.Pos
	order token.Pos // schema position, to keep an enum's values in written order
}

// convertErrors turns CUE evaluation errors into messages a user can act on:
// "field.path: message" at the position in the user's file.
func convertErrors(err error, display string, data cue.Value) ErrorList {
	groups := map[string][]cueErr{}
	var order []string
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		ce := cueErr{msg: fmt.Sprintf(format, args...)}
		sel := e.Path()
		if len(sel) > 0 && strings.HasPrefix(sel[0], "#") {
			sel = sel[1:]
		}
		ce.sel = sel
		ce.path = joinPath(sel)
		for _, p := range cueerrors.Positions(e) {
			if p.Filename() == display && !ce.pos.IsValid() {
				ce.pos = p
			} else if p.Filename() != display && !ce.order.IsValid() {
				ce.order = p
			}
		}
		if _, ok := groups[ce.path]; !ok {
			order = append(order, ce.path)
		}
		groups[ce.path] = append(groups[ce.path], ce)
	}
	var out ErrorList
	for _, path := range order {
		g := groups[path]
		disj := false
		var rest []cueErr
		for _, ce := range g {
			if disjRE.MatchString(ce.msg) {
				disj = true
				continue
			}
			rest = append(rest, ce)
		}
		if disj && len(rest) > 0 {
			rest = []cueErr{mergeDisjunction(rest)}
		}
		for _, ce := range rest {
			out = append(out, finishError(ce, display, data))
		}
	}
	return out
}

// mergeDisjunction makes one message out of the failed branches of a disjunction
// (an enum, or a type with a default).
func mergeDisjunction(errs []cueErr) cueErr {
	// A branch that failed for a reason other than "not this literal" says the most.
	for _, ce := range errs {
		if !conflictRE.MatchString(ce.msg) {
			return ce
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].order, errs[j].order
		if a.Line() != b.Line() {
			return a.Line() < b.Line()
		}
		return a.Column() < b.Column()
	})
	// The user's value occurs in every branch; each schema literal in one.
	cnt := map[string]int{}
	for _, e := range errs {
		m := conflictRE.FindStringSubmatch(e.msg)
		cnt[m[1]]++
		if m[2] != m[1] {
			cnt[m[2]]++
		}
	}
	got := conflictRE.FindStringSubmatch(errs[0].msg)[2]
	for x, n := range cnt {
		if n == len(errs) && len(errs) > 1 {
			got = x
		}
	}
	var lits []string
	typ := ""
	for _, e := range errs {
		m := conflictRE.FindStringSubmatch(e.msg)
		for _, x := range m[1:3] {
			if x == got || containsStr(lits, x) {
				continue
			}
			lits = append(lits, x)
			if typ == "" && isTypeWord(x) {
				typ = x
			}
		}
	}
	ce := errs[0]
	if typ != "" {
		ce.msg = fmt.Sprintf("%s is not of type %s", got, typ)
	} else {
		ce.msg = fmt.Sprintf("%s is not one of %s", got, strings.Join(lits, ", "))
	}
	return ce
}

func isTypeWord(s string) bool {
	switch s {
	case "string", "int", "number", "bool", "float", "bytes", "null", "list", "struct", "[...string]":
		return true
	}
	return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func finishError(ce cueErr, display string, data cue.Value) *Error {
	msg := ce.msg
	switch {
	case strings.HasPrefix(msg, "incomplete value"):
		msg = "field is required"
	case msg == "field not allowed":
		msg = "unknown field"
		if n := len(ce.sel); n > 0 {
			msg = fmt.Sprintf("unknown field %q", strings.Trim(ce.sel[n-1], `"`))
		}
	case strings.Contains(msg, "(mismatched types") && conflictRE.MatchString(msg):
		m := conflictRE.FindStringSubmatch(msg)
		val, typ := m[2], m[1]
		if !isTypeWord(typ) {
			val, typ = typ, val
		}
		msg = fmt.Sprintf("%s is not of type %s", val, typ)
	case maxRunesRE.MatchString(msg):
		msg = fmt.Sprintf("too long: at most %s characters", maxRunesRE.FindStringSubmatch(msg)[1])
	case minRunesRE.MatchString(msg):
		n := minRunesRE.FindStringSubmatch(msg)[1]
		if n == "1" {
			msg = "must not be empty"
		} else {
			msg = fmt.Sprintf("too short: at least %s characters", n)
		}
	}
	if ce.path != "" {
		msg = ce.path + ": " + msg
	}
	e := &Error{Path: display, Msg: msg}
	p := ce.pos
	if !p.IsValid() {
		// Find the nearest value that exists in the user's file.
		for n := len(ce.sel); n >= 0; n-- {
			v := data.LookupPath(cue.ParsePath(joinPath(ce.sel[:n])))
			if v.Exists() {
				p = valuePos(v)
				if p.IsValid() && p.Filename() == display {
					break
				}
				p = token.NoPos
			}
		}
	}
	if p.IsValid() {
		e.Line, e.Col = p.Line(), p.Column()
	} else {
		e.Line = 1
	}
	return e
}

// joinPath writes a CUE selector path as a.b[0].c.
func joinPath(sel []string) string {
	var b strings.Builder
	for _, s := range sel {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// valuePos is where a value (not its label) starts in its file.
func valuePos(v cue.Value) token.Pos {
	switch n := v.Source().(type) {
	case *ast.Field:
		return n.Value.Pos()
	case nil:
		return v.Pos()
	default:
		return n.Pos()
	}
}

// keyPos is where a field's label starts (or the value, for list elements).
func keyPos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok {
		return f.Pos()
	}
	return valuePos(v)
}

func toPos(p token.Pos, display string) Pos {
	if !p.IsValid() {
		return Pos{Path: display, Line: 1}
	}
	return Pos{Path: display, Line: p.Line(), Col: p.Column()}
}
