package account

import (
	"encoding/json"
	"strings"
	"testing"
)

// trackingRef is MakeTracking and Values as they were, through encoding/json alone.
func trackingRef(v [10]string) (Tracking, [10]string) {
	last := -1
	for i, s := range v {
		if s != "" {
			last = i
		}
	}
	if last < 0 {
		return "", [10]string{}
	}
	b, _ := json.Marshal(v[:last+1])
	var vals []string
	json.Unmarshal(b, &vals)
	var out [10]string
	copy(out[:], vals)
	return Tracking(b), out
}

func checkTracking(t *testing.T, v [10]string) {
	t.Helper()
	want, wantVals := trackingRef(v)
	got := MakeTracking(v)
	if got != want {
		t.Fatalf("MakeTracking(%q) = %q, encoding/json writes %q", v, got, want)
	}
	if vals := got.Values(); vals != wantVals {
		t.Fatalf("Values(%q) = %q, encoding/json reads %q", got, vals, wantVals)
	}
}

// checkStored: a stored text unpacks as encoding/json reads it.
func checkStored(t *testing.T, s string) {
	t.Helper()
	var vals []string
	json.Unmarshal([]byte(s), &vals)
	var want [10]string
	copy(want[:], vals)
	if got := Tracking(s).Values(); got != want {
		t.Fatalf("Values(%q) = %q, encoding/json reads %q", s, got, want)
	}
}

// TestTrackingMatchesJSON: packing and unpacking give exactly what encoding/json gives,
// for plain values (the shortcut) and for every value the shortcut leaves to it.
func TestTrackingMatchesJSON(t *testing.T) {
	plain := 0
	for _, s := range trackingSamples {
		v := [10]string{s, "", "GEN", s}
		checkTracking(t, v)
		checkTracking(t, [10]string{9: s})
		if plainJSON(s) {
			plain++
		}
	}
	if plain < 4 || plain == len(trackingSamples) {
		t.Fatalf("%d of %d samples plain: both ways must be tried", plain, len(trackingSamples))
	}
	// stored texts that are not what MakeTracking writes go to encoding/json
	for _, s := range []string{`[]`, `[ "a"]`, `["a",]`, `["a""b"]`, `["a","b","c","d","e","f","g","h","i","j","k"]`, `["\u00e9"]`, `["a\tb"]`, `[1]`, `["a"`, `"a"`} {
		checkStored(t, s)
	}
}

var trackingSamples = []string{"ENG", "Senior engineer, platform", "Zoë Nørgaard", "日本語", "a\"b", `a\b`, "<b>", "x & y",
	"tab\there", "line\nbreak", "\x7f", "bad \xff utf8", "\u2028", "\u2029x", "\ufffd", "", strings.Repeat("é", 40)}

func FuzzTracking(f *testing.F) {
	for _, s := range trackingSamples {
		f.Add(s, "GEN")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		checkTracking(t, [10]string{a, b})
		checkTracking(t, [10]string{2: b, 7: a})
		checkStored(t, a) // any stored text
	})
}
