package policy

import (
	"net/url"
	"testing"
)

func TestNormalizeAlias(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"meet.alice@example.com", "meet.alice@example.com"},
		{"sip:meet.alice@example.com", "meet.alice@example.com"},
		{"SIP:Meet.Alice@Example.COM", "Meet.Alice@Example.COM"},
		{"sips:meet.alice@example.com", "meet.alice@example.com"},
		{"h323:8801", "8801"},
		{"H323:alice@example.com", "alice@example.com"},
		{"tel:+4712345678", "+4712345678"},
		{"tel:+4712345678;phone-context=example.com", "+4712345678"},
		{"sip:alice@example.com;transport=tls", "alice@example.com"},
		{"sip:alice@example.com?subject=hi", "alice@example.com"},
		{"<sip:alice@example.com>", "alice@example.com"},
		{"  sip: alice@example.com \t", "alice@example.com"},
		{"sipalice@example.com", "sipalice@example.com"},         // no colon: no scheme
		{"alice;x@example.com", "alice;x@example.com"},           // parameters cut only after a scheme
		{"mailto:alice@example.com", "mailto:alice@example.com"}, // not a dialling scheme
		{"sip:", ""},
		{"   ", ""},
		{"", ""},
	} {
		if got := normalizeAlias(tc.in); got != tc.want {
			t.Errorf("normalizeAlias(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEqualFolded(t *testing.T) {
	for _, tc := range []struct {
		stored, dialled string
		want            bool
	}{
		{"meet.alice@example.com", "MEET.Alice@Example.com", true},
		{"Team.Oslo@example.com", "team.oslo@example.com", true},
		{"meet.bjørn@example.no", "MEET.BJØRN@EXAMPLE.NO", true},
		{"meet.bjørn@example.no", "meet.bjorn@example.no", false},
		{"alice@example.com", "alice@example.co", false},
		{"alice@example.com", "alicf@example.com", false},
		{"K", "\u212a", true}, // Kelvin sign lowers to k: ToLower on both sides agrees
	} {
		if got := equalFolded(tc.stored, foldAlias(normalizeAlias(tc.dialled))); got != tc.want {
			t.Errorf("equalFolded(%q, fold(%q)) = %v, want %v", tc.stored, tc.dialled, got, tc.want)
		}
	}
}

func TestQueryParam(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"local_alias=sip%3Aalice%40example.com&protocol=sip", "sip:alice@example.com", true},
		{"protocol=sip&local_alias=meet.alice@example.com", "meet.alice@example.com", true},
		{"local_alias=%2B4712345678", "+4712345678", true},
		{"local_alias=+4712345678", " 4712345678", true}, // form encoding: '+' is a space
		{"local_alias=meet+alice%40example.com", "meet alice@example.com", true},
		{"local_alias=a&local_alias=b", "a", true},
		{"local%5Falias=x", "x", true},
		{"remote_alias=x", "", false},
		{"local_alias=%zz", "", false},
		{"", "", false},
	} {
		got, ok := queryParam(tc.raw, "local_alias")
		if got != tc.want || ok != tc.ok {
			t.Errorf("queryParam(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		target string
		ep     endpoint
		alias  string
		ok     bool
	}{
		{"/policy/v1/service/configuration?local_alias=sip%3Aa%40example.com&protocol=sip", endpointService, "sip:a@example.com", true},
		{"/policy/v1/service/configuration?protocol=sip", endpointService, "", false},
		{"/policy/v1/registrations/sip%3Aa%40example.com?protocol=sip", endpointRegistration, "sip:a@example.com", true},
		{"/policy/v1/registrations/+4712345678", endpointRegistration, "+4712345678", true}, // a path keeps '+'
		{"/policy/v1/registrations/a@example.com/", endpointRegistration, "a@example.com", true},
		{"/policy/v1/registrations/a%2Fb", endpointRegistration, "a/b", true},
		{"/policy/v1/registrations/%zz", endpointRegistration, "", false},
		{"/policy/v1/registrations/", endpointRegistration, "", false},
		{"/policy/v1/service/configuration/", endpointOther, "", false},
		{"/", endpointOther, "", false},
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			// %zz does not parse as a request URI; build it by hand as a server would see it.
			u = &url.URL{Path: "/policy/v1/registrations/", RawPath: "/policy/v1/registrations/%zz"}
		}
		ep, alias, ok := route(u)
		if ep != tc.ep || ok != tc.ok || (ok && alias != tc.alias) {
			t.Errorf("route(%s) = %v %q %v; want %v %q %v", tc.target, ep, alias, ok, tc.ep, tc.alias, tc.ok)
		}
	}
}
