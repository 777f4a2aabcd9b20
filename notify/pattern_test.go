package notify

import (
	"strings"
	"testing"
	"time"
)

// The real pattern language renders Pexip's documented email templates.
func TestComposeWithPatternLanguage(t *testing.T) {
	e := vmrEmail(5)
	e.Subject = "{% if action == 'created' %}New{% else %}Updated{% endif %} meeting room: {{ name|upper }}"
	e.Body = `<p>Dear owner,</p><p>Room <b>{{ name }}</b>{% if allow_guests %} (guests welcome, PIN {{ guest_pin|default('none') }}){% endif %}.</p>` +
		`<p>Call rate {{ max_callrate_in }} kbps. Aliases: {{ aliases }}</p>`
	e.Vars["allow_guests"] = true
	row := rowOf(t, e)
	m, err := NewComposer(NewPatternRenderer([]byte("k"))).Compose(&row, "roster@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, m.Data)
	if p.Subject != "New meeting room: ZOË ÅNGSTRÖM 5 VMR" {
		t.Errorf("subject = %q", p.Subject)
	}
	text := strings.ReplaceAll(p.Text, "\r\n", "\n")
	want := "Dear owner,\n\nRoom Zoë Ångström 5 VMR (guests welcome, PIN none).\n\nCall rate 4128 kbps. Aliases: meet.zoe5@example.com, 44005\n"
	if text != want {
		t.Errorf("text = %q, want %q", text, want)
	}
}

func TestPatternCompileErrorFailsEmail(t *testing.T) {
	e := deviceEmail(1)
	e.Body = "{% include 'x' %}"
	row := rowOf(t, e)
	_, err := NewComposer(NewPatternRenderer(nil)).Compose(&row, "roster@example.org", time.Now())
	if !IsComposeError(err) || !strings.Contains(err.Error(), "compile") {
		t.Errorf("err = %v", err)
	}
}

// Every default template compiles and renders with the variables it documents.
func TestDefaultTemplatesRender(t *testing.T) {
	r := NewPatternRenderer([]byte("k"))
	for _, d := range Defaults() {
		for part, src := range map[string]string{"subject": d.Subject, "body": d.Body} {
			tpl, err := r.Compile(d.Kind+" "+part, src)
			if err != nil {
				t.Errorf("%s %s: %v", d.Kind, part, err)
				continue
			}
			out, err := tpl.Render(d.Example)
			if err != nil {
				t.Errorf("%s %s: %v", d.Kind, part, err)
				continue
			}
			if part == "subject" {
				if _, err := checkSubject(out); err != nil {
					t.Errorf("%s subject: %v", d.Kind, err)
				}
			}
			for _, v := range d.Vars {
				if d.Kind != "vmr" && d.Kind != "device" && part == "body" && !strings.Contains(d.Subject+d.Body, v) {
					t.Errorf("%s: documented variable %s is not used", d.Kind, v)
				}
			}
			if strings.Contains(out, "{{") || strings.Contains(out, "{%") {
				t.Errorf("%s %s left a tag: %q", d.Kind, part, out)
			}
			t.Logf("%s %s:\n%s", d.Kind, part, out)
		}
	}
}
