package directory_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/sambatest"
)

// TestSambaAD runs both Active Directory modes against a real Samba AD DC (sambatest):
// DirSync as Administrator (who holds Replicating Directory Changes), uSNChanged as an
// ordinary account (which DirSync refuses), each through the same changes: modify, delete,
// move out of the base, disable (userAccountControl), rename and modify in one cycle, leave
// the filter, add; then a cookie the DC cannot use. One DC serves both (a start costs ~3 s
// once the domain is provisioned, ~15 s the first time on a machine).
func TestSambaAD(t *testing.T) {
	s := sambatest.Start(t)
	for _, tc := range []struct {
		name, bind, password, mode string
		// bad is a cookie of the mode the DC cannot use: a full read follows.
		bad string
	}{
		{"dirsync", sambatest.AdminBind, sambatest.AdminPassword, directory.ModeDirSync, "roster-dirsync:not a dirsync cookie"},
		{"usn", sambatest.ReaderBind, sambatest.ReaderPassword, directory.ModeUSN, "roster-usn:" + strings.Repeat("ab", 16) + ";1"}, // another DC
	} {
		t.Run(tc.name, func(t *testing.T) {
			sambaScenario(t, s, tc.bind, tc.password, tc.mode, []byte(tc.bad))
		})
	}
}

