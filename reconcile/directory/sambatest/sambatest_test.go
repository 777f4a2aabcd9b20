package sambatest

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestStart: the DC answers as AD does where roster relies on it: the root DSE's
// highestCommittedUSN and dsServiceName, DirSync for Administrator and not for the reader;
// a restart keeps the address, the invocationId and the USNs.
func TestStart(t *testing.T) {
	s := Start(t)
	admin := s.Admin(t)
	res, err := admin.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN", "dsServiceName", "defaultNamingContext"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("root dse: %v", err)
	}
	e := res.Entries[0]
	if e.GetAttributeValue("highestCommittedUSN") == "" || e.GetAttributeValue("dsServiceName") == "" || e.GetAttributeValue("defaultNamingContext") != BaseDN {
		t.Errorf("root dse: %q %q %q", e.GetAttributeValue("highestCommittedUSN"), e.GetAttributeValue("dsServiceName"), e.GetAttributeValue("defaultNamingContext"))
	}
	sr := ldap.NewSearchRequest(BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"objectGUID"}, nil)
	if _, err := admin.DirSync(sr, 0, 0, nil); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Errorf("dirsync as administrator: %v", err)
	}
	reader, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := reader.Bind(ReaderBind, ReaderPassword); err != nil {
		t.Fatal(err)
	}
	sr = ldap.NewSearchRequest(BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"objectGUID"}, nil)
	if _, err := reader.DirSync(sr, 0, 0, nil); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("dirsync as the reader: %v, want insufficientAccessRights", err)
	}

	mark := func() string {
		c := s.Admin(t)
		res, err := c.Search(ldap.NewSearchRequest(e.GetAttributeValue("dsServiceName"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"invocationId"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("invocationId: %v", err)
		}
		dse, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"highestCommittedUSN"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x %s", res.Entries[0].GetRawAttributeValue("invocationId"), dse.Entries[0].GetAttributeValue("highestCommittedUSN"))
	}
	before, url := mark(), s.URL
	s.Restart()
	if after := mark(); after != before || s.URL != url {
		t.Errorf("after a restart: %s at %s, want %s at %s", after, s.URL, before, url)
	}
}
