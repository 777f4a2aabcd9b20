package schema

import (
	"regexp"
	"testing"
)

// The expressions isAliasHost and aliasSchemeOf stand for.
var (
	aliasHostRE   = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
	aliasSchemeRE = regexp.MustCompile(`^(?i:sips?|h323|tel):`)
)

var aliasSamples = []string{"", "example.com", "vc.example.com", "a", "a-b.c", "-a.com", "a-.com", "a..b", "a.", ".a",
	"192.0.2.1", "192.0.2.1:5060", "example.com:", "example.com:123456", "example.com:65535", "example.com:5x",
	"[2001:db8::1]", "[2001:db8::1]:5061", "[]", "[::1", "[::1]x", "[::1]:", "[g::1]", "ex_ample.com", "exämple.com",
	"a:1:2", "[1]:1:2", "xn--nxasmq6b.example", "A1-b2.C3", "sip:alice", "SIPS:alice@x", "h323:x", "Tel:+44", "tel",
	"ſip:alice", "ſipſ:bob", "sips", "http://x", "sip:", ":x", "H323:", "ſ:", "K:"}

func checkAliasParts(t *testing.T, s string) {
	t.Helper()
	if got, want := isAliasHost(s), aliasHostRE.MatchString(s); got != want {
		t.Fatalf("isAliasHost(%q) = %v, the expression says %v", s, got, want)
	}
	if got, want := aliasSchemeOf(s), aliasSchemeRE.FindString(s); got != want {
		t.Fatalf("aliasSchemeOf(%q) = %q, the expression finds %q", s, got, want)
	}
}

// TestAliasHostMatchesExpression: the hand-written host and scheme checks of CheckAlias
// say what their regular expressions say.
func TestAliasHostMatchesExpression(t *testing.T) {
	hosts, schemes := 0, 0
	for _, s := range aliasSamples {
		checkAliasParts(t, s)
		if isAliasHost(s) {
			hosts++
		}
		if aliasSchemeOf(s) != "" {
			schemes++
		}
	}
	if hosts < 8 || schemes < 5 || hosts+schemes > len(aliasSamples)-10 {
		t.Fatalf("%d hosts and %d schemes among %d samples: both answers must be tried", hosts, schemes, len(aliasSamples))
	}
}

func FuzzAliasHost(f *testing.F) {
	for _, s := range aliasSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAliasParts(t, s) })
}
