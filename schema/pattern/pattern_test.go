package pattern

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var testAttrs = map[string][]string{
	"givenName":       {"Alice"},
	"sn":              {"Parkes"},
	"cn":              {"Alice Parkes"},
	"mail":            {"alice.parkes@example.com", "ap@example.org"},
	"telephoneNumber": {"+44 (20) 7946-0958"},
	"uid":             {"aparkes"},
	"longName":        {"Bartholomew Featherstonehaugh"},
	"nonAscii":        {"Ørjan Ünal-Ñúñez"},
	"spaced":          {"  padded  "},
	"html":            {"<b>Hi</b>  <i>there</i> &amp; you"},
	"num":             {"42"},
	"negnum":          {"-7"},
	"flt":             {"2.5"},
	"guid":            {string([]byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff})},
	"guidb64":         {base64.StdEncoding.EncodeToString([]byte{0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff})},
	"urlish":          {"a b&c/d?é"},
	"empty":           {},
	"title":           {"hELLO wORLD"},
}

func testEnv() *Env { return NewEnv(Options{SecretKey: []byte("test-key")}) }

func render(t *testing.T, e *Env, src string, v Vars) (string, error) {
	t.Helper()
	tpl, err := e.Compile("test", src)
	if err != nil {
		return "", err
	}
	return tpl.Render(v, Seed{Template: "staff", EntryKey: "uid=alice", Field: "pin"})
}

