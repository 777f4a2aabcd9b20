package pattern

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fastSources are templates meant for the fast path, beyond patternCases.
var fastSources = []string{
	"{{cn}} VMR", "Personal room of {{cn}}", "{{uid}}@vc.example.com",
	"{{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}", "{{ ''|pex_random_pin(6) }}",
	"{{mail|replace('@example.com', '@dev.example.com')}}", "{{ ''|pex_random_pin(12) }}",
	"{{ ''|pex_random_pin(6) }}-{{ ''|pex_uuid4 }}-{{ ''|pex_random_pin(length=4) }}",
	"{{ missing|d('x')|upper }}", "{{ empty|default('e', true) }}", "{{ sn|default('e', boolean=True) }}",
	"{{ sn|pex_strlen }}", "{{ sn|pex_strlen|pex_head(1) }}", "{{ nonAscii|pex_strlen|pex_tail(1) }}",
	"{{ sn|pex_head('2') }}", "{{ sn|pex_tail(-1) }}", "{{ nonAscii|pex_head(0) }}",
	"{{ mail|pex_regex_replace('(\\\\w+)@(\\\\w+)', '\\\\2 at \\\\1') }}", "{{ mail|pex_regex_search('@(.*)') }}",
	"{{ guid|pex_to_uuid }}", "{{ sn|pex_to_uuid }}", "{{ urlish|pex_url_encode|pex_url_decode }}",
	"{{ sn|pex_hash }} {{ sn|pex_md5 }} {{ sn|pex_base64 }} {{ sn|pex_reverse }}",
	"{{ longName|truncate(10, True, '!', 0) }}", "{{ longName|truncate(length=12, end='…') }}",
	"{{ spaced|trim }}|{{ spaced|trim(' p') }}", "{{ title|capitalize }}{{ title|lower() }}{{ title|upper }}",
	"{{ mail_list }}", "{{ mail_list|pex_head(3) }}", "{{ x_list }}", "{{ allow_guests }}", "{{ allow_guests|upper }}",
	"{{ 'a'|replace('a', 'b', 0) }}", "{{ sn|replace('', '-') }}", "{{ mail|replace('a', 'b', count=1,) }}",
	"{{ sn|truncate(2) }}", "{{ sn|pex_random_pin(0) }}", "{{ sn|upper(1) }}", "{{ sn|default('a', 'b', 'c') }}",
	"{{ sn|default(1) }}", "{{ sn|pex_strlen|default('x') }}", "{{ sn|pex_head(n=2, n=3) }}", "{{ sn|pex_head(x=2) }}",
	"a{{ sn }}b{{ cn }}c\nd", "{{ 'x\\ty' }}", "{{ \"\\u00e9\" }}", "{{ sn }}}}", "x}}{{ sn }}%}",
	// format with variables: split at compile time (only %s and %%) or through pyFormat
	`{{ "%s.%s"|format(givenName, sn) }}`, `{{ '%s.%s'|format(givenName, sn)|lower|pex_regex_replace('[^a-z.]', '') }}`,
	`{{ '%s|%s'|format(missing, sn) }}`, `{{ '%s'|format(mail_list) }}`, `{{ '%s'|format(x_list) }}`, `{{ '%s %s'|format(sn) }}`,
	`{{ '%s'|format(sn, cn) }}`, `{{ '%5s|%-6s|%%'|format(sn, 'x') }}`, `{{ '%d'|format(sn) }}`, `{{ '%05d-%s'|format(42, True) }}`,
	`{{ '%s-%s-100%%'|format(7, False) }}`, `{{ '%(a)s+%(b)s'|format(a=givenName, b=sn) }}`, `{{ '%(a)s'|format(a=missing) }}`,
	`{{ '%s'|format(sn, a=cn) }}`, `{{ sn|format }}`, `{{ mail|format(sn) }}`, `{{ x|format(sn, cn) }}`, `{{ 'a%'|format }}`,
	`{{ '%'|format(sn) }}`, `{{ '%q'|format(sn) }}`, `{{ sn|pex_strlen|format(sn) }}`, `{{ '%s/%s'|format(dn, sn) }}`,
	`{{ 'no conversion'|format() }}`, `{{ '%s'|format(nonAscii)|truncate(8) }}`, `{{ '%s%s'|format(longName, longName)|pex_tail(3) }}`,
	// default with a variable default
	`{{ x|default(sn) }}`, `{{ missing|default(other)|upper }}`, `{{ missing|default(missing2)|default('z') }}`,
	`{{ mail|default(mail_list) }}`, `{{ missing|default(mail_list) }}`, `{{ missing|d(sn, true) }}`, `{{ missing|default('x', sn) }}`,
	`{{ missing|default(default_value=sn) }}`, `{{ cn|default(mail)|lower }}`, `{{ empty|default(uid)|pex_regex_replace("@.*$", "") }}`,
	// truncate with Jinja's semantics, and regular expressions in double quotes
	`{{ sn|truncate(3) }}`, `{{ longName|truncate(n) }}`, `{{ longName|truncate(12)|upper }}`, `{{ longName|truncate(length=5, killwords=True) }}`,
	`{{ longName|truncate(5, False, '', 0) }}`, `{{ nonAscii|truncate(9, leeway=0) }}`, `{{ x|pex_regex_replace("a","b") }}`,
	`{{ givenName|pex_regex_replace(sn, 'x') }}`, `{{ spaced|truncate(4, end='') }}`,
}

