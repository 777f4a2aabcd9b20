package directory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func people(t testing.TB, n int) []byte {
	var b bytes.Buffer
	if err := directory.GeneratePeople(&b, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newLDAP(t testing.TB, cfg directory.Config) directory.Directory {
	t.Helper()
	d, err := directory.NewLDAP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func adminConfig(s *ldaptest.Server) directory.Config {
	return directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.AdminDN, BindPassword: s.AdminPassword, Timeout: 10 * time.Second}
}

func collect(d directory.Directory, req directory.Request) ([]directory.Entry, error) {
	var out []directory.Entry
	err := d.Search(context.Background(), req, func(e directory.Entry) error { out = append(out, e); return nil })
	return out, err
}

var peopleReq = directory.Request{
	SearchDN: "ou=people", Filter: "(objectClass=inetOrgPerson)",
	DisabledFilter: "(employeeType=disabled)", KeyAttribute: "entryUUID",
	Attributes: []string{"uid", "CN", "givenName", "sn", "mail"},
}

// TestLDAPPagingMatchesLDIF searches 2,600 entries in pages of 1000 and checks the result
// is exactly what the LDIF implementation returns for the same data (keys, disabled flags,
// projected attributes including non-ASCII names).
func TestLDAPPagingMatchesLDIF(t *testing.T) {
	data := people(t, 2600)
	s := ldaptest.Start(t, ldaptest.Options{LDIF: data})
	logs := &syncBuffer{}
	cfg := adminConfig(s)
	cfg.PageSize = 1000
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	got, err := collect(newLDAP(t, cfg), peopleReq)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := directory.NewLDIF(data, "dc=example,dc=com")
	if err != nil {
		t.Fatal(err)
	}
	want, err := collect(ld, peopleReq)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2600 || len(want) != 2600 {
		t.Fatalf("ldap %d entries, ldif %d, want 2600", len(got), len(want))
	}
	disabled, nonASCII := 0, 0
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("entry %d differs:\nldap %+v\nldif %+v", i, got[i], want[i])
		}
		if got[i].Disabled {
			disabled++
		}
		if strings.ContainsAny(got[i].Attrs["CN"][0], "éøüÅöäçłñ") {
			nonASCII++
		}
	}
	if disabled != 52 || nonASCII == 0 {
		t.Errorf("disabled %d (want 52), non-ASCII names %d", disabled, nonASCII)
	}
	l := logs.String()
	for _, want := range []string{"pages=3", "entries=2600", "-E pr=1000/noprompt", "-D cn=admin,dc=example,dc=com -W", "'(objectClass=inetOrgPerson)'"} {
		if !strings.Contains(l, want) {
			t.Errorf("debug log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, s.AdminPassword) {
		t.Error("debug log contains the bind password")
	}
}

func TestLDAPTLS(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 10)})
	other := ldaptest.WriteOtherCA(t)
	tests := []struct {
		name     string
		url      string
		startTLS bool
		ca       string
		wantErr  string
	}{
		{"ldaps with the right CA", s.LDAPSURL, false, s.CAFile, ""},
		{"ldaps with another CA", s.LDAPSURL, false, other, "certificate"},
		{"ldaps with system roots", s.LDAPSURL, false, "", "certificate"},
		{"starttls with the right CA", s.URL, true, s.CAFile, ""},
		{"starttls with another CA", s.URL, true, other, "starttls"},
		{"plain ldap", s.URL, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := adminConfig(s)
			cfg.URL, cfg.StartTLS, cfg.CAFile = tt.url, tt.startTLS, tt.ca
			got, err := collect(newLDAP(t, cfg), peopleReq)
			if tt.wantErr == "" {
				if err != nil || len(got) != 10 {
					t.Fatalf("got %d entries, err %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
				t.Fatalf("err = %v (entries %d), want fail closed with %q", err, len(got), tt.wantErr)
			}
		})
	}
}

