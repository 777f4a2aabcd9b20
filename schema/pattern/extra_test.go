package pattern

import "testing"

func TestWhitespaceAndMisc(t *testing.T) {
	e := testEnv()
	v := FromAttrs(testAttrs)
	cases := []struct{ src, want string }{
		{"a  {{- sn -}}  b", "aParkesb"},
		{"a\n{%- if sn -%}\n x \n{%- endif -%}\nb", "axb"},
		{"{% if mail_list|length > 1 %}many{% endif %}", "many"},
		{"{% if 'Park' in sn %}yes{% endif %}", "yes"},
		{"{{ mail_list[1] }}", "ap@example.org"},
		{"{{ mail_list.0 }}", "alice.parkes@example.com"},
		{"{% for a in mail_list %}{{ loop.cycle('odd', 'even') }}{% endfor %}", "oddeven"},
	}
	for _, c := range cases {
		got, err := render(t, e, c.src, v)
		if err != nil || got != c.want {
			t.Errorf("%q = %q, %v; want %q", c.src, got, err, c.want)
		}
	}
	if _, err := render(t, e, "{{ 7 % 0 }}", v); err == nil {
		t.Error("modulo by zero must fail cleanly")
	}
}
