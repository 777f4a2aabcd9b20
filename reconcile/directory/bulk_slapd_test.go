package directory_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// specialLDIF adds what generated people lack: multi-valued and binary attributes, an
// attribute with options, and a referral object (a continuation reference in subtree
// searches of the base).
const specialLDIF = `dn: ou=remote,dc=example,dc=com
objectClass: referral
objectClass: extensibleObject
ou: remote
ref: ldap://other.example.com/ou=remote,dc=example,dc=com

dn: uid=zoe,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: zoe
cn:: Wm/DqyDDhW5nc3Ryw7Zt
cn: Zoe Angstrom
sn: Ångström
mail: zoe@example.com
mail: zoe.alias@example.com
mail: z@example.com
employeeType: disabled
jpegPhoto:: AAECA/8Q/w==
userCertificate;binary:: MAMCAQU=
`

func specialServer(t *testing.T, n int, opts ldaptest.Options) *ldaptest.Server {
	t.Helper()
	opts.LDIF = append(people(t, n), "\n"+specialLDIF...)
	return ldaptest.Start(t, opts)
}

// TestBulkReaderCapturedSlapd captures slapd's byte streams of paged searches and decodes
// them page by page with the bulk reader and with go-ldap: the same entries, references
// and cookies, every page accepted by both.
func TestBulkReaderCapturedSlapd(t *testing.T) {
	s := specialServer(t, 300, ldaptest.Options{})
	addr := strings.TrimPrefix(s.URL, "ldap://")
	tests := []struct {
		name, base, filter string
		attrs              []string
		entries, refs      int
	}{
		{"projected", s.BaseDN, "(objectClass=inetOrgPerson)", []string{"uid", "cn", "mail", "jpegPhoto", "userCertificate;binary", "entryUUID"}, 301, 1},
		{"all attributes and operational", s.BaseDN, "(objectClass=*)", []string{"*", "+"}, 304, 1},
		{"dns only", "ou=people," + s.BaseDN, "(objectClass=*)", []string{"1.1"}, 302, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pages, err := directory.CapturePages(addr, tt.base, tt.filter, tt.attrs, 37)
			if err != nil {
				t.Fatal(err)
			}
			bulk := directory.ReadBulkPages(bytes.Join(pages, nil), len(pages))
			oracle := goLDAPPages(pages)
			if err := agree(bulk, oracle); err != nil {
				t.Fatal(err)
			}
			entries, refs := 0, 0
			for k, p := range bulk {
				if p.Err != nil {
					t.Fatalf("page %d: %v", k, p.Err)
				}
				entries += len(p.Entries)
				refs += len(p.Refs)
			}
			if len(bulk) != len(pages) || entries != tt.entries || refs != tt.refs || len(pages) < 8 {
				t.Fatalf("%d pages of %d decoded, %d entries, %d references; want %d and %d", len(bulk), len(pages), entries, refs, tt.entries, tt.refs)
			}
		})
	}
}

// TestLDAPReadersAgree runs the same searches through the bulk reader and through go-ldap
// on one slapd (plain, ldaps and StartTLS; 26 pages; projected, all, DN-only; disabled
// filters evaluated by the client and by the server) and requires identical entries.
func TestLDAPReadersAgree(t *testing.T) {
	s := specialServer(t, 2600, ldaptest.Options{})
	reqs := map[string]directory.Request{
		"people":   peopleReq,
		"all":      {Filter: "(|(uid=zoe)(uid=u1*))", KeyAttribute: "entryUUID"},
		"dns only": {SearchDN: "ou=people", Attributes: []string{}},
		"server-side disabled filter": {SearchDN: "ou=people", Filter: "(objectClass=inetOrgPerson)", KeyAttribute: "uid",
			DisabledFilter: "(employeeType:caseExactMatch:=disabled)", Attributes: []string{"mail", "jpegPhoto", "userCertificate"}},
	}
	conns := []struct {
		name     string
		url      string
		startTLS bool
	}{{"ldap", s.URL, false}, {"ldaps", s.LDAPSURL, false}, {"starttls", s.URL, true}}
	for _, c := range conns {
		for name, req := range reqs {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				cfg := adminConfig(s)
				cfg.URL, cfg.StartTLS, cfg.CAFile, cfg.PageSize = c.url, c.startTLS, s.CAFile, 100
				got, err := collect(newLDAP(t, cfg), req)
				if err != nil {
					t.Fatal(err)
				}
				cfg.GoLDAPReader = true
				want, err := collect(newLDAP(t, cfg), req)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) < 2 || !reflect.DeepEqual(got, want) {
					t.Fatalf("bulk reader %d entries, go-ldap %d; first difference: %s", len(got), len(want), firstDiff(got, want))
				}
			})
		}
	}
}