func sambaScenario(t *testing.T, s *sambatest.Server, bind, password, wantMode string, bad []byte) {
	c := s.Admin(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tag := wantMode // sAMAccountNames are unique in the domain
	ou := "OU=Roster-" + tag + "," + sambatest.BaseDN
	staff, other := "OU=Staff,"+ou, "OU=Other,"+ou
	for _, dn := range []string{ou, staff, other} {
		a := ldap.NewAddRequest(dn, nil)
		a.Attribute("objectClass", []string{"organizationalUnit"})
		must(c.Add(a))
	}
	addUser := func(name string) {
		a := ldap.NewAddRequest("CN="+name+","+staff, nil)
		a.Attribute("objectClass", []string{"user"})
		a.Attribute("sAMAccountName", []string{strings.ToLower(name) + tag})
		a.Attribute("mail", []string{strings.ToLower(name) + "@ad.example.test"})
		a.Attribute("userAccountControl", []string{"544"}) // normal account, no password required
		must(c.Add(a))
	}
	for i := 1; i <= 6; i++ {
		addUser(fmt.Sprintf("User%d", i))
	}
	d, err := directory.NewLDAP(directory.Config{URL: s.URL, BaseDN: sambatest.BaseDN, BindDN: bind, BindPassword: password, Timeout: 20 * time.Second})
	must(err)
	defer d.Close()
	sy := d.(directory.Syncer)
	ctx := context.Background()
	mode, err := sy.Mode(ctx)
	if err != nil || mode != wantMode {
		t.Fatalf("mode %q, %v; want %q", mode, err, wantMode)
	}
	req := directory.Request{SearchDN: strings.TrimSuffix(staff, ","+sambatest.BaseDN), Filter: "(&(objectClass=user)(mail=*))",
		DisabledFilter: "(userAccountControl:1.2.840.113556.1.4.803:=2)", KeyAttribute: "sAMAccountName",
		Attributes: []string{"cn", "mail", "objectGUID"}}
	t0 := time.Now()
	cookie, err := sy.Baseline(ctx, req)
	must(err)
	t.Logf("baseline: %v, cookie %d bytes", time.Since(t0), len(cookie))
	guid := map[string]string{} // sAMAccountName → UUID, from a full read
	known := map[string]bool{}
	must(d.Search(ctx, req, func(e directory.Entry) error {
		u := hex.EncodeToString([]byte(e.Attrs["objectGUID"][0]))
		guid[strings.TrimSuffix(e.Key, tag)] = u
		known[u] = true
		return nil
	}))
	if len(guid) != 6 {
		t.Fatalf("full read: %d users", len(guid))
	}
	// Nothing changed under the base (the DC may have written elsewhere, as logon times).
	res, err := sy.Changes(ctx, req, cookie, maps.Keys(known))
	must(err)
	if res.Refresh || len(relevant(res.Changes, known)) != 0 {
		t.Fatalf("no change: refresh %v, changes %v", res.Refresh, relevant(res.Changes, known))
	}
	cookie = res.Cookie

	mod := func(dn, attr, val string) {
		t.Helper()
		m := ldap.NewModifyRequest(dn, nil)
		m.Replace(attr, []string{val})
		must(c.Modify(m))
	}
	mod("CN=User1,"+staff, "mail", "first@ad.example.test")                               // modify
	must(c.Del(ldap.NewDelRequest("CN=User2,"+staff, nil)))                               // delete
	must(c.ModifyDN(ldap.NewModifyDNRequest("CN=User3,"+staff, "CN=User3", true, other))) // move out
	mod("CN=User4,"+staff, "userAccountControl", "546")                                   // disable
	must(c.ModifyDN(ldap.NewModifyDNRequest("CN=User5,"+staff, "CN=Renamed5", true, ""))) // rename
	mod("CN=Renamed5,"+staff, "mail", "twice@ad.example.test")                            // and modify
	m := ldap.NewModifyRequest("CN=User6,"+staff, nil)                                    // leave the filter
	m.Delete("mail", nil)
	must(c.Modify(m))
	addUser("New7")
	res, err = sy.Changes(ctx, req, cookie, maps.Keys(known))
	must(err)
	if res.Refresh {
		t.Fatal("changes: refresh")
	}
	got := relevant(res.Changes, known)
	want := map[string]string{
		guid["user1"]: "CN=User1," + staff + " mail=[first@ad.example.test] disabled=false",
		guid["user2"]: "deleted",
		guid["user3"]: "deleted",
		guid["user4"]: "CN=User4," + staff + " mail=[user4@ad.example.test] disabled=true",
		guid["user5"]: "CN=Renamed5," + staff + " mail=[twice@ad.example.test] disabled=false",
		guid["user6"]: "deleted",
	}
	for u, w := range want {
		if !strings.EqualFold(got[u], w) {
			t.Errorf("%s: got %q, want %q", u, got[u], w)
		}
		delete(got, u)
	}
	if len(got) != 1 {
		t.Errorf("other changes %v, want New7 alone", got)
	}
	for u, g := range got {
		if !strings.EqualFold(g, "CN=New7,"+staff+" mail=[new7@ad.example.test] disabled=false") {
			t.Errorf("%s: %q, want New7", u, g)
		}
	}
	res2, err := sy.Changes(ctx, req, res.Cookie, maps.Keys(known))
	must(err)
	if r := relevant(res2.Changes, known); res2.Refresh || len(r) != 0 {
		t.Errorf("after: refresh %v, changes %v", res2.Refresh, r)
	}
	// A cookie the DC cannot use means a full read, not an error.
	rej, err := sy.Changes(ctx, req, bad, maps.Keys(known))
	if err != nil || !rej.Refresh {
		t.Errorf("unusable cookie: refresh %v, %v", rej.Refresh, err)
	}
}

// relevant describes the changes a caller acts on: entries, and deletions of ids it knows
// (DirSync also reports objects changed elsewhere in the naming context as deletions of ids
// the caller never had, which it drops).
func relevant(changes []directory.Change, known map[string]bool) map[string]string {
	got := map[string]string{}
	for _, ch := range changes {
		switch {
		case ch.Entry != nil:
			got[ch.UUID] = fmt.Sprintf("%s mail=%v disabled=%v", ch.Entry.DN, ch.Entry.Attrs["mail"], ch.Entry.Disabled)
		case known[ch.UUID]:
			got[ch.UUID] = "deleted"
		}
	}
	return got
}