func TestLDAPConnectAndBindFailures(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 5)})
	down := ldaptest.Start(t, ldaptest.Options{})
	down.Stop()
	tests := []struct {
		name    string
		cfg     directory.Config
		wantErr string // "" = success
	}{
		{"anonymous", directory.Config{URL: s.URL, BaseDN: s.BaseDN}, ""},
		{"reader", directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.ReaderDN, BindPassword: s.ReaderPassword}, ""},
		{"wrong password", directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.ReaderDN, BindPassword: "wrong-pw-123"}, "Invalid Credentials"},
		{"unknown bind dn", directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: "cn=nobody,dc=example,dc=com", BindPassword: "x-pw-456"}, "bind as"},
		{"connection refused", directory.Config{URL: down.URL, BaseDN: s.BaseDN}, "connect"},
		{"credentials in url scrubbed", directory.Config{URL: strings.Replace(down.URL, "ldap://", "ldap://user:url-secret@", 1), BaseDN: s.BaseDN}, "connect"},
		{"wrong base", directory.Config{URL: s.URL, BaseDN: "dc=nowhere,dc=com"}, "No Such Object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(newLDAP(t, tt.cfg), peopleReq)
			if tt.wantErr == "" {
				if err != nil || len(got) != 5 {
					t.Fatalf("got %d entries, err %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want fail closed containing %q", err, tt.wantErr)
			}
			for _, secret := range []string{tt.cfg.BindPassword, "url-secret"} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}
	for _, cfg := range []directory.Config{
		{URL: "http://x", BaseDN: "dc=x"},
		{URL: "ldaps://x", StartTLS: true},
		{URL: "ldap://x", BindDN: "cn=a", BindPassword: ""},
		{URL: "ldap://x", CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := directory.NewLDAP(cfg); err == nil {
			t.Errorf("NewLDAP(%+v) succeeded, want an error", cfg)
		}
	}
}

// TestLDAPKilledMidSearch kills slapd after the first page: the search must fail, and the
// next search (after a restart) must reconnect and succeed.
func TestLDAPKilledMidSearch(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 3000)})
	cfg := adminConfig(s)
	cfg.PageSize = 100
	d := newLDAP(t, cfg)
	n := 0
	err := d.Search(context.Background(), peopleReq, func(directory.Entry) error {
		n++
		if n == 1 {
			s.Kill()
		}
		return nil
	})
	if !errors.Is(err, directory.ErrFailClosed) {
		t.Fatalf("search with slapd killed: err = %v after %d entries, want fail closed", err, n)
	}
	if n >= 3000 {
		t.Fatalf("got all %d entries although slapd was killed", n)
	}
	s.Restart()
	got, err := collect(d, peopleReq)
	if err != nil || len(got) != 3000 {
		t.Fatalf("after restart: %d entries, err %v", len(got), err)
	}
}

func TestLDAPTimeout(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 5)})
	cfg := adminConfig(s)
	cfg.Timeout = 500 * time.Millisecond
	d := newLDAP(t, cfg)
	if _, err := collect(d, peopleReq); err != nil { // connect and bind first
		t.Fatal(err)
	}
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil || pid == 0 {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	for i := 0; i < 200 && !stopped(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	got, err := collect(d, peopleReq)
	if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v (%d entries), want a fail-closed timeout", err, len(got))
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timeout took %v", el)
	}
}

// stopped reports whether the process is in the stopped state (T).
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "T"
}

func TestLDAPSizeLimit(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 300), SizeLimit: 100})
	cfg := directory.Config{URL: s.URL, BaseDN: s.BaseDN, BindDN: s.ReaderDN, BindPassword: s.ReaderPassword, PageSize: 50}
	d := newLDAP(t, cfg)
	got, err := collect(d, peopleReq)
	if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "Size Limit Exceeded") {
		t.Fatalf("err = %v (%d entries), want fail closed on the size limit", err, len(got))
	}
	req := peopleReq
	req.Filter = "(&(objectClass=inetOrgPerson)(departmentNumber=Legal))" // 50 entries: under the limit
	got, err = collect(d, req)
	if err != nil || len(got) != 50 {
		t.Fatalf("under the limit: %d entries, err %v", len(got), err)
	}
}

