package reconcile_test

// End-to-end fault tests against a real slapd (ldaptest): an LDAP failure — slapd killed
// or frozen in the middle of a paged search, a size limit, a filter that finds nobody, a
// bad bind password — changes nothing of the template that reads it (no deletion, no
// deactivation), shows as the template's error, and leaves other templates (one on an
// LDIF directory, declared VMRs) free to go on.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

const e2eStaff = `name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
sync_vmrs: true
sync_devices: true
sync_users: true
vmr:
  name: "{{cn}} VMR"
  aliases: ["{{uid}}@vc.example.com"]
  pin: "{{ ''|pex_random_pin(6) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
device:
  alias: "{{uid}}@dev.example.com"
  username: "{{uid}}"
  password: "{{ ''|pex_random_pin(12) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
  sync_if_account_disabled: true
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  host_privilege: HOST
  license: paid
`

const e2eLocal = `name: local
source: offline
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
sync_vmrs: true
vmr:
  name: "{{cn}} local room"
  aliases: ["{{uid}}@local.example.com"]
  tag: local
`

// e2e is a repo in memory, a config with an LDAP and an LDIF directory, and a database.
type e2e struct {
	t      *testing.T
	srv    *ldaptest.Server
	files  fstest.MapFS
	cfg    *schema.Config
	db     *state.DB
	seq    int
	locals int
	// onEntry, when set, is called with the count of entries the LDAP search has given.
	onEntry func(n int)
}

const e2ePeople = 40

