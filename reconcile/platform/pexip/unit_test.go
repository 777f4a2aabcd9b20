package pexip

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestMarker(t *testing.T) {
	m := Marker{Instance: "a1b2c3"}
	long := strings.Repeat("é", 300)
	cases := []struct {
		desc, marked string
	}{
		{"", " [roster:a1b2c3]"},
		{"Alice's room", "Alice's room [roster:a1b2c3]"},
		{long, strings.Repeat("é", 250-len(" [roster:a1b2c3]")) + " [roster:a1b2c3]"},
	}
	for _, tc := range cases {
		got := m.Mark(tc.desc)
		if got != tc.marked || len([]rune(got)) > MaxText {
			t.Errorf("Mark(%.20q) = %.40q (%d runes)", tc.desc, got, len([]rune(got)))
		}
		if !m.Ours(got) || (Marker{Instance: "other"}).Ours(got) {
			t.Errorf("Ours(%.40q) wrong", got)
		}
		if s := Strip(got); !strings.HasPrefix(tc.desc, s) {
			t.Errorf("Strip(%.40q) = %.40q", got, s)
		}
	}
	for _, desc := range []string{"", "Alice", "x [roster:]", "x [roster:a b]", "x [roster:abc] more", "[roster:abc"} {
		if inst, ok := Owner(desc); ok {
			t.Errorf("Owner(%q) = %q, want none", desc, inst)
		}
		if Strip(desc) != desc {
			t.Errorf("Strip(%q) changed it", desc)
		}
	}
	if inst, ok := Owner("hand made [roster:zz9]"); !ok || inst != "zz9" {
		t.Errorf("Owner of another roster's = %q, %v", inst, ok)
	}
}

func TestNewMarker(t *testing.T) {
	a, b := NewMarker([]byte("key one")), NewMarker([]byte("key two"))
	if a != NewMarker([]byte("key one")) || a == b || len(a.Instance) != 8 {
		t.Errorf("markers %q %q", a.Instance, b.Instance)
	}
	if inst, ok := Owner(a.Mark("room")); !ok || inst != a.Instance || strings.Contains(a.Mark("room"), "key one") {
		t.Errorf("marked %q", a.Mark("room"))
	}
}

func TestIDFromURI(t *testing.T) {
	cases := map[string]int{
		"/api/admin/configuration/v1/conference/42/":                    42,
		"https://mgr.example.com/api/admin/configuration/v1/device/7/":  7,
		"/api/admin/configuration/v1/end_user/9":                        9,
		"http://127.0.0.1:1/api/admin/configuration/v1/conference/3/?x": 3,
		"/api/admin/configuration/v1/conference/":                       0,
		"/api/admin/configuration/v1/conference/abc/":                   0,
		"/other/conference/42/":                                         0,
		"":                                                              0,
		"https://host":                                                  0,
	}
	for uri, want := range cases {
		got, err := IDFromURI(uri)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("IDFromURI(%q) = %d, %v; want %d", uri, got, err, want)
		}
	}
	if got, _ := IDFromURI(Devices.URI(12)); got != 12 {
		t.Errorf("round trip = %d", got)
	}
}

func TestDecodeErrorBody(t *testing.T) {
	cases := []struct {
		body  string
		kind  error
		field string
	}{
		{`{"conference": {"name": ["Conference with this Name already exists."]}}`, ErrDuplicate, "name"},
		{`{"alias": ["Conference alias with this Alias already exists."], "description": ["too long"]}`, ErrDuplicate, "alias"},
		{`{"device": {"description": ["too long"], "alias": ["Device with this Alias already exists."]}}`, ErrDuplicate, "alias"},
		{`{"conference": {"max_callrate_in": ["Ensure this value is greater than or equal to 128."]}}`, ErrInvalid, "max_callrate_in"},
		{`{"pin": "PIN must be numeric"}`, ErrInvalid, "pin"},
		{`{"error": "Bad JSON"}`, ErrInvalid, ""},
		{`{"__all__": ["already exists somewhere"]}`, ErrDuplicate, ""},
		{`<html>Bad Request</html>`, ErrInvalid, ""},
		{``, ErrInvalid, ""},
	}
	for _, tc := range cases {
		e := classify("create conference", 400, "", []byte(tc.body), time.Now())
		if e.Kind != tc.kind || e.Field != tc.field {
			t.Errorf("%s: kind %v field %q; want %v %q", tc.body, e.Kind, e.Field, tc.kind, tc.field)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0.25":                          250 * time.Millisecond,
		"-3":                            0,
		"soon":                          0,
		"86400":                         maxRetryAfter,
		"Wed, 02 Dec 2026 01:00:30 GMT": 30 * time.Second,
		"Wed, 02 Dec 2026 00:59:00 GMT": 0,
		"NaN":                           0,
	}
	for v, want := range cases {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestLimiterSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(60, 3) // one a second, three at once
	l.now = func() time.Time { return now }
	var waits []time.Duration
	for range 5 {
		waits = append(waits, l.reserve())
	}
	want := []time.Duration{0, 0, 0, time.Second, 2 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
	now = now.Add(10 * time.Second) // the bucket refills, to its burst only
	l.Pause(now.Add(5 * time.Second))
	for i, w := range []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second, 6 * time.Second} {
		if got := l.reserve(); got != w {
			t.Errorf("after pause, wait %d = %s, want %s", i, got, w)
		}
	}
	unlimited := NewLimiter(0, 0)
	unlimited.now = func() time.Time { return now }
	if w := unlimited.reserve(); w != 0 {
		t.Errorf("unlimited waits %s", w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); err == nil {
		t.Error("Wait with an ended context returned nil")
	}
}
