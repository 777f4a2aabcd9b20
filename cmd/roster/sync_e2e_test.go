package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// syncE2ETemplate is the benchmarks' template with the VMR email on and the surname in
// the room's description, so an sn change is a VMR update that emails its owner.
const syncE2ETemplate = `name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
disabled_filter: (employeeType=disabled)
sync_vmrs: true
sync_users: true
vmr:
  name: "{{cn}} VMR"
  description: "Personal room of {{givenName}} {{sn}}"
  aliases: ["{{uid}}@vc.example.com"]
  pin: "{{ ''|pex_random_pin(6) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  license: paid
emails:
  send: true
  vmr: {subject: "Your room {{ name }}", body_file: emails/sync.txt}
`

// TestServeLDAPChangeEmailedInSeconds (SPEC §7, issue #18): serve over a slapd with the
// syncprov overlay and 50,000 people; ldapmodify of one person's sn → that VMR's update
// email reaches a real SMTP server (in-process, go-smtp) within 2 s. make test runs it on
// 10,000 people (the initial apply and serve's first full read of 50,000 cost ~40 s);
// make bench (ROSTER_BENCH) on 50,000, where the 2 s is asserted.
func TestServeLDAPChangeEmailedInSeconds(t *testing.T) {
	n := 10000
	if os.Getenv("ROSTER_BENCH") != "" {
		n = 50000
	}
	var ldif bytes.Buffer
	if err := directory.GeneratePeople(&ldif, n, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	srv := ldaptest.Start(t, ldaptest.Options{LDIF: ldif.Bytes(), Syncprov: true, SessionLog: 10000})
	store := &smtpStore{}
	port, _ := startSMTP(t, store, "127.0.0.1:0")

	repo := newGitRepo(t)
	os.Remove(filepath.Join(repo.work, "templates", "contractors.yaml"))
	// The example overrides name fields the example templates allow overriding; the
	// replacement template allows none, so they go too.
	os.Remove(filepath.Join(repo.work, "overrides.yaml"))
	// 50,000 paid users are beyond the example's licence budget: no limit here.
	settings := strings.Replace(repo.read("settings.yaml"), "licenses: {paid: 2000}", "licenses: {paid: 0}", 1)
	repo.write(map[string]string{"settings.yaml": settings, "templates/staff.yaml": syncE2ETemplate, "emails/sync.txt": "{{ description }}\n"})
	repo.commitPush("staff template for the sync e2e")
	cfgPath, dir := writeServeConfig(t, serveConfig{URL: repo.bare, Interval: "1h", LDAPURL: srv.URL, MaxEmails: 3 * n, NoMail: true,
		Extra: fmt.Sprintf("smtp: default: {host: \"127.0.0.1\", port: %d, security: \"none\", from: \"roster@example.com\"}\n", port)})
	cfg, _ := os.ReadFile(cfgPath)
	cfg = bytes.Replace(cfg, []byte(`timeout: "2s"`), []byte(fmt.Sprintf(`timeout: "30s", bind_dn: %q, bind_password_env: "ROSTER_E2E_BIND"`, srv.AdminDN)), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROSTER_E2E_BIND", srv.AdminPassword)

	// The initial apply's 100,000 emails are not what this test waits for: apply them
	// without sending and drop them, then start serve (its first cycle reads in full).
	w := &workspace{t: t, dir: dir, cfg: cfgPath}
	if _, errOut, code := w.run("apply", "--no-send"); code != 0 {
		t.Fatalf("initial apply: %s", errOut)
	}
	db, err := sqlx.Open("sqlite3", "file:"+filepath.Join(dir, "roster.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`DELETE FROM outbox`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := startServe(t, cfgPath)
	d.waitStatus("a full read and a watcher", 5*time.Minute, func(s *Status) bool {
		return s.Daemon.Ready && len(s.Daemon.Watching) == 1
	})
	time.Sleep(time.Second) // the persistent search is open

	start := time.Now()
	mod := exec.Command("ldapmodify", "-x", "-H", srv.URL, "-D", srv.AdminDN, "-w", srv.AdminPassword)
	mod.Stdin = strings.NewReader("dn: uid=u4242,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: sn\nsn: Changedname\n")
	if out, err := mod.CombinedOutput(); err != nil {
		t.Fatalf("ldapmodify: %v\n%s", err, out)
	}
	for {
		found := false
		for _, m := range store.messages() {
			if bytes.Contains(m, []byte("Changedname")) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no email after 30 s\n%s", d.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("ldapmodify → email at the SMTP server: %s (%d people)", took.Round(time.Millisecond), n)
	// The 2 s of SPEC §7 is a timing target: checked under ROSTER_BENCH (make bench),
	// where the machine is not shared with the rest of the test run.
	if os.Getenv("ROSTER_BENCH") != "" && took > 2*time.Second {
		t.Errorf("the change took %s to reach the SMTP server; SPEC §7 wants 2 s", took)
	}
	s := d.status()
	if len(s.Daemon.Reads) != 1 || s.Daemon.Reads[0].Mode != "incremental" {
		t.Errorf("reads %+v; want the change read incrementally", s.Daemon.Reads)
	}
}
