package ldaptest

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestStartRestart(t *testing.T) {
	s := Start(t, Options{})
	count := func() int {
		c := s.Conn()
		defer c.Close()
		res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Entries)
	}
	if n := count(); n != 3 {
		t.Fatalf("bootstrap has %d entries, want 3", n)
	}
	s.Add("dn: uid=x,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: x\ncn: X\nsn: X\n")
	s.Restart()
	if n := count(); n != 4 {
		t.Fatalf("after add and restart: %d entries, want 4", n)
	}
	s.Kill()
	if s.PID() != 0 {
		t.Fatal("still running after Kill")
	}
	if _, err := ldap.DialURL(s.URL); err == nil {
		t.Fatal("dial succeeded after Kill")
	}
}
