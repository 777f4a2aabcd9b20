package pattern

import (
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/flosch/pongo2/v6"
)

// Render-time bounds that no template can exceed.
const (
	maxIterations = 100_000         // loop iterations per render, all loops together
	maxRenderTime = 2 * time.Second // checked at every loop iteration
	maxRange      = 10_000          // elements range() may produce
)

// renderState is the per-Render state, reachable from the pongo2 context.
type renderState struct {
	key   []byte
	seed  Seed
	calls int
	iters int
	start time.Time
}

const stateKey = "__pexst"

func stateOf(ctx *pongo2.ExecutionContext) *renderState {
	if ctx == nil {
		return nil
	}
	st, _ := ctx.Public[stateKey].(*renderState)
	return st
}

// nextField names the n-th generated value of one render: the first is the
// seed's field itself, later ones get a counter, so two pex_random_pin calls
// in a pattern differ but are each stable.
func (st *renderState) nextField() string {
	n := st.calls
	st.calls++
	if n == 0 {
		return st.seed.Field
	}
	return st.seed.Field + "\x00#" + strconv.Itoa(n)
}

func (st *renderState) tick() error {
	st.iters++
	if st.iters > maxIterations {
		return fmt.Errorf("more than %d loop iterations", maxIterations)
	}
	if st.iters%256 == 0 && time.Since(st.start) > maxRenderTime {
		return fmt.Errorf("rendering took longer than %s", maxRenderTime)
	}
	return nil
}

// rangeFn implements Jinja's range(stop) / range(start, stop[, step]).
func rangeFn(args ...*pongo2.Value) (*pongo2.Value, error) {
	var start, stop, step = 0, 0, 1
	switch len(args) {
	case 1:
		stop = args[0].Integer()
	case 2, 3:
		start, stop = args[0].Integer(), args[1].Integer()
		if len(args) == 3 {
			step = args[2].Integer()
		}
	default:
		return nil, fmt.Errorf("range expects 1 to 3 arguments, got %d", len(args))
	}
	if step == 0 {
		return nil, fmt.Errorf("range step must not be zero")
	}
	var out []int
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(out) >= maxRange {
			return nil, fmt.Errorf("range longer than %d", maxRange)
		}
		out = append(out, i)
	}
	return pongo2.AsValue(out), nil
}

// forLoop is what pongo2-style templates see as forloop.
type forLoop struct {
	Counter, Counter0, Revcounter, Revcounter0 int
	First, Last                                bool
	Parentloop                                 *forLoop
}

type forNode struct {
	tok        *pongo2.Token
	key, value string
	expr       pongo2.IEvaluator
	body       *pongo2.NodeWrapper
	empty      *pongo2.NodeWrapper
}

func (n *forNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	st := stateOf(ctx)
	obj, perr := n.expr.Evaluate(ctx)
	if perr != nil {
		return perr
	}
	its, err := items(obj)
	if err != nil {
		return ctx.Error(err.Error(), n.tok)
	}
	if len(its) == 0 {
		if n.empty != nil {
			return n.empty.Execute(ctx, w)
		}
		return nil
	}
	child := pongo2.NewChildExecutionContext(ctx)
	depth := 1
	if p, ok := ctx.Private["loop"].(map[string]any); ok {
		if d, ok := p["depth"].(int); ok {
			depth = d + 1
		}
	}
	fl := &forLoop{}
	if p, ok := ctx.Private["forloop"].(*forLoop); ok {
		fl.Parentloop = p
	}
	loop := map[string]any{"length": len(its), "depth": depth, "depth0": depth - 1}
	loop["cycle"] = func(args ...*pongo2.Value) *pongo2.Value {
		if len(args) == 0 {
			return pongo2.AsValue(nil)
		}
		return args[(loop["index0"].(int))%len(args)]
	}
	child.Private["loop"] = loop
	child.Private["forloop"] = fl
	for i, it := range its {
		if st != nil {
			if err := st.tick(); err != nil {
				return ctx.Error(err.Error(), n.tok)
			}
		}
		k, v := it, any(nil)
		if n.value != "" {
			k, v, err = unpackPair(obj, it)
			if err != nil {
				return ctx.Error(err.Error(), n.tok)
			}
			child.Private[n.value] = pyValue(v)
		}
		child.Private[n.key] = pyValue(k)
		loop["index"], loop["index0"] = i+1, i
		loop["revindex"], loop["revindex0"] = len(its)-i, len(its)-i-1
		loop["first"], loop["last"] = i == 0, i == len(its)-1
		fl.Counter, fl.Counter0, fl.Revcounter, fl.Revcounter0 = i+1, i, len(its)-i, len(its)-i-1
		fl.First, fl.Last = i == 0, i == len(its)-1
		if perr := n.body.Execute(child, w); perr != nil {
			return perr
		}
	}
	return nil
}