// patternCases are rendered with FromAttrs(testAttrs) and allow_guests=true.
var patternCases = []struct{ src, want string }{
	// literals and variables
	{"staff", "staff"},
	{"{{givenName}} {{sn}} VMR", "Alice Parkes VMR"},
	{"{{ mail }}", "alice.parkes@example.com"},
	{"{{ missing }}", ""},
	{"[{{ empty }}]", "[]"},
	{"{{ mail_list }}", "['alice.parkes@example.com', 'ap@example.org']"},
	{"{{ mail_list|length }}", "2"},
	{"{{ nonAscii }}", "Ørjan Ünal-Ñúñez"},
	{"meet.{{givenName|lower}}.{{sn|lower}}@example.com", "meet.alice.parkes@example.com"},
	// Jinja filters
	{"{{sn|truncate(5)|upper}}", "PARKES"}, // 6 <= 5+leeway
	{"{{ longName|truncate(10) }}", "Barthol..."},
	{"{{ longName|truncate(15) }}", "Bartholomew..."},
	{"{{ longName|truncate(10, true) }}", "Barthol..."},
	{"{{ longName|truncate(10, killwords=True, end='') }}", "Bartholome"},
	{"{{ longName|truncate(12, leeway=0) }}", "Bartholom..."},
	{"{{ nonAscii|truncate(6, True, '…', 0) }}", "Ørjan…"},
	{"{{ title|capitalize }}", "Hello world"},
	{"{{ nonAscii|upper }}", "ØRJAN ÜNAL-ÑÚÑEZ"},
	{"{{ nonAscii|lower }}", "ørjan ünal-ñúñez"},
	{"{{ missing|default('n/a') }}", "n/a"},
	{"{{ missing|default(\"n/a\") }}", "n/a"},
	{"{{ empty|default('none') }}", "none"},
	{"{{ sn|default('none') }}", "Parkes"},
	{"{{ missing|d('x') }}", "x"},
	{"{{ missing|length }}", "0"},
	{"{{ nonAscii|length }}", "16"},
	{"{{ mail_list|join(', ') }}", "alice.parkes@example.com, ap@example.org"},
	{"{{ mail_list|join }}", "alice.parkes@example.comap@example.org"},
	{"{{ sn|replace('e', 'E') }}", "ParkEs"},
	{"{{ 'aaa'|replace('a', 'b', 2) }}", "bba"},
	{"{{ spaced|trim }}", "padded"},
	{"{{ '--x--'|trim('-') }}", "x"},
	{"{{ num|int + 1 }}", "43"},
	{"{{ 'abc'|int }}", "0"},
	{"{{ 'abc'|int(7) }}", "7"},
	{"{{ '3.9'|int }}", "3"},
	{"{{ num|float }}", "42.0"},
	{"{{ 'x'|float }}", "0.0"},
	{"{{ flt|float|round }}", "2.0"},
	{"{{ 3.5|round }}", "4.0"},
	{"{{ 2.675|round(2) }}", "2.67"},
	{"{{ 2.1|round(0, 'ceil') }}", "3.0"},
	{"{{ 2.9|round(method='floor') }}", "2.0"},
	{"{{ negnum|int|abs }}", "7"},
	{"{{ -2.5|abs }}", "-2.5"},
	{"{{ negnum|float|abs }}", "7.0"},
	{"{{ 1.5 + 1 }}", "2.5"},
	{"{{ mail_list|first }}", "alice.parkes@example.com"},
	{"{{ mail_list|last }}", "ap@example.org"},
	{"{{ sn|first }}{{ sn|last }}", "Ps"},
	{"{{ html|striptags }}", "Hi there & you"},
	{"{{ '%s.%s'|format(givenName, sn) }}", "Alice.Parkes"},
	{"{{ \"%s-%05d|%-4s|%.2f\"|format(sn, 42, 'ab', 3.14159) }}", "Parkes-00042|ab  |3.14"},
	{"{{ '%(a)s+%(b)s'|format(a=givenName, b=sn) }}", "Alice+Parkes"},
	{"{{ '100%%'|format }}", "100%"},
	{"{{ 42|string }}", "42"},
	// pongo2's own syntax
	{"{{ sn|truncatechars:4 }}", "P..."},
	{"{{ sn|lower|capfirst }}", "Parkes"},
	{"{{ mail_list|join:\"; \" }}", "alice.parkes@example.com; ap@example.org"},
	{"{{ missing|default:\"none\" }}", "none"},
	{"{{ sn|pex_tail:3 }}", "kes"},
	{"{{ title|title }}", "Hello World"},
	// Pexip filters
	{"{{telephoneNumber|pex_clean_phone_number|pex_tail(6)}}", "460958"},
	{"{{ telephoneNumber|pex_clean_phone_number }}", "+442079460958"},
	{"{{ sn|pex_head(3) }}", "Par"},
	{"{{ nonAscii|pex_head(3) }}", "Ørj"},
	{"{{ nonAscii|pex_tail(4) }}", "úñez"},
	{"{{ sn|pex_head(99) }}", "Parkes"},
	{"{{ sn|pex_md5 }}", "493b9b9b82ee4e7b5de4958f37248227"},
	{"{{ sn|pex_hash }}", "d0639503c4c5e056afc84091ff704bc10515e81d29d2d51631517cc0d600f51e"},
	{"{{ sn|pex_base64 }}", "UGFya2Vz"},
	{"{{ nonAscii|pex_base64 }}", "w5hyamFuIMOcbmFsLcORw7rDsWV6"},
	{"{{ nonAscii|pex_reverse }}", "zeñúÑ-lanÜ najrØ"},
	{"{{ nonAscii|pex_strlen }}", "16"},
	{"{{ mail|pex_regex_replace('@.*$', '') }}", "alice.parkes"},
	{"{{ mail|pex_regex_replace('@.+', '@otherdomain.com') }}", "alice.parkes@otherdomain.com"},
	{"{{ mail|pex_regex_replace('^(\\\\w+)\\\\.(\\\\w+)@.*', '\\\\2.\\\\1') }}", "parkes.alice"},
	{"{{ mail|pex_regex_replace('^(?P<f>\\\\w+).*', '\\\\g<f>$') }}", "alice$"},
	{"{{ mail|pex_regex_search('^([^.]+)\\\\.') }}", "alice"},
	{"{{ mail|pex_regex_search('example') }}", "example"},
	{"[{{ mail|pex_regex_search('nomatch') }}]", "[]"},
	{"{{ guid|pex_to_uuid }}", "00112233-4455-6677-8899-aabbccddeeff"},
	{"{{ guidb64|pex_to_uuid }}", "00112233-4455-6677-8899-aabbccddeeff"},
	{"{{ urlish|pex_url_encode }}", "a%20b%26c%2Fd%3F%C3%A9"},
	{"{{ 'a%20b%26c%2Fd%3F%C3%A9%zz'|pex_url_decode }}", "a b&c/d?é%zz"},
	// control structures
	{"{% if allow_guests %}guests{% else %}hosts{% endif %}", "guests"},
	{"{% if missing %}a{% elif sn == 'Parkes' %}b{% else %}c{% endif %}", "b"},
	{"{% for m in mail_list %}{{ m }}{% if not loop.last %}, {% endif %}{% endfor %}", "alice.parkes@example.com, ap@example.org"},
	{"{% for m in mail_list %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}", "10TrueFalse22;21FalseTrue21;"},
	{"{% for m in missing %}x{% else %}none{% endfor %}", "none"},
	{"{% for m in missing %}x{% empty %}none{% endfor %}", "none"},
	{"{% for m in mail_list %}{{ forloop.Counter }}{{ forloop.Last }}{% endfor %}", "1False2True"},
	{"{% for i in range(3) %}{{ i }}{% endfor %}", "012"},
	{"{% for i in range(2) %}{% for j in range(2) %}{{ loop.depth }}{{ i }}{{ j }} {% endfor %}{% endfor %}", "200 201 210 211 "},
	{"{% set x = sn|lower %}{{ x }}-{{ x|upper }}", "parkes-PARKES"},
	{"{{ sn }}{# a comment #}!", "Parkes!"},
	{"{% raw %}{{ sn }}{% endraw %}", "{{ sn }}"},
	{"a\r\nb\n", "a\nb"},
	{"{{ sn }}\n", "Parkes"},
	{"{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }}", "it's say \"hi\""},
	{"{{ 'line1\\nline2' }}", "line1\nline2"},
}