func TestLDAPEntries(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: []byte(`dn: ou=staff,dc=example,dc=com
objectClass: organizationalUnit
ou: staff

dn: ou=remote,dc=example,dc=com
objectClass: referral
objectClass: extensibleObject
ou: remote
ref: ldap://other.example.com/ou=remote,dc=example,dc=com
`)})
	s.Add(`dn: uid=zoe,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: zoe
cn:: Wm/DqyDDhW5nc3Ryw7Zt
sn: Ångström
mail: zoe@example.com
mail: zoe.alias@example.com
employeeType: Disabled
jpegPhoto:: AAECA/8Q/w==

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Brown
sn: Brown
employeeType: staff
`)
	logs := &syncBuffer{}
	cfg := adminConfig(s)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newLDAP(t, cfg)
	keyOf := func(req directory.Request) map[string]directory.Entry {
		t.Helper()
		got, err := collect(d, req)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]directory.Entry{}
		for _, e := range got {
			m[e.Attrs["uid"][0]] = e
		}
		return m
	}
	req := directory.Request{Filter: "(objectClass=inetOrgPerson)", KeyAttribute: "entryUUID",
		DisabledFilter: "(employeeType=disabled)", Attributes: []string{"uid", "cn", "SN", "jpegPhoto"}}

	before := keyOf(req)
	zoe := before["zoe"]
	if !zoe.Disabled || before["bob"].Disabled {
		t.Errorf("disabled: zoe %v bob %v", zoe.Disabled, before["bob"].Disabled)
	}
	if zoe.Attrs["cn"][0] != "Zoë Ångström" || zoe.Attrs["SN"][0] != "Ångström" {
		t.Errorf("non-ASCII values: %q", zoe.Attrs)
	}
	if got := zoe.Attrs["jpegPhoto"]; len(got) != 1 || got[0] != "\x00\x01\x02\x03\xff\x10\xff" {
		t.Errorf("binary jpegPhoto = %q", got)
	}
	if len(zoe.Key) != 36 {
		t.Errorf("entryUUID key = %q", zoe.Key)
	}
	if !strings.Contains(logs.String(), "continuation reference not followed") {
		t.Errorf("subtree search did not log the continuation reference:\n%s", logs.String())
	}

	// A filter with non-ASCII values.
	if m := keyOf(directory.Request{Filter: "(sn=ångström)", Attributes: []string{"uid"}}); len(m) != 1 || m["zoe"].DN == "" {
		t.Errorf("non-ASCII filter matched %v", m)
	}

	// Rename and move: same key, new DN.
	c := s.Conn()
	if err := c.ModifyDN(ldap.NewModifyDNRequest("uid=zoe,ou=people,dc=example,dc=com", "uid=zoe2", true, "ou=staff,dc=example,dc=com")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	after := keyOf(req)
	if after["zoe2"].Key != zoe.Key || after["zoe2"].DN != "uid=zoe2,ou=staff,dc=example,dc=com" {
		t.Errorf("after rename: %+v, want key %s", after["zoe2"], zoe.Key)
	}

	// A disabled filter the client cannot evaluate is evaluated by the server.
	req.DisabledFilter = "(employeeType:caseExactMatch:=Disabled)"
	m := keyOf(req)
	if !m["zoe2"].Disabled || m["bob"].Disabled {
		t.Errorf("server-side disabled filter: zoe %v bob %v", m["zoe2"].Disabled, m["bob"].Disabled)
	}
	req.DisabledFilter = "(employeeType:caseExactMatch:=disabled)"
	if m := keyOf(req); m["zoe2"].Disabled {
		t.Error("caseExactMatch was not applied by the server")
	}

	// Zero entries is success; the caller applies the safety guard.
	got, err := collect(d, directory.Request{Filter: "(uid=nobody)"})
	if err != nil || len(got) != 0 {
		t.Errorf("zero entries: %d, err %v", len(got), err)
	}
	// A key attribute missing from an entry fails closed.
	_, err = collect(d, directory.Request{Filter: "(objectClass=inetOrgPerson)", KeyAttribute: "mail"})
	if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "uid=bob") {
		t.Errorf("missing key: err = %v", err)
	}
	// A referral result is an error.
	_, err = collect(d, directory.Request{SearchDN: "ou=remote"})
	if !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "Referral") {
		t.Errorf("referral: err = %v", err)
	}
	// A callback error is returned as is.
	stop := errors.New("stop here")
	if err := d.Search(context.Background(), req, func(directory.Entry) error { return stop }); err != stop {
		t.Errorf("callback error: %v", err)
	}
}

