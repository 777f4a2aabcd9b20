package notify

import (
	"fmt"
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
	err           error
}

// templateCache compiles each email template (keyed by its email_templates hash) once.
type templateCache struct {
	r  Renderer
	mu sync.Mutex
	m  map[string]*compiled
}

func (c *templateCache) get(hash, subject, body, bodyPath string) (*compiled, error) {
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
	c.m[hash] = t
	return t, t.err
}