// diffCheck renders tpl on the fast path and with pongo2 and fails unless
// both give the same output, or the fast path declines (Render then uses
// pongo2). It reports whether the fast path rendered.
func diffCheck(t *testing.T, tpl *Template, src string, vars Vars, seed Seed) bool {
	t.Helper()
	if tpl.fast == nil {
		return false
	}
	want, werr := tpl.execPongo(vars, seed)
	s := source{vars: vars}
	got, ok := tpl.fast.exec(&s, tpl.env.opts.SecretKey, seed, tpl.env.opts.MaxOutput)
	if !ok {
		// declined: Render must still equal pongo2
		got, err := tpl.Render(vars, seed)
		if got != want || (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Errorf("%q: Render %q (%v), pongo2 %q (%v)", src, got, err, want, werr)
		}
		return false
	}
	if werr != nil || got != want {
		t.Errorf("%q: fast path %q, pongo2 %q (%v)", src, got, want, werr)
	}
	return true
}

// attrsCheck compares RenderAttrsWith with Render(FromAttrs + extra).
func attrsCheck(t *testing.T, tpl *Template, src string, attrs map[string][]string, extra Vars, seed Seed) {
	t.Helper()
	vars := FromAttrs(attrs)
	for k, v := range extra {
		vars[k] = v
	}
	want, werr := tpl.Render(vars, seed)
	got, err := tpl.RenderAttrsWith(attrs, extra, seed)
	if got != want || (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
		t.Errorf("%q: RenderAttrsWith %q (%v), Render(FromAttrs) %q (%v)", src, got, err, want, werr)
	}
}