func firstDiff(a, b []directory.Entry) string {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return "bulk " + strings.TrimSpace(strings.ReplaceAll(sprintEntry(a[i]), "\n", " ")) + " go-ldap " + sprintEntry(b[i])
		}
	}
	return "lengths"
}

func sprintEntry(e directory.Entry) string {
	var b strings.Builder
	b.WriteString(e.DN + " key=" + e.Key)
	for k, v := range e.Attrs {
		b.WriteString(" " + k + "=" + strings.Join(v, "|"))
	}
	return b.String()
}

// TestLDAPReadersFailAlike checks that both readers fail closed, with the same error, on
// what the server refuses: size limit, referral result, missing base, bad credentials.
func TestLDAPReadersFailAlike(t *testing.T) {
	s := specialServer(t, 300, ldaptest.Options{SizeLimit: 100})
	reader := directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.ReaderDN, BindPassword: s.ReaderPassword, PageSize: 30}
	tests := []struct {
		name    string
		cfg     directory.Config
		req     directory.Request
		wantErr string
	}{
		{"size limit", reader, peopleReq, `after 100 entries in 3 pages: LDAP Result Code 4 "Size Limit Exceeded"`},
		{"referral", reader, directory.Request{SearchDN: "ou=remote"}, `LDAP Result Code 10 "Referral"`},
		{"no such base", reader, directory.Request{SearchDN: "ou=nowhere"}, `LDAP Result Code 32 "No Such Object"`},
		{"bad password", directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.ReaderDN, BindPassword: "wrong-pw-123"}, peopleReq, `bind as "cn=reader,dc=example,dc=com": LDAP Result Code 49 "Invalid Credentials"`},
		{"key attribute missing", reader, directory.Request{Filter: "(|(uid=zoe)(uid=u1))", KeyAttribute: "jpegPhoto"}, `entry "uid=u1,ou=people,dc=example,dc=com" has no key attribute "jpegPhoto"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs [2]error
			for i, goLDAP := range []bool{false, true} {
				cfg := tt.cfg
				cfg.GoLDAPReader = goLDAP
				_, errs[i] = collect(newLDAP(t, cfg), tt.req)
				if !errors.Is(errs[i], directory.ErrFailClosed) || !strings.Contains(errs[i].Error(), tt.wantErr) {
					t.Fatalf("go-ldap %v: err = %v, want fail closed with %q", goLDAP, errs[i], tt.wantErr)
				}
			}
			if errs[0].Error() != errs[1].Error() {
				t.Fatalf("errors differ:\nbulk    %v\ngo-ldap %v", errs[0], errs[1])
			}
		})
	}
}

// TestLDAPReadersFaults kills or stops slapd inside a search, and cancels one, through
// either reader: the search fails closed and the next one (after a restart) reads all.
func TestLDAPReadersFaults(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 3000)})
	for _, goLDAP := range []bool{false, true} {
		name := map[bool]string{false: "bulk", true: "go-ldap"}[goLDAP]
		cfg := adminConfig(s)
		cfg.PageSize, cfg.Timeout, cfg.GoLDAPReader = 500, 700*time.Millisecond, goLDAP
		d := newLDAP(t, cfg)
		search := func(at int, fault func()) (int, error) {
			n := 0
			err := d.Search(context.Background(), peopleReq, func(directory.Entry) error {
				if n++; n == at {
					fault()
				}
				return nil
			})
			return n, err
		}
		t.Run(name+"/killed mid-page", func(t *testing.T) {
			n, err := search(700, s.Kill)
			if !errors.Is(err, directory.ErrFailClosed) || n >= 3000 {
				t.Fatalf("err = %v after %d entries, want fail closed", err, n)
			}
			s.Restart()
			if n, err := search(0, nil); err != nil || n != 3000 {
				t.Fatalf("after restart: %d entries, err %v", n, err)
			}
		})
		t.Run(name+"/stopped mid-search", func(t *testing.T) {
			pid := s.PID()
			start := time.Now()
			n, err := search(1200, func() { syscall.Kill(pid, syscall.SIGSTOP) })
			syscall.Kill(pid, syscall.SIGCONT)
			if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "timed out") || n >= 3000 {
				t.Fatalf("err = %v after %d entries, want a fail-closed timeout", err, n)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("timeout took %v", el)
			}
			if n, err := search(0, nil); err != nil || n != 3000 {
				t.Fatalf("after SIGCONT: %d entries, err %v", n, err)
			}
		})
		t.Run(name+"/cancelled between pages", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			n := 0
			err := d.Search(ctx, peopleReq, func(directory.Entry) error {
				if n++; n == 500 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || !errors.Is(err, directory.ErrFailClosed) || n != 500 {
				t.Fatalf("err = %v after %d entries, want fail closed with context.Canceled after 500", err, n)
			}
		})
	}
}