func TestPatterns(t *testing.T) {
	e := testEnv()
	vars := FromAttrs(testAttrs)
	cases := patternCases
	vars["allow_guests"] = true
	for _, c := range cases {
		got, err := render(t, e, c.src, vars)
		if err != nil {
			t.Errorf("%q: %v", c.src, err)
			continue
		}
		if got != c.want {
			t.Errorf("%q = %q, want %q", c.src, got, c.want)
		}
	}
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
}

func TestRefusals(t *testing.T) {
	e := testEnv()
	cases := []struct {
		src       string
		line, col int
		msg       string
	}{
		{`{% include "/etc/hostname" %}`, 1, 4, "not allowed"},
		{`{% ssi "/etc/hostname" %}`, 1, 4, "not allowed"},
		{"x\n  {% import 'a' as b %}", 2, 6, "not allowed"},
		{`{% extends "base" %}`, 1, 4, "not allowed"},
		{`{% from 'x' import y %}`, 1, 4, "not allowed"},
		{`{% now "Y" %}`, 1, 4, "nondeterministic"},
		{`{% macro f() %}{% endmacro %}`, 1, 4, "not allowed"},
		{`{% lorem %}`, 1, 4, "nondeterministic"},
		{`{% with a=1 %}{% endwith %}`, 1, 4, "not allowed"},
		{"{{ sn|random }}", 1, 7, "nondeterministic"},
		{"{{ sn|ljust:1000000000 }}", 1, 7, "not allowed"},
		{"line1\n{{ sn|nosuchfilter }}", 2, 7, `unknown filter "nosuchfilter"`},
		{"{{ sn|pex_nosuch }}", 1, 7, "unknown filter"},
		{"{% frobnicate %}", 1, 4, "unknown tag"},
		{"{{ sn", 1, 1, "not closed"},
		{"{{ 'abc }}", 1, 4, "string not closed"},
		{"{{ a ~ b }}", 1, 6, "'~'"},
		{"{% if a is defined %}{% endif %}", 1, 9, "tests"},
		{"{% for x in y if x %}{% endfor %}", 1, 15, "not supported"},
		{"{% set x %}a{% endset %}", 1, 4, "set name = expression"},
		{"{{ __pexargs }}", 1, 4, "reserved"},
		{"ab\n{% if x %}never closed", 2, 1, ""},
		{"{{ x|truncate(3 }}", 1, 14, "unclosed"},
		{"{{ x + }}", 1, 1, ""},
		{"{{ mail|pex_regex_replace('(', 'x') }}", 1, 27, "bad regular expression"},
		{"{# c -#}", 1, 6, "whitespace control"},
		{strings.Repeat("{% if a %}", 70), 1, 644, "nested deeper"},
		{"{{ " + strings.Repeat("(", 70) + "a" + strings.Repeat(")", 70) + " }}", 1, 68, "nested deeper"},
	}
	for _, c := range cases {
		_, err := e.Compile("t", c.src)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: want *Error, got %v", c.src, err)
			continue
		}
		if pe.Line < 1 || pe.Col < 1 {
			t.Errorf("%q: bad position %d:%d", c.src, pe.Line, pe.Col)
		}
		if c.msg != "" && (pe.Line != c.line || pe.Col != c.col) {
			t.Errorf("%q: position %d:%d, want %d:%d (%v)", c.src, pe.Line, pe.Col, c.line, c.col, pe)
		}
		if !strings.Contains(pe.Msg, c.msg) {
			t.Errorf("%q: message %q lacks %q", c.src, pe.Msg, c.msg)
		}
		if !strings.HasPrefix(pe.Error(), "") || !strings.Contains(pe.Error(), ":") {
			t.Errorf("bad Error() %q", pe.Error())
		}
	}
}

func TestRenderBounds(t *testing.T) {
	e := NewEnv(Options{SecretKey: []byte("k"), MaxOutput: 1000})
	vars := FromAttrs(testAttrs)
	for _, src := range []string{
		"{% for i in range(100000) %}x{% endfor %}",
		"{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
		"{% for i in range(2000) %}xx{% endfor %}",
		"{% set s = 'ab' %}{% for i in range(40) %}{% set s = s + s %}{% endfor %}{{ s|length }}",
		"{{ longName|replace('', longName)|replace('', longName)|replace('', longName) }}",
		"{{ '%1000000s'|format(1) }}",
		"{{ sn|pex_random_pin(100000) }}",
	} {
		_, err := render(t, e, src, vars)
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%.60q: want *Error, got %v", src, err)
		}
	}
	// render-time errors carry a position
	_, err := render(t, e, "ok\n{% set p = '(' %}{{ sn|pex_regex_replace(p, 'x') }}", vars)
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Errorf("regex error: %v", err)
	}
}

