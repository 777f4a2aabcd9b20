package reconcile

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/sambatest"
	"github.com/roster-dev/roster/schema"
)

// adLayout holds the harness's people as Active Directory does: inetOrgPerson objects
// named CN=<uid> (cn is AD's RDN, so it is the uid, not "given sn") under OU=People of ou,
// or OU=Gone when moved out of the search base.
func adLayout(ou string) ldapLayout {
	dn := func(p syncPerson) string {
		sub := "OU=People,"
		if p.out {
			sub = "OU=Gone,"
		}
		return "CN=" + p.uid + "," + sub + ou
	}
	return ldapLayout{dn: dn, rdn: func(p syncPerson) string { return "CN=" + p.uid },
		attrs: func(p syncPerson) map[string][]string {
			a := slapdAttrs(p)
			delete(a, "cn")
			a["uid"] = []string{p.uid}
			return a
		}}
}

// TestPropertyIncrementalEqualsFullSamba is TestPropertyIncrementalEqualsFullSlapd against
// a real Samba AD DC: the same random histories (add, modify, rename, delete, disable /
// enable, a move out of the search base and back, an entry changed twice within one cycle,
// daemon restarts, cycles killed before their commit, the DC restarted: its cookies still
// hold), read with DirSync by Administrator and by uSNChanged by an ordinary account, and
// every incremental plan equals the plan of a full read.
func TestPropertyIncrementalEqualsFullSamba(t *testing.T) {
	seeds, cycles := 2, 8
	if os.Getenv("ROSTER_BENCH") != "" {
		seeds, cycles = 6, 25
	}
	srv := sambatest.Start(t)
	for _, tc := range []struct{ protocol, bind, password string }{
		{directory.ModeUSN, sambatest.ReaderBind, sambatest.ReaderPassword},
		{directory.ModeDirSync, sambatest.AdminBind, sambatest.AdminPassword},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			incremental, restarts := 0, 0
			for seed := int64(1); seed <= int64(seeds); seed++ {
				ou := fmt.Sprintf("OU=H%d-%s,%s", seed, tc.protocol, sambatest.BaseDN)
				admin := srv.Admin(t)
				for _, dn := range []string{ou, "OU=People," + ou, "OU=Gone," + ou} {
					a := ldap.NewAddRequest(dn, nil)
					a.Attribute("objectClass", []string{"organizationalUnit"})
					if err := admin.Add(a); err != nil {
						t.Fatalf("add %s: %v", dn, err)
					}
				}
				incremental += ldapHistory(t, seed, cycles, historyDirectory{
					conn: func() *ldap.Conn { return srv.Admin(t) }, restart: func() { restarts++; srv.Restart() },
					layout: adLayout(ou), searchDN: fmt.Sprintf("OU=People,OU=H%d-%s", seed, tc.protocol), protocol: tc.protocol,
					cfg: schema.DirConfig{URL: srv.URL, BaseDN: sambatest.BaseDN, BindDN: tc.bind}, password: tc.password})
			}
			t.Logf("%d of %d cycles incremental, %d DC restarts", incremental, seeds*cycles, restarts)
			if incremental < seeds*cycles/2 {
				t.Errorf("only %d of %d cycles were incremental", incremental, seeds*cycles)
			}
		})
	}
}
