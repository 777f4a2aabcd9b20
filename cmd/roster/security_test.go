//go:build unix

package main

// Security tests of the CLI: template tags that read files are refused, body_file cannot
// leave the repo, CR/LF in directory values never becomes a mail header, and no secret
// (bind password, SMTP password, secret key, PINs, device passwords) reaches logs, plan
// output, errors, `roster status` or the daemon's status page.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// secWorkspace writes a small repo (files over the fault workspace's defaults) and a
// config.cue (cfg is its whole text, %[1]s = repo, %[2]s = folder).
func secWorkspace(t *testing.T, files map[string]string, n int, cfg string) *faultWorkspace {
	t.Helper()
	w := newFaultWorkspace(t, t.TempDir(), n, "", "")
	for name, body := range files {
		p := filepath.Join(w.repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if cfg != "" {
		if err := os.WriteFile(w.cfg, []byte(fmt.Sprintf(cfg, w.repo, w.dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestValidateRefusesFileAccess: include, ssi, extends and import — in a pattern or an
// email body — and a body_file outside the repo are refused by validate, with
// file:line:col.
func TestValidateRefusesFileAccess(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		want                *regexp.Regexp
	}{
		{"include in a pattern", "templates/staff.yaml", strings.Replace(faultTemplate, `name: "{{cn}} VMR"`, `name: "{% include '/etc/passwd' %}"`, 1),
			regexp.MustCompile(`templates/staff\.yaml:10:\d+: .*include`)},
		{"ssi in a pattern", "templates/staff.yaml", strings.Replace(faultTemplate, `name: "{{cn}} VMR"`, `name: "{% ssi '/etc/passwd' %}"`, 1),
			regexp.MustCompile(`templates/staff\.yaml:10:\d+: .*ssi`)},
		{"extends in a pattern", "templates/staff.yaml", strings.Replace(faultTemplate, `username: "{{uid}}"`, `username: "{% extends 'base.txt' %}"`, 1),
			regexp.MustCompile(`templates/staff\.yaml:\d+:\d+: .*extends`)},
		{"import in a pattern", "templates/staff.yaml", strings.Replace(faultTemplate, `first_name: "{{givenName}}"`, `first_name: "{% import 'macros.txt' m %}{{givenName}}"`, 1),
			regexp.MustCompile(`templates/staff\.yaml:\d+:\d+: .*import`)},
		{"include in an email body", "emails/vmr.txt", "Your room\n\n{% include \"/etc/passwd\" %}\n",
			regexp.MustCompile(`emails/vmr\.txt:3:\d+: .*include`)},
		{"body_file out of the repo", "templates/staff.yaml", strings.Replace(faultTemplate, "body_file: emails/vmr.txt", "body_file: ../../etc/passwd", 1),
			regexp.MustCompile(`templates/staff\.yaml:\d+:\d+: .*\.\./\.\./etc/passwd`)},
		{"absolute body_file", "templates/staff.yaml", strings.Replace(faultTemplate, "body_file: emails/device.txt", "body_file: /etc/passwd", 1),
			regexp.MustCompile(`templates/staff\.yaml:\d+:\d+: .*/etc/passwd`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := secWorkspace(t, map[string]string{tc.file: tc.content}, 3, "")
			out, errOut, code := w.run(t, "validate")
			if code != 1 || !tc.want.MatchString(errOut) {
				t.Errorf("validate: exit %d, stderr lacks %s\n%s%s", code, tc.want, out, errOut)
			}
			if strings.Contains(errOut+out, "root:x:0:0") {
				t.Errorf("/etc/passwd was read:\n%s", errOut)
			}
			if _, errOut, code := w.run(t, "plan"); code != 1 {
				t.Errorf("plan of an invalid repo: exit %d\n%s", code, errOut)
			}
		})
	}
}

// TestHeaderInjectionFromDirectory: directory values carrying CR/LF and a Bcc line (base64
// in the LDIF, as an attacker with write access to their own entry could set) never make a
// header of a delivered email.
func TestHeaderInjectionFromDirectory(t *testing.T) {
	evil := "X\r\nBcc: evil@atk.example"
	b64 := base64.StdEncoding.EncodeToString([]byte(evil))
	b64nl := base64.StdEncoding.EncodeToString([]byte("Y\nSubject: pwned"))
	ldif := fmt.Sprintf(`dn: dc=example,dc=com
objectClass: domain
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: uid=mallory,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: mallory
cn:: %[1]s
givenName:: %[2]s
sn:: %[1]s
mail: mallory@example.com
entryUUID: 6c1d4d4e-1111-4222-8333-444455556666

dn: uid=trudy,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: trudy
cn: Trudy
givenName: Trudy
sn: Tester
mail:: %[3]s
entryUUID: 6c1d4d4e-1111-4222-8333-444455556667

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice Parkes
givenName: Alice
sn: Parkes
mail: alice@example.com
entryUUID: 6c1d4d4e-1111-4222-8333-444455556668
`, b64, b64nl, base64.StdEncoding.EncodeToString([]byte("trudy@example.com\r\nBcc: evil@atk.example")))
	// Subjects made of the values: the VMR description and the user's names.
	tmpl := strings.Replace(faultTemplate, `  aliases: ["{{uid}}@vc.example.com"]`, "  description: \"Room of {{sn}}\"\n  aliases: [\"{{uid}}@vc.example.com\"]", 1)
	tmpl = strings.Replace(tmpl, `subject: "Your room {{ name }}"`, `subject: "Your room {{ description }} / {{ name }}"`, 1)
	w := secWorkspace(t, map[string]string{
		"directory.ldif":        ldif,
		"templates/staff.yaml":  tmpl,
		"settings.yaml":         "auto_activation_emails: true\nadmins: [ops@example.com]\nemails:\n  activation: {subject: \"Welcome {{ first_name }} {{ last_name }}\", body_file: emails/activation.txt}\n",
		"emails/activation.txt": "Hello {{ first_name }} {{ last_name }}\n",
	}, 0, "")
	out, errOut, code := w.run(t, "apply")
	t.Logf("apply: exit %d\n%s%s", code, out, errOut)
	ents, _ := os.ReadDir(w.mailDir)
	var malloryMails int
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(w.mailDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for k, vs := range msg.Header {
			switch k {
			case "Bcc", "Cc":
				t.Errorf("%s: injected %s header %q", e.Name(), k, vs)
			}
			for _, v := range vs {
				if strings.Contains(strings.ToLower(v), "atk.example") && k != "Subject" {
					t.Errorf("%s: header %s carries the injected value %q", e.Name(), k, v)
				}
				if strings.ContainsAny(v, "\r\n") {
					t.Errorf("%s: header %s has a line break: %q", e.Name(), k, v)
				}
			}
		}
		if n := len(msg.Header["Subject"]); n != 1 {
			t.Errorf("%s: %d Subject headers", e.Name(), n)
		}
		if to := msg.Header.Get("To"); to == "mallory@example.com" {
			malloryMails++
		} else if strings.Contains(to, "trudy") && to != "trudy@example.com" {
			t.Errorf("%s: To %q", e.Name(), to)
		}
		head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
		if bytes.Contains(bytes.ToLower(head), []byte("\nbcc:")) {
			t.Errorf("%s: a Bcc line in the header:\n%s", e.Name(), head)
		}
	}
	// Either mallory's emails went out (with the values made harmless), or the values
	// were refused with a message; both are safe, silence is not.
	if malloryMails == 0 && !strings.Contains(out+errOut, "invalid: uid=mallory") {
		t.Errorf("no email for mallory and no warning about the entry:\n%s\n%s", out, errOut)
	}
	if len(ents) < 3 {
		t.Errorf("%d emails written; alice's three (VMR, device, activation) are missing", len(ents))
	}
	t.Logf("%d emails written, %d to mallory", len(ents), malloryMails)
}

// TestSecretsNeverShown runs the commands against a real slapd (bind password from
// bind_password_env) and an SMTP server with AUTH (password from password_env), with
// --log-level debug, and greps everything they print — logs, plan text/JSON/markdown,
// errors, status, the daemon's / and /api/status — for the secret values: the bind and
// SMTP passwords, the secret key, and every PIN and device password in the database.
func TestSecretsNeverShown(t *testing.T) {
	const (
		bindPw   = "S3cretBindPw!"
		smtpPw   = "SmtpPw-S3cret!"
		secret   = "S3cretKey-roster-42!"
		wrongPw  = "Wr0ngBindPw!"
		bindDN   = "cn=roster,dc=example,dc=com"
		people   = 30
		bindEnv  = "ROSTER_SEC_BIND_PW"
		smtpEnv  = "ROSTER_SEC_SMTP_PW"
		keyEnv   = "ROSTER_SEC_KEY"
		guestPIN = "{{ ''|pex_random_pin(8) }}"
	)
	var ldif bytes.Buffer
	fmt.Fprintf(&ldif, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: roster\nuserPassword: %s\n\n", bindDN, bindPw)
	if err := directory.GeneratePeople(&ldif, people, "dc=example,dc=com"); err != nil {
		t.Fatal(err)
	}
	srv := ldaptest.Start(t, ldaptest.Options{LDIF: ldif.Bytes()})
	store := &smtpStore{user: "roster", pwd: smtpPw}
	port, _ := startSMTP(t, store, "127.0.0.1:0")
	t.Setenv(bindEnv, bindPw)
	t.Setenv(smtpEnv, smtpPw)
	t.Setenv(keyEnv, secret)
	// Longer PINs and a guest PIN: distinctive numbers to grep for.
	tmpl := strings.Replace(faultTemplate, `pin: "{{ ''|pex_random_pin(6) }}"`, `pin: "{{ ''|pex_random_pin(10) }}"`+"\n  guest_pin: \""+guestPIN+"\"", 1)
	cfg := fmt.Sprintf(`repo: {url: "%%[1]s"}
state: {dsn: "%%[2]s/roster.db"}
directories: corp: {url: %q, base_dn: "dc=example,dc=com", bind_dn: %q, bind_password_env: %q, page_size: 7}
smtp: default: {host: "127.0.0.1", port: %d, security: "none", username: "roster", password_env: %q, from: "roster@example.com"}
http: listen: "127.0.0.1:0"
safety: {max_emails: 100000}
secret_key_env: %q
`, srv.URL, bindDN, bindEnv, port, smtpEnv, keyEnv)
	w := secWorkspace(t, map[string]string{"templates/staff.yaml": tmpl}, 0, cfg)

	var shown strings.Builder // everything roster printed
	run := func(args ...string) (string, string, int) {
		t.Helper()
		out, errOut, code := w.run(t, append(args, "--log-level", "debug")...)
		fmt.Fprintf(&shown, "$ roster %s\n%s%s", strings.Join(args, " "), out, errOut)
		return out, errOut, code
	}
	if _, errOut, code := run("validate"); code != 0 {
		t.Fatalf("validate: %s", errOut)
	}
	for _, f := range []string{"text", "json", "markdown"} {
		if _, errOut, code := run("plan", "--format", f); code != 0 {
			t.Fatalf("plan %s: %s", f, errOut)
		}
	}
	unmasked, _, _ := w.run(t, "plan", "--format", "json", "--show-secrets")
	if out, errOut, code := run("apply", "--log-format", "json"); code != 0 || !strings.Contains(out, "sent") {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if len(store.messages()) == 0 {
		t.Fatal("no email reached the SMTP server")
	}
	run("status")
	run("status", "--format", "json")
	run("export", "users")
	// Errors: a wrong bind password, then an unreachable directory.
	t.Setenv(bindEnv, wrongPw)
	if _, errOut, code := run("plan"); code != 0 && !strings.Contains(errOut, "bind") {
		t.Logf("plan with a wrong bind password: exit %d", code)
	}
	t.Setenv(bindEnv, bindPw)
	// The daemon: one cycle, then its status page and API.
	d := startServe(t, w.cfg)
	d.waitStatus("a reconcile cycle", 30*time.Second, func(s *Status) bool { return s.Daemon.Cycles > 0 && s.Daemon.State != "syncing" })
	for _, p := range []string{"/", "/api/status", "/metrics"} {
		code, body := d.get(p)
		if code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
		fmt.Fprintf(&shown, "GET %s\n%s\n", p, body)
	}
	d.stop()
	shown.WriteString(d.log.String())

	// The secrets: fixed ones and every PIN and password in the database.
	secrets := map[string]string{"bind password": bindPw, "wrong bind password": wrongPw, "SMTP password": smtpPw, "secret key": secret}
	db := openDB(t, filepath.Join(w.dir, "roster.db"))
	var rows []struct {
		Name string `db:"name"`
		PIN  string `db:"pin"`
		GPIN string `db:"guest_pin"`
	}
	if err := db.Select(&rows, `SELECT name, pin, guest_pin FROM vmrs`); err != nil {
		t.Fatal(err)
	}
	var pwds []struct {
		Alias string `db:"alias"`
		Pwd   string `db:"password"`
	}
	if err := db.Select(&pwds, `SELECT alias, password FROM devices`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != people || len(pwds) == 0 {
		t.Fatalf("%d VMRs and %d devices in the database, want %d", len(rows), len(pwds), people)
	}
	for _, r := range rows {
		secrets["PIN of "+r.Name] = r.PIN
		secrets["guest PIN of "+r.Name] = r.GPIN
	}
	for _, p := range pwds {
		secrets["password of "+p.Alias] = p.Pwd
	}
	text := shown.String()
	leaks := 0
	for what, v := range secrets {
		if len(v) < 6 {
			t.Fatalf("%s is %q: too short to grep for", what, v)
		}
		re := regexp.MustCompile(`(^|[^0-9])` + regexp.QuoteMeta(v) + `($|[^0-9])`)
		if loc := re.FindStringIndex(text); loc != nil {
			leaks++
			if leaks <= 10 {
				lo, hi := max(0, loc[0]-150), min(len(text), loc[1]+150)
				t.Errorf("%s %q shown:\n…%s…", what, v, text[lo:hi])
			}
		}
	}
	// The grep can find them: --show-secrets shows the PINs.
	if !strings.Contains(unmasked, rows[0].PIN) || !strings.Contains(unmasked, rows[0].GPIN) {
		t.Errorf("--show-secrets does not show the PIN %s: the check above proves nothing", rows[0].PIN)
	}
	t.Logf("grepped %d KB of output for %d secret values: %d shown", len(text)>>10, len(secrets), leaks)
}