// unpackPair gives the two loop variables of "for k, v in x": key and value
// of a mapping, or the two elements of a pair.
func unpackPair(obj *pongo2.Value, it any) (any, any, error) {
	rv := reflect.ValueOf(obj.Interface())
	if rv.Kind() == reflect.Map {
		return it, rv.MapIndex(reflect.ValueOf(it)).Interface(), nil
	}
	ev := reflect.ValueOf(it)
	if (ev.Kind() == reflect.Slice || ev.Kind() == reflect.Array) && ev.Len() == 2 {
		return ev.Index(0).Interface(), ev.Index(1).Interface(), nil
	}
	return nil, nil, fmt.Errorf("cannot unpack %v into two loop variables", it)
}

// tagName reads the identifier a tag expects next (a loop variable, a name
// to set); msg is the error when there is none.
func tagName(args *pongo2.Parser, msg string) (string, *pongo2.Error) {
	t := args.MatchType(pongo2.TokenIdentifier)
	if t == nil {
		return "", args.Error(msg, nil)
	}
	return t.Val, nil
}

// lastExpr parses the rest of a tag's arguments as one expression; what
// names it in the error about text after it.
func lastExpr(args *pongo2.Parser, what string) (pongo2.IEvaluator, *pongo2.Error) {
	e, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	if args.Remaining() > 0 {
		return nil, args.Error("unexpected text after the "+what, nil)
	}
	return e, nil
}

// wrapUntil reads a block's body up to one of the end tags, which take no
// arguments.
func wrapUntil(doc *pongo2.Parser, tags ...string) (*pongo2.NodeWrapper, *pongo2.Error) {
	body, end, err := doc.WrapUntilTag(tags...)
	if err != nil {
		return nil, err
	}
	if end.Count() > 0 {
		return nil, end.Error("arguments not allowed here", nil)
	}
	return body, nil
}

func forParser(doc *pongo2.Parser, start *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	n := &forNode{tok: start}
	var err *pongo2.Error
	if n.key, err = tagName(args, "loop variable expected"); err != nil {
		return nil, err
	}
	if args.Match(pongo2.TokenSymbol, ",") != nil {
		if n.value, err = tagName(args, "second loop variable expected"); err != nil {
			return nil, err
		}
	}
	if args.Match(pongo2.TokenKeyword, "in") == nil {
		return nil, args.Error("expected 'in'", nil)
	}
	if n.expr, err = lastExpr(args, "loop expression"); err != nil {
		return nil, err
	}
	if n.body, err = wrapUntil(doc, "else", "empty", "endfor"); err != nil {
		return nil, err
	}
	if n.body.Endtag != "endfor" {
		if n.empty, err = wrapUntil(doc, "endfor"); err != nil {
			return nil, err
		}
	}
	return n, nil
}

type setNode struct {
	tok  *pongo2.Token
	name string
	expr pongo2.IEvaluator
}

func (n *setNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, err := n.expr.Evaluate(ctx)
	if err != nil {
		return err
	}
	if v.IsString() && v.Len() > maxValueBytes {
		return ctx.Error(fmt.Sprintf("set %s: value longer than %d bytes", n.name, maxValueBytes), n.tok)
	}
	ctx.Private[n.name] = v
	return nil
}

func setParser(doc *pongo2.Parser, start *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	n := &setNode{tok: start}
	var err *pongo2.Error
	if n.name, err = tagName(args, "name expected"); err != nil {
		return nil, err
	}
	if args.Match(pongo2.TokenSymbol, "=") == nil {
		return nil, args.Error("expected '='", nil)
	}
	if n.expr, err = lastExpr(args, "expression"); err != nil {
		return nil, err
	}
	return n, nil
}

// printNode writes an expression's value as Python's str() would (floats
// as 2.5, not 2.500000; nil as nothing).
type printNode struct{ expr pongo2.IEvaluator }

func (n *printNode) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	v, err := n.expr.Evaluate(ctx)
	if err != nil {
		return err
	}
	w.WriteString(outStr(v))
	return nil
}

func printParser(doc *pongo2.Parser, start *pongo2.Token, args *pongo2.Parser) (pongo2.INodeTag, *pongo2.Error) {
	e, err := lastExpr(args, "expression")
	if err != nil {
		return nil, err
	}
	return &printNode{expr: e}, nil
}

func init() {
	if err := pongo2.RegisterTag("pex_print", printParser); err != nil {
		panic(err)
	}
	// Tag names are global in pongo2 too; only new pex_ names are added.
	if err := pongo2.RegisterTag("pex_for", forParser); err != nil {
		panic(err)
	}
	if err := pongo2.RegisterTag("pex_set", setParser); err != nil {
		panic(err)
	}
}
