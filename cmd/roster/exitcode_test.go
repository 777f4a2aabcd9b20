//go:build unix

package main

// Exit codes when a template's directory fails (SPEC §10, issue 16), against a real slapd:
// the LDAP template is failed closed, the LDIF template still applies, and apply, plan
// --detailed-exitcode and serve --once exit 1 naming the failed template.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

const exitBindEnv = "ROSTER_EXIT_BIND_PW"

// vmrOnlyTemplate is a template that gives each person of source a VMR tagged name.
func vmrOnlyTemplate(name, source, room string) string {
	return fmt.Sprintf("name: %[1]s\nsource: %[2]s\nuser_search_dn: ou=people\nuser_filter: (objectClass=inetOrgPerson)\n"+
		"sync_vmrs: true\nvmr:\n  name: \"{{cn}} %[3]s\"\n  aliases: [\"{{uid}}@%[1]s.example.com\"]\n  tag: %[1]s\n", name, source, room)
}

// exitWorkspace is a repo with an LDAP template (staff, on slapd as its size-limited reader)
// and an LDIF one (local).
func exitWorkspace(t *testing.T, srv *ldaptest.Server) *faultWorkspace {
	t.Helper()
	dir := t.TempDir()
	w := &faultWorkspace{dir: dir, repo: filepath.Join(dir, "repo"), cfg: filepath.Join(dir, "config.cue"),
		db: filepath.Join(dir, "roster.db"), mailDir: filepath.Join(dir, "outbox")}
	for name, body := range map[string]string{
		"settings.yaml": "auto_activation_emails: false\n", "templates/staff.yaml": vmrOnlyTemplate("staff", "corp", "VMR"),
		"templates/local.yaml": vmrOnlyTemplate("local", "offline", "local room"), "directory.ldif": ldifOf(person{uid: "l1", given: "Lee", sn: "One"}),
	} {
		writeRepoFile(t, w.repo, name, body)
	}
	cfg := fmt.Sprintf(`repo: {url: %q}
state: {dsn: %q}
directories: {
	corp: {url: %q, base_dn: "dc=example,dc=com", bind_dn: %q, bind_password_env: %q, page_size: 5, timeout: "1s"}
	offline: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
}
mail_dir: %q
safety: {max_emails: 1000}
secret_key_env: "ROSTER_FAULT_SECRET_KEY"
`, w.repo, w.db, srv.URL, srv.ReaderDN, exitBindEnv, w.mailDir)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(exitBindEnv, srv.ReaderPassword)
	return w
}

func writeRepoFile(t *testing.T, repo, name, body string) {
	t.Helper()
	p := filepath.Join(repo, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// extraPeople is an LDIF of n more people (uid x0…), to add over LDAP.
func extraPeople(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "dn: uid=x%d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: x%d\ncn: Extra %d\nsn: Extra\n\n", i, i, i)
	}
	return b.String()
}

func TestTemplateFailureExitsOne(t *testing.T) {
	const people = 12
	for _, tc := range []struct {
		name  string
		brk   func(t *testing.T, srv *ldaptest.Server)
		cause string // in the error, lower case
	}{
		{"slapd stopped", func(t *testing.T, srv *ldaptest.Server) { srv.Stop() }, "connect"},
		{"wrong bind password", func(t *testing.T, srv *ldaptest.Server) { t.Setenv(exitBindEnv, "not-the-password") }, "bind"},
		{"size limit exceeded", func(t *testing.T, srv *ldaptest.Server) { srv.Add(extraPeople(10)) }, "size limit"},
		{"timeout", func(t *testing.T, srv *ldaptest.Server) {
			pid := srv.PID()
			syscall.Kill(pid, syscall.SIGSTOP)
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
		}, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ldif bytes.Buffer
			if err := directory.GeneratePeople(&ldif, people, "dc=example,dc=com"); err != nil {
				t.Fatal(err)
			}
			srv := ldaptest.Start(t, ldaptest.Options{LDIF: ldif.Bytes(), SizeLimit: people + 3})
			w := exitWorkspace(t, srv)
			run := func(want int, args ...string) string {
				t.Helper()
				out, errOut, code := w.run(t, args...)
				if code != want {
					t.Fatalf("roster %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, tail(out, 800), errOut)
				}
				return out + errOut
			}
			// Healthy: changes (2), applied (0), nothing to do (0).
			run(2, "plan", "--detailed-exitcode")
			run(0, "apply")
			run(0, "plan", "--detailed-exitcode")
			db := openDB(t, w.db)
			staff := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'staff'`)
			if staff != people {
				t.Fatalf("staff VMRs after a healthy apply = %d, want %d", staff, people)
			}

			tc.brk(t, srv)
			// A change for the LDIF template: it must apply while staff fails.
			writeRepoFile(t, w.repo, "directory.ldif", ldifOf(person{uid: "l1", given: "Lee", sn: "One"}, person{uid: "l2", given: "Lou", sn: "Two"}))
			checkFailed := func(what, text string) {
				t.Helper()
				low := strings.ToLower(text)
				if !strings.Contains(text, "template staff failed") || !strings.Contains(low, tc.cause) {
					t.Errorf("%s: output does not name template staff and %q:\n%s", what, tc.cause, tail(text, 1500))
				}
				if strings.Contains(text, srv.ReaderPassword) {
					t.Errorf("%s shows the bind password", what)
				}
			}
			checkFailed("plan --detailed-exitcode", run(1, "plan", "--detailed-exitcode"))
			checkFailed("apply", run(1, "apply"))
			if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'local'`); n != 2 {
				t.Errorf("local VMRs after the failed apply = %d, want 2 (the LDIF template applies)", n)
			}
			if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'staff'`); n != staff {
				t.Errorf("staff VMRs = %d after the failed apply, want %d (fail closed)", n, staff)
			}
			if st := queryString(t, db, `SELECT state FROM sync_status WHERE template = 'staff'`); st != "failed" {
				t.Errorf("staff's sync status = %q, want failed", st)
			}
			// The daemon's one cycle, and the manual commands (they read no directory).
			writeRepoFile(t, w.repo, "directory.ldif", ldifOf(person{uid: "l1", given: "Lee", sn: "One"}))
			checkFailed("serve --once", run(1, "serve", "--once"))
			if n := queryInt(t, db, `SELECT COUNT(*) FROM vmrs WHERE sync_tag = 'local'`); n != 1 {
				t.Errorf("local VMRs after serve --once = %d, want 1 (the LDIF template applies)", n)
			}
			run(0, "remind", "--template", "local")
			run(0, "notify", "users")
		})
	}
}
