package notify

import (
	"github.com/roster-dev/roster/schema/pattern"
)

// PatternRenderer renders email templates with roster's pattern language, the environment
// sync-template patterns use (Jinja2 and pongo2 syntax, pex_* filters, sandboxed). As in
// Pexip Infinity (Jinja's default environment), values are not HTML-escaped in HTML bodies.
type PatternRenderer struct{ Env *pattern.Env }

// NewPatternRenderer returns a renderer with its own environment; output is bounded by MaxBody.
func NewPatternRenderer(secretKey []byte) PatternRenderer {
	return PatternRenderer{Env: pattern.NewEnv(pattern.Options{SecretKey: secretKey, MaxOutput: MaxBody + 1})}
}

// Compile compiles src; errors are *pattern.Error with a position in src.
func (p PatternRenderer) Compile(name, src string) (Template, error) {
	t, err := p.Env.Compile(name, src)
	if err != nil {
		return nil, err
	}
	return patternTemplate{t}, nil
}

type patternTemplate struct{ t *pattern.Template }

func (t patternTemplate) Render(vars map[string]any) (string, error) {
	return t.t.Render(pattern.Vars(vars), pattern.Seed{})
}