func TestLDAPConcurrentSearches(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 1200)})
	cfg := adminConfig(s)
	cfg.PageSize = 250
	d := newLDAP(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := peopleReq
			want := 1200
			if i%2 == 1 {
				req.Filter = "(departmentNumber=Sales)"
				want = 200
			}
			got, err := collect(d, req)
			if err == nil && len(got) != want {
				err = fmt.Errorf("search %d: %d entries, want %d", i, len(got), want)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestLDAPStopMidPage stops searches inside a page (callback error, cancelled context): the
// error is returned, and the next search on the same Directory returns everything.
func TestLDAPStopMidPage(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 500)})
	cfg := adminConfig(s)
	cfg.PageSize = 100
	d := newLDAP(t, cfg)
	stop := errors.New("stop here")
	n := 0
	err := d.Search(context.Background(), peopleReq, func(directory.Entry) error {
		if n++; n == 150 {
			return stop
		}
		return nil
	})
	if err != stop || n != 150 {
		t.Fatalf("callback error: err = %v after %d entries, want %v after 150", err, n, stop)
	}
	if got, err := collect(d, peopleReq); err != nil || len(got) != 500 {
		t.Fatalf("after a callback error: %d entries, err %v", len(got), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = d.Search(ctx, peopleReq, func(directory.Entry) error {
		if n++; n == 250 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, directory.ErrFailClosed) {
		t.Fatalf("cancelled mid-page: err = %v after %d entries, want fail closed with context.Canceled", err, n)
	}
	if n >= 500 {
		t.Errorf("cancelled search went on to the end (%d entries)", n)
	}
	if got, err := collect(d, peopleReq); err != nil || len(got) != 500 {
		t.Fatalf("after a cancelled search: %d entries, err %v", len(got), err)
	}
}

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

// TestLDAPClosedDirectory closes the Directory inside a search, through either reader: the
// search fails closed, and a later one fails without connecting.
func TestLDAPClosedDirectory(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 1000)})
	for _, goLDAP := range []bool{false, true} {
		cfg := adminConfig(s)
		cfg.PageSize, cfg.GoLDAPReader = 100, goLDAP
		d := newLDAP(t, cfg)
		n := 0
		err := d.Search(context.Background(), peopleReq, func(directory.Entry) error {
			if n++; n == 10 {
				d.Close()
			}
			return nil
		})
		if !errors.Is(err, directory.ErrFailClosed) || n >= 1000 {
			t.Fatalf("go-ldap %v: closed mid-search: err = %v after %d entries, want fail closed", goLDAP, err, n)
		}
		if _, err := collect(d, peopleReq); !errors.Is(err, directory.ErrFailClosed) || !strings.Contains(err.Error(), "directory is closed") {
			t.Fatalf("go-ldap %v: search after Close: err = %v", goLDAP, err)
		}
	}
}
