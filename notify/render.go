package notify

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Renderer compiles email subject and body templates. The pattern language's environment
// (schema/pattern) is adapted to it in pattern.go; tests may use any implementation.
type Renderer interface {
	Compile(name, src string) (Template, error)
}

// Template is a compiled subject or body.
type Template interface {
	Render(vars map[string]any) (string, error)
}

// compiled is an email template compiled once, shared by every message that uses it.
type compiled struct {
	subject, body Template
	// text is the text/plain alternative of an HTML body derived once from the template
	// (HTMLToText of the template, then rendered); nil when that is not safe, and the text
	// is then derived from each rendered body.
	text Template
	err  error
}

// templateCache compiles each email template (keyed by its email_templates hash) once.
type templateCache struct {
	r  Renderer
	mu sync.Mutex
	m  map[string]*compiled
}

func (c *templateCache) get(hash, subject, body, bodyPath string, html bool) (*compiled, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[hash]; ok {
		return t, t.err
	}
	if c.m == nil {
		c.m = make(map[string]*compiled)
	}
	t := &compiled{}
	name := bodyPath
	if name == "" {
		name = "email body"
	}
	if c.r == nil {
		t.err = fmt.Errorf("no template renderer configured")
	} else if t.subject, t.err = c.r.Compile("email subject", subject); t.err != nil {
		t.err = fmt.Errorf("compile subject: %w", t.err)
	} else if t.body, t.err = c.r.Compile(name, body); t.err != nil {
		t.err = fmt.Errorf("compile %s: %w", name, t.err)
	}
	if t.err == nil && html {
		if src, ok := textTemplate(body); ok {
			t.text, _ = c.r.Compile(name+" (text part)", src)
		}
	}
	c.m[hash] = t
	return t, t.err
}

var patternTag = regexp.MustCompile(`\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}`)

// textTemplate derives the text part's template from an HTML body template, so that the
// HTML is converted to text once per template rather than once per message. It refuses
// (ok false) when the conversion could have altered a template tag — every tag must come
// out exactly as it went in — or when a tag sits inside markup.
func textTemplate(body string) (string, bool) {
	if strings.Contains(body, "{#") {
		return "", false
	}
	src := HTMLToText(body)
	tags := func(s string) []string {
		var out []string
		for _, t := range patternTag.FindAllString(s, -1) {
			out = append(out, t)
		}
		sort.Strings(out)
		return out
	}
	in, out := tags(body), tags(src)
	if len(in) != len(out) {
		return "", false
	}
	for i := range in {
		if in[i] != out[i] {
			return "", false
		}
	}
	// A tag inside a tag's markup (other than a link's address) would be dropped or moved.
	for _, m := range regexp.MustCompile(`<[^>]*\{[{%][^>]*>`).FindAllString(body, -1) {
		if !strings.HasPrefix(strings.ToLower(m), "<a ") {
			return "", false
		}
	}
	return src, true
}