func newE2E(t *testing.T) *e2e {
	t.Helper()
	var ldif bytes.Buffer
	if err := directory.GeneratePeople(&ldif, e2ePeople, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	// The reader (not the root DN) is bound by roster, so slapd's size limit applies to it.
	srv := ldaptest.Start(t, ldaptest.Options{LDIF: ldif.Bytes(), SizeLimit: 50})
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &e2e{t: t, srv: srv, db: db, files: fstest.MapFS{},
		cfg: &schema.Config{
			Repo: schema.RepoConfig{Path: "."},
			Directories: map[string]schema.DirConfig{
				"corp": {URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.ReaderDN, BindPasswordEnv: "BIND_PW", PageSize: 4,
					Timeout: schema.Duration{Duration: time.Second}},
				"offline": {LDIF: "directory.ldif", BaseDN: "dc=example,dc=com", PageSize: 1000},
			},
			Safety:       schema.Safety{MaxDeleteFraction: 0.25, MaxDeleteCount: 500, MaxEmails: 500},
			SecretKeyEnv: "ROSTER_SECRET_KEY",
		}}
	e.write("settings.yaml", "auto_activation_emails: false\n")
	e.write("templates/staff.yaml", e2eStaff)
	e.write("templates/local.yaml", e2eLocal)
	e.write("vmrs/team.yaml", "- name: Board Room\n  aliases: [board@example.com]\n")
	e.addLocal()
	return e
}

func (e *e2e) write(name, content string) { e.files[name] = &fstest.MapFile{Data: []byte(content)} }

// addLocal adds one more person to the LDIF directory: a change for the "local" template.
func (e *e2e) addLocal() {
	e.locals++
	var b strings.Builder
	b.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	for i := 1; i <= e.locals; i++ {
		fmt.Fprintf(&b, "dn: uid=l%d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: l%d\ncn: Local %d\nsn: L\nmail: l%d@example.com\n\n", i, i, i, i)
	}
	e.write("directory.ldif", b.String())
}

func (e *e2e) engine(bindPw string) *reconcile.Engine {
	return &reconcile.Engine{Config: e.cfg, DB: e.db,
		Getenv: func(k string) string {
			return map[string]string{"BIND_PW": bindPw, "ROSTER_SECRET_KEY": "e2e-key"}[k]
		},
		OpenDirectory: func(name string, cfg schema.DirConfig, repo *schema.Repo) (directory.Directory, error) {
			d, err := reconcile.OpenDirectory(cfg, repo, func(k string) string {
				if k == "BIND_PW" {
					return bindPw
				}
				return ""
			}, nil)
			if err != nil || name != "corp" {
				return d, err
			}
			return &hookedDir{Directory: d, e: e}, nil
		}}
}

// hookedDir calls e.onEntry as entries arrive, to break slapd in the middle of a search.
type hookedDir struct {
	directory.Directory
	e  *e2e
	n  int
	mu sync.Mutex
}

func (h *hookedDir) Search(ctx context.Context, req directory.Request, fn func(directory.Entry) error) error {
	return h.Directory.Search(ctx, req, func(en directory.Entry) error {
		h.mu.Lock()
		h.n++
		n := h.n
		h.mu.Unlock()
		if h.e.onEntry != nil {
			h.e.onEntry(n)
		}
		return fn(en)
	})
}

// plan plans the repo with the given bind password.
func (e *e2e) plan(bindPw string) *reconcile.Plan {
	e.t.Helper()
	repo, err := schema.Load(e.files, e.cfg, schema.LoadOptions{})
	if err != nil {
		e.t.Fatalf("load repo: %v", err)
	}
	e.seq++
	p, err := e.engine(bindPw).Plan(context.Background(), repo, fmt.Sprintf("c%03d", e.seq))
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	return p
}

func (e *e2e) apply(p *reconcile.Plan) error {
	if err := p.Check(e.cfg.Safety, reconcile.Allowances{}); err != nil {
		return err
	}
	_, err := reconcile.Apply(context.Background(), e.db, p, reconcile.ApplyOptions{Actor: "test", Now: time.Now()}, true)
	return err
}

func (e *e2e) count(q string) int {
	e.t.Helper()
	var n int
	if err := e.db.Get(&n, q); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// staffState is what the staff template owns.
func (e *e2e) staffState() string {
	return fmt.Sprintf("vmrs=%d devices=%d users_active=%d", e.count(`SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'staff'`),
		e.count(`SELECT COUNT(*) FROM devices WHERE sync_tag = 'staff'`), e.count(`SELECT COUNT(*) FROM users WHERE sync_tag = 'staff' AND active = 1`))
}

func TestLDAPFailuresChangeNothing(t *testing.T) {
	e := newE2E(t)
	const pw = "reader-secret"
	p := e.plan(pw)
	if len(p.Errors) > 0 {
		t.Fatalf("first plan: %v", p.Errors)
	}
	if err := e.apply(p); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	want := fmt.Sprintf("vmrs=%d devices=%d users_active=%d", e2ePeople, e2ePeople, e2ePeople)
	if got := e.staffState(); got != want {
		t.Fatalf("after the first apply: %s, want %s", got, want)
	}

	for _, tc := range []struct {
		name    string
		bindPw  string
		setup   func()
		undo    func()
		wantErr string // in the template's error; "" = the guard refuses the plan
	}{
		{name: "slapd killed mid-search", bindPw: pw,
			setup: func() {
				e.onEntry = func(n int) {
					if n == 10 { // page size 4: pages are still to come
						e.srv.Kill()
					}
				}
			},
			undo:    func() { e.onEntry = nil; e.srv.Restart() },
			wantErr: "fail closed"}, // the exact cause (EOF, connection closed) depends on timing
		{name: "slapd frozen mid-search (timeout)", bindPw: pw,
			setup: func() {
				e.onEntry = func(n int) {
					if n == 10 {
						syscall.Kill(e.srv.PID(), syscall.SIGSTOP)
						waitStopped(t, e.srv.PID()) // signals are asynchronous: the next page must meet a frozen server
					}
				}
			},
			undo: func() {
				e.onEntry = nil
				syscall.Kill(e.srv.PID(), syscall.SIGCONT)
			},
			wantErr: "timed out"},
		{name: "size limit exceeded", bindPw: pw,
			setup: func() {
				var more bytes.Buffer
				directory.GeneratePeople(&more, e2ePeople+20, "dc=example,dc=com")
				recs := strings.SplitN(more.String(), "\n\n", e2ePeople+1)
				// People 40..59 (60 entries, above sizelimit 50); slapd makes entryUUID itself.
				var add []string
				for _, line := range strings.Split(recs[e2ePeople], "\n") {
					if !strings.HasPrefix(line, "entryUUID:") {
						add = append(add, line)
					}
				}
				e.srv.Add(strings.Join(add, "\n"))
			},
			wantErr: "size limit"},
		{name: "bad bind password", bindPw: "not-the-password", wantErr: "bind"},
		{name: "filter matches nobody (empty search)", bindPw: pw,
			setup: func() {
				e.write("templates/staff.yaml", strings.Replace(e2eStaff, "(objectClass=inetOrgPerson)", "(employeeType=nobody)", 1))
			},
			undo: func() { e.write("templates/staff.yaml", e2eStaff) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.staffState()
			e.addLocal() // a change for the LDIF template
			e.write("vmrs/team.yaml", fmt.Sprintf("- name: Board Room\n  aliases: [board@example.com]\n  participant_limit: %d\n", 10+e.locals))
			if tc.setup != nil {
				tc.setup()
			}
			p := e.plan(tc.bindPw)
			if tc.undo != nil {
				tc.undo()
			}
			var text bytes.Buffer
			p.Write(&text, "text", reconcile.OutputOptions{})
			for _, c := range p.All() {
				if tc.wantErr == "" {
					break // the plan removes staff's objects: the guard must refuse it
				}
				if c.Action == account.ActionDelete || c.Action == account.ActionDeactivate {
					t.Errorf("the plan %ss %s %s", c.Action, c.Kind, c.Key)
				}
				if c.Template == "staff" {
					t.Errorf("the plan changes staff's %s %s", c.Kind, c.Key)
				}
			}
			err := e.apply(p)
			if tc.wantErr == "" {
				var refusal *reconcile.RefusalError
				if !errors.As(err, &refusal) || !strings.Contains(err.Error(), "found 0 entries") {
					t.Fatalf("apply: %v, want the guard's refusal\n%s", err, text.String())
				}
				t.Logf("refused: %v", err)
				if n := e.count(`SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'local'`); n != e.locals-1 {
					t.Errorf("a refused plan applied the local template's change: %d VMRs", n)
				}
			} else {
				var msg string
				for _, pe := range p.Errors {
					if pe.Template == "staff" {
						msg = pe.Message
					}
				}
				if !strings.Contains(strings.ToLower(msg), tc.wantErr) && !strings.Contains(msg, tc.wantErr) {
					t.Errorf("staff's error %q does not mention %q", msg, tc.wantErr)
				}
				if !strings.Contains(text.String(), "template staff: ") {
					t.Errorf("the plan text does not show the template's error:\n%s", text.String())
				}
				if strings.Contains(text.String()+msg, "reader-secret") {
					t.Errorf("the bind password is shown")
				}
				if err != nil {
					t.Fatalf("apply (other templates should go on): %v", err)
				}
				t.Logf("staff: %s", msg)
				// The other templates went on; staff's status says failed.
				if n := e.count(`SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'local'`); n != e.locals {
					t.Errorf("local template: %d VMRs, want %d", n, e.locals)
				}
				if n := e.count(`SELECT participant_limit FROM vmrs WHERE name = 'Board Room'`); n != 10+e.locals {
					t.Errorf("declared VMR not updated: participant_limit %d", n)
				}
				var st string
				e.db.Get(&st, `SELECT state FROM sync_status WHERE template = 'staff'`)
				if st != "failed" {
					t.Errorf("staff's sync status is %q, want failed", st)
				}
			}
			if after := e.staffState(); after != before {
				t.Errorf("staff's objects changed: %s → %s", before, after)
			}
			if n := e.count(`SELECT COUNT(*) FROM audit WHERE action IN ('delete', 'deactivate')`); n != 0 {
				t.Errorf("%d deletions or deactivations in the audit log", n)
			}
		})
	}
}

// waitStopped waits until the process is in the stopped state ("T" in /proc/PID/stat).
func waitStopped(t *testing.T, pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'T' {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("pid %d did not stop", pid)
}
