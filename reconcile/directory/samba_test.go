package directory_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
)

// TestDirSyncSamba runs DirSync against a real Samba AD DC, when one is named: it is not
// part of make test (provisioning a DC takes about a minute and needs root), but an
// opt-in check of what the loopback responder of dirsync_test.go imitates:
//
//	apt-get install samba samba-ad-dc samba-ad-provision
//	samba-tool domain provision --targetdir=/tmp/dc --realm=AD.EXAMPLE.TEST --domain=ADEX \
//	  --server-role=dc --dns-backend=NONE --adminpass='Adm1n-Secret!' \
//	  --option="interfaces=lo" --option="bind interfaces only=yes"
//	# add "ldap server require strong auth = no" to [global] of /tmp/dc/etc/smb.conf
//	samba -i -s /tmp/dc/etc/smb.conf &
//	ROSTER_SAMBA_URL=ldap://127.0.0.1 ROSTER_SAMBA_BASE=DC=ad,DC=example,DC=test \
//	  ROSTER_SAMBA_BIND=Administrator@ad.example.test ROSTER_SAMBA_PASSWORD='Adm1n-Secret!' \
//	  go test ./reconcile/directory -run TestDirSyncSamba -v
func TestDirSyncSamba(t *testing.T) {
	url, base := os.Getenv("ROSTER_SAMBA_URL"), os.Getenv("ROSTER_SAMBA_BASE")
	if url == "" {
		t.Skip("set ROSTER_SAMBA_URL (and _BASE, _BIND, _PASSWORD) to check DirSync against a Samba AD DC")
	}
	bind, pw := os.Getenv("ROSTER_SAMBA_BIND"), os.Getenv("ROSTER_SAMBA_PASSWORD")
	c, err := ldap.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(bind, pw); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprint(time.Now().Unix() % 100000) // sAMAccountNames are unique in the domain
	ou := fmt.Sprintf("OU=Roster%s,%s", tag, base)
	other := "OU=Other," + ou
	staff := "OU=Staff," + ou
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, dn := range []string{ou, staff, other} {
		a := ldap.NewAddRequest(dn, nil)
		a.Attribute("objectClass", []string{"organizationalUnit"})
		must(c.Add(a))
	}
	t.Cleanup(func() {
		_, _ = c.Search(ldap.NewSearchRequest(ou, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
		d := ldap.NewDelRequest(ou, []ldap.Control{ldap.NewControlSubtreeDelete()})
		_ = c.Del(d)
	})
	addUser := func(name string, uac string) {
		a := ldap.NewAddRequest("CN="+name+","+staff, nil)
		a.Attribute("objectClass", []string{"user"})
		a.Attribute("sAMAccountName", []string{strings.ToLower(name) + tag})
		a.Attribute("mail", []string{strings.ToLower(name) + "@ad.example.test"})
		a.Attribute("userAccountControl", []string{uac})
		must(c.Add(a))
	}
	for i := 1; i <= 6; i++ {
		addUser(fmt.Sprintf("User%d", i), "544") // normal account, no password required
	}
	d, err := directory.NewLDAP(directory.Config{URL: url, BaseDN: base, BindDN: bind, BindPassword: pw, Timeout: 20 * time.Second})
	must(err)
	defer d.Close()
	sy := d.(directory.Syncer)
	ctx := context.Background()
	mode, err := sy.Mode(ctx)
	if err != nil || mode != directory.ModeDirSync {
		t.Fatalf("mode %q, %v", mode, err)
	}
	req := directory.Request{SearchDN: strings.TrimSuffix(staff, ","+base), Filter: "(&(objectClass=user)(mail=*))",
		DisabledFilter: "(userAccountControl:1.2.840.113556.1.4.803:=2)", KeyAttribute: "sAMAccountName",
		Attributes: []string{"cn", "mail", "objectGUID"}}
	t0 := time.Now()
	cookie, err := sy.Baseline(ctx, req)
	must(err)
	t.Logf("baseline: %v, cookie %d bytes", time.Since(t0), len(cookie))
	guid := map[string]string{} // sAMAccountName → UUID, from a full read
	must(d.Search(ctx, req, func(e directory.Entry) error {
		guid[strings.TrimSuffix(e.Key, tag)] = fmt.Sprintf("%x", e.Attrs["objectGUID"][0])
		return nil
	}))
	if len(guid) != 6 {
		t.Fatalf("full read: %d users", len(guid))
	}
	res, err := sy.Changes(ctx, req, cookie, nil)
	must(err)
	if res.Refresh || len(res.Changes) != 0 {
		t.Fatalf("no change: refresh %v, %d changes", res.Refresh, len(res.Changes))
	}
	cookie = res.Cookie

	mod := func(dn, attr, val string) {
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
	addUser("New7", "544")
	res, err = sy.Changes(ctx, req, cookie, nil)
	must(err)
	got := map[string]string{}
	for _, ch := range res.Changes {
		if ch.Entry == nil {
			got[ch.UUID] = "deleted"
		} else {
			got[ch.UUID] = fmt.Sprintf("%s mail=%v disabled=%v", ch.Entry.DN, ch.Entry.Attrs["mail"], ch.Entry.Disabled)
		}
		t.Logf("change %s: %s", ch.UUID, got[ch.UUID])
	}
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
	}
	if len(got) != 7 {
		t.Errorf("%d changes, want 7 (6 users and New7)", len(got))
	}
	res2, err := sy.Changes(ctx, req, res.Cookie, nil)
	must(err)
	if len(res2.Changes) != 0 {
		t.Errorf("after: %d changes", len(res2.Changes))
	}
	// A cookie the DC cannot use means a full read, not an error.
	bad, err := sy.Changes(ctx, req, []byte("roster-dirsync:not a dirsync cookie"), nil)
	if err != nil || !bad.Refresh {
		t.Errorf("unusable cookie: refresh %v, %v", bad.Refresh, err)
	}
}