// fuzzCorpus reads the string inputs of a fuzz corpus directory.
func fuzzCorpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if q, ok := strings.CutPrefix(line, "string("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func TestFastPathMatchesPongo(t *testing.T) {
	e := testEnv()
	small := NewEnv(Options{SecretKey: []byte("test-key"), MaxOutput: 20})
	noKey := NewEnv(Options{})
	vars := FromAttrs(testAttrs)
	vars["allow_guests"] = true
	other := Vars{"sn": 42, "cn": nil, "mail": []string{"a", "b"}, "x": 2.5, "givenName": "G", "x_list": "not a list"}
	srcs := append([]string(nil), fastSources...)
	for _, c := range patternCases {
		srcs = append(srcs, c.src)
	}
	for _, p := range realisticPatterns {
		srcs = append(srcs, p.src)
	}
	srcs = append(srcs, fuzzCorpus(t, "FuzzCompileRender")...)
	srcs = append(srcs, fuzzCorpus(t, "FuzzFastPath")...)
	seed := Seed{Template: "staff", EntryKey: "uid=alice", Field: "pin"}
	compiled, fast, rendered := 0, 0, 0
	for _, src := range srcs {
		for _, env := range []*Env{e, small, noKey} {
			tpl, err := env.Compile("t", src)
			if err != nil {
				continue
			}
			if env == e {
				compiled++
				if tpl.fast != nil {
					fast++
				}
			}
			for _, v := range []Vars{vars, other, nil} {
				if diffCheck(t, tpl, src, v, seed) && env == e {
					rendered++
				}
			}
			attrsCheck(t, tpl, src, testAttrs, nil, seed)
			attrsCheck(t, tpl, src, testAttrs, Vars{"dn": "uid=alice,dc=example", "sn": "Override", "mail": nil, "cn": 3}, seed)
			attrsCheck(t, tpl, src, map[string][]string{"x_list": {"own"}, "sn": {}}, Vars{"x": nil}, seed)
		}
	}
	t.Logf("%d templates compiled, %d on the fast path, %d fast renders compared", compiled, fast, rendered)
	if fast < 60 || rendered < 100 {
		t.Fatalf("too little fast-path coverage: %d templates, %d renders", fast, rendered)
	}
}

// TestFastPathCoverage: the realistic patterns all take the fast path, and
// the rest do not.
func TestFastPathCoverage(t *testing.T) {
	e := testEnv()
	var fast []string
	for _, p := range benchTemplatePatterns {
		fast = append(fast, p.src)
	}
	for _, p := range vmrPatternSet {
		fast = append(fast, p.src)
	}
	for _, p := range realisticPatterns {
		fast = append(fast, p.src)
	}
	fast = append(fast, "{{ mail|pex_regex_replace('@.*$', '') }}", "{{ sn|truncate(5)|upper }}",
		"{{ x|default('n/a') }}", "{{ ''|pex_uuid4 }}", "{{ mail_list }}",
		`{{ "%s.%s"|format(givenName, sn) }}`, `{{ x|default("y") }}`, `{{ x|pex_regex_replace("a","b") }}`,
		`{{ x|truncate(5) }}`, `{{ x|default(y)|truncate(5)|upper }}`, `{{ '%(a)s'|format(a=sn) }}`, `{{ x|format(y, 2) }}`)
	for _, src := range fast {
		tpl, err := e.Compile("t", src)
		if err != nil {
			t.Fatal(err)
		}
		if !tpl.IsFast() {
			t.Errorf("%q is not on the fast path", src)
		}
	}
	for _, src := range []string{
		"{% if sn %}x{% endif %}", "{{ sn ~ 'x' }}", "{{ sn + 'x' }}", "{{ sn|title }}", "{{ sn|truncatechars:3 }}",
		"{{ sn|pex_head(n) }}", "{{ sn|default(1) }}", "{{ sn|pex_head(-1) }}", "{{ sn|pex_head(1.5) }}",
		"{{- sn }}", "{{ sn -}}", "{# c #}{{ sn }}", "{{ mail_list.0 }}", "{{ mail_list[0] }}", "{{ sn|pex_strlen|d('x') }}",
		"{{ 42 }}", "{{ range }}", "{{ sn|pex_head (1) }}", "{{ sn|pex_random_pin(300) }}", "{{ sn|join(', ') }}",
		"{{ sn|truncate(n) }}", "{{ sn|pex_regex_replace(a, 'b') }}", "{{ sn|default('x', b) }}", "{{ sn|default(default_value=y) }}",
		"{{ '%s'|format(sn, a=cn) }}", "{{ '%s'|format(none) }}", "{{ '%s'|format(1.5) }}", "{{ sn|pex_strlen|default(y) }}",
		"{{ '%s'|format(loop) }}",
	} {
		tpl, err := e.Compile("t", src)
		if err != nil {
			continue
		}
		if tpl.fast != nil {
			t.Errorf("%q is on the fast path", src)
		}
	}
}

// FuzzFastPath: for any template on the fast path and any value, the fast
// path renders what pongo2 renders, and RenderAttrs what Render(FromAttrs)
// renders.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSources {
		f.Add(s, "Ørjan  Ünal-Ñúñez")
	}
	for _, c := range patternCases {
		f.Add(c.src, "+44 (20) 7946-0958")
	}
	// the value as a format string, split or through pyFormat
	for _, v := range []string{"%s.%s", "%s%%%s", "%-5s|%3s", "%(a)s", "%d %x", "%", "%s"} {
		f.Add("{{ x|format(sn, cn) }}", v)
		f.Add("{{ x|format(a=sn) }}|{{ '%s+%s'|format(x, missing)|truncate(6) }}", v)
	}
	for _, p := range realisticPatterns {
		f.Add(p.src, "Ørjan O'Brien-Ünal")
	}
	e := NewEnv(Options{SecretKey: []byte("k"), MaxOutput: 4096})
	f.Fuzz(func(t *testing.T, src, val string) {
		tpl, err := e.Compile("fuzz", src)
		if err != nil || tpl.fast == nil {
			return
		}
		attrs := map[string][]string{}
		for k, v := range testAttrs {
			attrs[k] = v
		}
		attrs["x"] = []string{val, "second"}
		attrs["sn"] = []string{val}
		seed := Seed{"t", "e", "f"}
		diffCheck(t, tpl, src, FromAttrs(attrs), seed)
		diffCheck(t, tpl, src, Vars{"x": val, "cn": val, "mail": true}, seed)
		attrsCheck(t, tpl, src, attrs, Vars{"dn": val}, seed)
	})
}

