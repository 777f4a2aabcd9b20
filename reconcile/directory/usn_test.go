package directory

import (
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUSNLoopback: an account without DirSync rights on the fake AD reads by uSNChanged,
// deletions, moves out and objects leaving the filter found by the present phase.
func TestUSNLoopback(t *testing.T) {
	f := startFakeAD(t)
	f.noDirSync = true
	d, sy := openStaff(t, f)
	ctx := context.Background()
	if mode, err := sy.Mode(ctx); err != nil || mode != ModeUSN {
		t.Fatalf("mode %q, %v; want usn for an account DirSync refuses", mode, err)
	}
	cookie, err := sy.Baseline(ctx, adReq)
	if err != nil {
		t.Fatal(err)
	}
	if want := "roster-usn:" + hex.EncodeToString(f.invocation[:]) + ";8"; string(cookie) != want {
		t.Fatalf("baseline cookie %q, want %q", cookie, want)
	}
	// The full read after the baseline: what the caller then knows.
	known := map[string]bool{}
	req := adReq
	req.Attributes = append(slices.Clone(req.Attributes), "objectGUID")
	if err := d.Search(ctx, req, func(e Entry) error {
		known[hex.EncodeToString([]byte(e.Attrs["objectGUID"][0]))] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(known) != 7 {
		t.Fatalf("full read: %d entries", len(known))
	}
	f.mu.Lock()
	f.filters = nil
	f.mu.Unlock()
	searched := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := f.filters
		f.filters = nil
		return s
	}

	// A quiet DC: its highestCommittedUSN did not move, so nothing is searched.
	res, err := sy.Changes(ctx, adReq, cookie, maps.Keys(known))
	if err != nil || res.Refresh || len(res.Changes) != 0 || string(res.Cookie) != string(cookie) {
		t.Fatalf("quiet: %d changes, refresh %v, cookie %q, %v", len(res.Changes), res.Refresh, res.Cookie, err)
	}
	if s := searched(); len(s) != 0 {
		t.Errorf("a quiet DC was searched: %q", s)
	}

	changeStaff(f)
	res, err = sy.Changes(ctx, adReq, cookie, maps.Keys(known))
	if err != nil || res.Refresh {
		t.Fatalf("changes: refresh %v, %v", res.Refresh, err)
	}
	filters := searched()
	if len(filters) != 2 || !strings.Contains(filters[0], "(uSNChanged>=9)") || strings.Contains(filters[1], "uSNChanged") {
		t.Errorf("searches %q: want the uSNChanged search from 9, then the present phase", filters)
	}
	// Outside the base is not searched, and not known: nothing to report of it.
	checkChanges(t, res.Changes, staffChanges())
	for _, c := range res.Changes {
		if c.Entry != nil && len(c.Entry.Attrs) != 2 {
			t.Errorf("%s: attributes %v, want cn and mail (objectGUID is read, not returned)", c.UUID, c.Entry.Attrs)
		}
	}
	if w := "roster-usn:" + hex.EncodeToString(f.invocation[:]) + ";17"; string(res.Cookie) != w {
		t.Errorf("cookie %q, want %q", res.Cookie, w)
	}
	cookie = res.Cookie

	// Without known ids there is no present phase: the changed entries only.
	f.put(7, "CN=User7,OU=Staff,"+f.nc, person("User7", "mail", "seven@ad.example"))
	res, err = sy.Changes(ctx, adReq, cookie, nil)
	if err != nil || res.Refresh || len(res.Changes) != 1 || res.Changes[0].UUID != guidHex(7) || res.Changes[0].Entry == nil {
		t.Errorf("nil known: %+v, %v", res, err)
	}
	if s := searched(); len(s) != 1 {
		t.Errorf("nil known: searches %q, want the uSNChanged one", s)
	}

	// The cookies a full read must follow: another DC (or a restored one), a USN that went
	// back, a cookie this package did not make.
	other := tagCookie(usnTag, []byte(strings.Repeat("ab", 16)+";17"))
	ahead := tagCookie(usnTag, []byte(hex.EncodeToString(f.invocation[:])+";999"))
	for name, c := range map[string][]byte{"other DC": other, "USN ahead of the DC": ahead,
		"malformed": []byte("roster-usn:17"), "no invocation": []byte("roster-usn:;17")} {
		res, err := sy.Changes(ctx, adReq, c, maps.Keys(known))
		if err != nil || !res.Refresh || len(res.Changes) != 0 {
			t.Errorf("%s: refresh %v, %d changes, %v", name, res.Refresh, len(res.Changes), err)
		}
	}
	if s := searched(); len(s) != 0 {
		t.Errorf("rejected cookies searched: %q", s)
	}
	// The uSNChanged mode has no persistent search.
	err = sy.Persist(ctx, adReq, cookie, nil, func(SyncResult) error { return nil })
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("persist with usn: %v", err)
	}
}

// TestUSNOtherDC: the DC answering changes its invocationId (a restore, or another DC behind
// the same name): the next read is a full one, and the baseline after it is of the new DC.
func TestUSNOtherDC(t *testing.T) {
	f := startFakeAD(t)
	f.noDirSync = true
	f.put(1, "CN=User1,OU=Staff,"+f.nc, person("User1"))
	d, err := NewLDAP(Config{URL: f.url(), BaseDN: f.nc, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sy := d.(Syncer)
	ctx := context.Background()
	cookie, err := sy.Baseline(ctx, adReq)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.invocation[15] = 2
	f.mu.Unlock()
	f.put(1, "CN=User1,OU=Staff,"+f.nc, person("User1", "mail", "changed@ad.example"))
	res, err := sy.Changes(ctx, adReq, cookie, nil)
	if err != nil || !res.Refresh {
		t.Fatalf("other DC: refresh %v, %v", res.Refresh, err)
	}
	again, err := sy.Baseline(ctx, adReq)
	if err != nil {
		t.Fatal(err)
	}
	res, err = sy.Changes(ctx, adReq, again, nil)
	if err != nil || res.Refresh || len(res.Changes) != 0 {
		t.Errorf("after the new baseline: refresh %v, %d changes, %v", res.Refresh, len(res.Changes), err)
	}
	if !strings.Contains(string(again), hex.EncodeToString(f.invocation[:])) {
		t.Errorf("new baseline %q is not of invocationId %x", again, f.invocation)
	}
}

func TestUSNCookie(t *testing.T) {
	inv := strings.Repeat("0f", 16)
	for _, tc := range []struct {
		raw string
		ok  bool
		usn int64
	}{
		{inv + ";0", true, 0},
		{inv + ";12345678901", true, 12345678901},
		{inv + ";-1", false, 0},
		{inv + ";", false, 0},
		{inv, false, 0},
		{strings.Repeat("zz", 16) + ";5", false, 0},
		{inv[2:] + ";5", false, 0},
	} {
		m, ok := parseUSNCookie([]byte(tc.raw))
		if ok != tc.ok || (ok && (m.usn != tc.usn || m.invocation != inv)) {
			t.Errorf("%q: %+v %v", tc.raw, m, ok)
		}
		if ok {
			if mode, raw, tagged := untagCookie(m.cookie()); !tagged || mode != ModeUSN || string(raw) != tc.raw {
				t.Errorf("%q round trip: %s %q %v", tc.raw, mode, raw, tagged)
			}
		}
	}
}
