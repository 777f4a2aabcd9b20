package pattern

import (
	"regexp"
	"strings"
	"testing"
)

var classRunExprs = []string{`[^a-z0-9.]+`, `[^A-Z]`, `[^a-z]`, `[aeiou]`, `\s+`, `\d+`, `[^\x00-\x7f]+`, `(?i)[a-c]+`,
	`[é-ü]`, `\W+`, `[[:punct:]]`, `\pL+`, `[^\pL]`, `.`, `.+`, `(?s).+`, `[\x{FFFD}]+`, `[-]`, `[^-]+?`}

var classRunInputs = []string{"", "Ørjan O'Brien-Ünal", "alice.smith", "ABC def GHI", "+44 (20) 7946-0958", "bad \xff\xfe utf8",
	"tab\tand\nnewline", "日本語 text", "\ufffd", "Featherstonehaugh-Cholmondeley", "aaa", "---", strings.Repeat("x-", 40)}

// TestClassRunMatchesRegexp: a one-class expression replaces exactly as the regexp
// machine does (regexpReplace, where every other expression goes), and the expressions that are more than that are left to it.
func TestClassRunMatchesRegexp(t *testing.T) {
	runs := 0
	for _, expr := range classRunExprs {
		re := regexp.MustCompile(expr)
		c := classRunOf(re)
		if c == nil {
			continue
		}
		runs++
		for _, repl := range []string{"", "_", "<>", "long replacement"} {
			for _, s := range classRunInputs {
				want, _ := regexpReplace(re, repl, s)
				if got, err := c.replaceAll(s, repl); err != nil || got != want {
					t.Errorf("%s → %q on %q: %q (%v), regexp gives %q", expr, repl, s, got, err, want)
				}
			}
		}
	}
	if runs < 10 || runs == len(classRunExprs) {
		t.Fatalf("%d of %d expressions are class runs: both kinds must be tried", runs, len(classRunExprs))
	}
	for _, expr := range []string{`[^-]+?`, `a+`, `[a-z]*`, `xy|z`, `^[a-z]`, `[a-z]{2}`} {
		if classRunOf(regexp.MustCompile(expr)) != nil {
			t.Errorf("%s is taken for a class run", expr)
		}
	}
	// the output limit, as the regexp loop checks it
	big := strings.Repeat("a", maxValueBytes/2+1)
	re := regexp.MustCompile(`[ab]`)
	if _, err := classRunOf(re).replaceAll(big, "bb"); err == nil {
		t.Error("a result over the limit was not refused")
	}
}

func FuzzClassRun(f *testing.F) {
	for i, expr := range classRunExprs {
		f.Add(expr, classRunInputs[i%len(classRunInputs)], "_")
	}
	f.Fuzz(func(t *testing.T, expr, s, repl string) {
		re, err := regexp.Compile(expr)
		if err != nil || strings.Contains(repl, "$") {
			return
		}
		c := classRunOf(re)
		if c == nil {
			return
		}
		want, werr := regexpReplace(re, repl, s)
		got, err := c.replaceAll(s, repl)
		if (err != nil) != (werr != nil) || got != want {
			t.Fatalf("%s → %q on %q: %q (%v), regexp gives %q (%v)", expr, repl, s, got, err, want, werr)
		}
	})
}