func TestStableGenerated(t *testing.T) {
	e := testEnv()
	tpl, err := e.Compile("t", "{{ ''|pex_random_pin(6) }} {{ ''|pex_random_pin(6) }} {{ ''|pex_uuid4 }}")
	if err != nil {
		t.Fatal(err)
	}
	seed := Seed{"staff", "uid=alice", "pin"}
	a, err := tpl.Render(nil, seed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tpl.Render(nil, seed)
	if a != b {
		t.Fatalf("not stable: %q vs %q", a, b)
	}
	f := strings.Fields(a)
	if len(f[0]) != 6 || f[0] == f[1] || strings.Trim(f[0]+f[1], "0123456789") != "" {
		t.Fatalf("bad pins %q", a)
	}
	if len(f[2]) != 36 || f[2][14] != '4' {
		t.Fatalf("bad uuid4 %q", f[2])
	}
	if f[0] != StableSecret([]byte("test-key"), "staff", "uid=alice", "pin", 6, "0123456789") {
		t.Fatalf("first pin differs from StableSecret")
	}
	for _, s := range []Seed{{"other", "uid=alice", "pin"}, {"staff", "uid=bob", "pin"}, {"staff", "uid=alice", "guest_pin"}} {
		c, _ := tpl.Render(nil, s)
		if c == a {
			t.Errorf("seed %v gives the same values", s)
		}
	}
	e2 := NewEnv(Options{SecretKey: []byte("other-key")})
	tpl2, _ := e2.Compile("t", "{{ ''|pex_random_pin(6) }} {{ ''|pex_random_pin(6) }} {{ ''|pex_uuid4 }}")
	if c, _ := tpl2.Render(nil, seed); c == a {
		t.Error("key does not matter")
	}
	noKey := NewEnv(Options{})
	tpl3, _ := noKey.Compile("t", "{{ ''|pex_random_pin(6) }}")
	if _, err := tpl3.Render(nil, seed); err == nil {
		t.Error("pex_random_pin without a secret key must fail")
	}
	pw := StableSecret([]byte("k"), "t", "e", "password", 20, "abcdefghjkmnpqrstuvwxyz23456789")
	if len(pw) != 20 || strings.Trim(pw, "abcdefghjkmnpqrstuvwxyz23456789") != "" {
		t.Errorf("bad password %q", pw)
	}
}

func TestEmailValues(t *testing.T) {
	e := testEnv()
	v := Vars{"allow_guests": false, "max_callrate_in": 4128, "ratio": 1.5, "aliases": []string{"alice", "123"}, "name": "Alice VMR", "nothing": nil}
	cases := []struct{ src, want string }{
		{"{{ allow_guests }}", "False"},
		{"{% if not allow_guests %}hosts only{% endif %}", "hosts only"},
		{"{{ max_callrate_in }} kbps", "4128 kbps"},
		{"{{ ratio }}", "1.5"},
		{"{{ aliases|join(', ') }}", "alice, 123"},
		{"{{ aliases }}", "['alice', '123']"},
		{"[{{ nothing }}]", "[]"},
		{"<p>{{ name }} & {{ '<b>' }}</p>", "<p>Alice VMR & <b></p>"},
		{"Your meeting room {{ name }}", "Your meeting room Alice VMR"},
	}
	for _, c := range cases {
		got, err := render(t, e, c.src, v)
		if err != nil || got != c.want {
			t.Errorf("%q = %q, %v; want %q", c.src, got, err, c.want)
		}
	}
}

func TestFastPaths(t *testing.T) {
	e := testEnv()
	lit, _ := e.Compile("t", "plain text")
	if !lit.IsLiteral() {
		t.Fatal("plain text is literal")
	}
	tag, _ := e.Compile("t", "{{ x }}")
	if tag.IsLiteral() || tag.bare != "x" {
		t.Fatalf("{{ x }} fast path: literal=%v bare=%q", tag.IsLiteral(), tag.bare)
	}
	for _, v := range []any{"a<b", true, false, 3, 2.0, []string{"a", "b'c"}, nil} {
		fast, err1 := tag.Render(Vars{"x": v}, Seed{})
		slowTpl, _ := e.Compile("t", "{{ x }}{{ '' }}")
		slow, err2 := slowTpl.Render(Vars{"x": v}, Seed{})
		if err1 != nil || err2 != nil || fast != slow {
			t.Errorf("%#v: fast %q (%v) slow %q (%v)", v, fast, err1, slow, err2)
		}
	}
}
