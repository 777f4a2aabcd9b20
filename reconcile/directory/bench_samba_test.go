package directory_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"iter"
	"maps"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/sambatest"
)

// BenchmarkSambaAD measures the two Active Directory modes against a real Samba AD DC
// holding ROSTER_BENCH_SAMBA_N users (default 5,000; added over LDAP, ~2-4 ms each): a
// full read, Changes when nothing changed (usn: one root DSE read; dirsync: one DirSync
// pass), and Changes after one modify (usn: the uSNChanged search and the present phase
// over every user, and without the present phase; dirsync: one pass and the changed object
// read again). The modify itself is outside the timer but inside samba's CPU. It reports this
// process's CPU and samba's per operation. Set ROSTER_BENCH_SAMBA=1.
func BenchmarkSambaAD(b *testing.B) {
	n := benchSize(b, "ROSTER_BENCH_SAMBA", "adds the users to a Samba AD DC over LDAP", "ROSTER_BENCH_SAMBA_N", 5_000)
	s := sambatest.Start(b)
	c := s.Admin(b)
	ou := "OU=Bench," + sambatest.BaseDN
	a := ldap.NewAddRequest(ou, nil)
	a.Attribute("objectClass", []string{"organizationalUnit"})
	if err := c.Add(a); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range n {
		a := ldap.NewAddRequest(fmt.Sprintf("CN=u%06d,%s", i, ou), nil)
		a.Attribute("objectClass", []string{"user"})
		a.Attribute("sAMAccountName", []string{fmt.Sprintf("u%06d", i)})
		a.Attribute("mail", []string{fmt.Sprintf("u%06d@ad.example.test", i)})
		a.Attribute("givenName", []string{"Given"})
		a.Attribute("sn", []string{fmt.Sprintf("Sn%d", i)})
		a.Attribute("userAccountControl", []string{"544"})
		if err := c.Add(a); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d users added in %v", n, time.Since(t0).Round(time.Millisecond))
	req := directory.Request{SearchDN: "OU=Bench", Filter: "(&(objectClass=user)(mail=*))",
		DisabledFilter: "(userAccountControl:1.2.840.113556.1.4.803:=2)", KeyAttribute: "sAMAccountName",
		Attributes: []string{"cn", "mail", "givenName", "sn", "objectGUID"}}
	ctx := context.Background()
	for _, mode := range []struct{ name, bind, pw string }{
		{directory.ModeUSN, sambatest.ReaderBind, sambatest.ReaderPassword},
		{directory.ModeDirSync, sambatest.AdminBind, sambatest.AdminPassword},
	} {
		d, err := directory.NewLDAP(directory.Config{URL: s.URL, BaseDN: sambatest.BaseDN, BindDN: mode.bind, BindPassword: mode.pw, Timeout: 60 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		sy := d.(directory.Syncer)
		if m, err := sy.Mode(ctx); err != nil || m != mode.name {
			b.Fatalf("mode %q, %v", m, err)
		}
		known := map[string]bool{}
		if err := d.Search(ctx, req, func(e directory.Entry) error {
			known[hex.EncodeToString([]byte(e.Attrs["objectGUID"][0]))] = true
			return nil
		}); err != nil || len(known) != n {
			b.Fatalf("full read: %d of %d, %v", len(known), n, err)
		}
		cookie, err := sy.Baseline(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		measure := func(name string, op func(b *testing.B)) { measureCPU(b, mode.name+"/"+name, "samba", s.PID(), op) }
		measure("full-read", func(b *testing.B) {
			for b.Loop() {
				if err := d.Search(ctx, req, func(directory.Entry) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
		measure("quiet", func(b *testing.B) {
			for b.Loop() {
				res, err := sy.Changes(ctx, req, cookie, maps.Keys(known))
				if err != nil || res.Refresh {
					b.Fatalf("quiet: %v %v", res.Refresh, err)
				}
				cookie = res.Cookie
			}
		})
		i := 0
		oneModify := func(known iter.Seq[string]) func(b *testing.B) {
			return func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					// a value of its own: a modify to the value an attribute has changes nothing
					val := fmt.Sprintf("Changed-%s-%d", mode.name, i)
					m := ldap.NewModifyRequest(fmt.Sprintf("CN=u%06d,%s", i%n, ou), nil)
					m.Replace("sn", []string{val})
					i++
					if err := c.Modify(m); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					res, err := sy.Changes(ctx, req, cookie, known)
					seen := false
					for _, ch := range res.Changes {
						seen = seen || ch.Entry != nil && ch.Entry.Attrs["sn"][0] == val
					}
					if err != nil || res.Refresh || !seen {
						b.Fatalf("one modify: refresh %v, %d changes without it, %v", res.Refresh, len(res.Changes), err)
					}
					cookie = res.Cookie
				}
			}
		}
		measure("one-modify", oneModify(maps.Keys(known)))
		if mode.name == directory.ModeUSN {
			measure("one-modify-no-present-phase", oneModify(nil))
		}
		d.Close()
	}
}