// stableBytesRef is the original derivation, with crypto/hmac.
func stableBytesRef(key []byte, template, entryKey, field string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [4]byte
	for block := uint32(0); len(out) < n; block++ {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("roster/pattern/stable/v1\x00"))
		for _, s := range []string{template, entryKey, field} {
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(s)))
			m.Write(l[:])
			m.Write([]byte(s))
		}
		binary.BigEndian.PutUint32(ctr[:], block)
		m.Write(ctr[:])
		out = m.Sum(out)
	}
	return out[:n]
}

func TestStableHMAC(t *testing.T) {
	long := strings.Repeat("field/", 60)
	for _, key := range [][]byte{{}, []byte("k"), bytes.Repeat([]byte{0xa5}, 64), bytes.Repeat([]byte("x"), 65), bytes.Repeat([]byte("y"), 200)} {
		for _, n := range []int{1, 16, 32, 33, 100, 528} {
			for _, f := range []string{"", "pin", long} {
				want := stableBytesRef(key, "staff", "uid=alice", f, n)
				got := stableBytesAppend([]byte("prefix"), key, "staff", "uid=alice", f, n)
				if !bytes.Equal(got[:6], []byte("prefix")) || !bytes.Equal(got[6:], want) {
					t.Fatalf("key %d bytes, n %d, field %d bytes: differs from crypto/hmac", len(key), n, len(f))
				}
			}
		}
	}
	// a value fixed before the HMAC was rewritten
	if got := StableSecret([]byte("test-key"), "staff", "uid=alice", "pin", 6, "0123456789"); got != stableSecretGolden {
		t.Fatalf("StableSecret = %q, want %q", got, stableSecretGolden)
	}
}

func TestFastPathErrorsAreExact(t *testing.T) {
	// errors always come from pongo2, so they are unchanged
	e := NewEnv(Options{SecretKey: []byte("k"), MaxOutput: 10})
	noKey := NewEnv(Options{})
	for _, c := range []struct {
		env *Env
		src string
	}{
		{e, "{{ sn }}{{ sn }}"}, {e, "{{ longName|pex_base64 }}"}, {noKey, "x{{ ''|pex_random_pin(6) }}"},
		{noKey, "{{ ''|pex_uuid4 }}"}, {e, "{{ guidb64|pex_reverse|pex_to_uuid }}"},
		{e, "{{ '%s %s'|format(sn) }}"}, {e, "{{ '%s'|format(sn, cn) }}"}, {e, "{{ '%d'|format(sn) }}"}, {e, "{{ '%s%s'|format(sn, sn) }}"},
	} {
		tpl, err := c.env.Compile("t", c.src)
		if err != nil || tpl.fast == nil {
			t.Fatalf("%q: %v, fast %v", c.src, err, tpl.fast != nil)
		}
		_, err = tpl.RenderAttrs(testAttrs, Seed{})
		var pe *Error
		if !errors.As(err, &pe) || pe.Line < 1 {
			t.Errorf("%q: error %v is not a positioned *Error", c.src, err)
		}
		_, werr := tpl.execPongo(FromAttrs(testAttrs), Seed{})
		if werr == nil || err.Error() != werr.Error() {
			t.Errorf("%q: %v, pongo2 %v", c.src, err, werr)
		}
	}
}

// stableSecretGolden is StableSecret("test-key", "staff", "uid=alice",
// "pin", 6, digits) computed with the crypto/hmac implementation.
const stableSecretGolden = "075770"

// TestFastPathConcurrent renders shared templates from several goroutines
// (run with -race).
func TestFastPathConcurrent(t *testing.T) {
	e := testEnv()
	var tpls []*Template
	for _, src := range fastSources {
		if tpl, err := e.Compile("t", src); err == nil {
			tpls = append(tpls, tpl)
		}
	}
	want := make([]string, len(tpls))
	for i, tpl := range tpls {
		want[i], _ = tpl.RenderAttrs(testAttrs, Seed{"t", "e", "f"})
	}
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 50; n++ {
				for i, tpl := range tpls {
					if got, _ := tpl.RenderAttrs(testAttrs, Seed{"t", "e", "f"}); got != want[i] {
						errs <- fastSources[i]
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if s := <-errs; s != "" {
			t.Errorf("%q renders differently under concurrency", s)
		}
	}
}
