//go:build unix

package main

// End-to-end tests of the people lifecycle (issue 7) through the CLI: WebEx users from CSV
// files and from the directory, deactivation and reactivation, the lifetime limit, tracking
// codes, Pexip Service invitations and licences, `export users`, and the Webex Control Hub
// activation-email rules. Every email goes over SMTP to an in-process go-smtp server
// (smtpStore, fault_test.go) and is parsed back with net/mail and mime/multipart.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// peopleWS is a workspace with a desired-state repo of its own and an SMTP server that
// receives every email.
type peopleWS struct {
	*workspace
	smtp *smtpStore
	seen int // messages already handed out by newMails
}

// newPeopleWorkspace writes files into a fresh repo (plus an empty LDIF directory unless
// files has one) and a config.cue whose only SMTP server is the in-process one.
func newPeopleWorkspace(t *testing.T, files map[string]string) *peopleWS {
	t.Helper()
	dir := t.TempDir()
	w := &peopleWS{workspace: &workspace{t: t, dir: dir, repo: filepath.Join(dir, "repo"), cfg: filepath.Join(dir, "config.cue")},
		smtp: &smtpStore{}}
	port, _ := startSMTP(t, w.smtp, "127.0.0.1:0")
	if _, ok := files["directory.ldif"]; !ok {
		w.write("directory.ldif", ldifOf())
	}
	for name, body := range files {
		w.write(name, body)
	}
	cfg := fmt.Sprintf(`repo: {url: %q}
state: {dsn: %q}
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
smtp: default: {host: "127.0.0.1", port: %d, security: "none", from: "roster@example.com"}
safety: {max_emails: 1000, max_delete_fraction: 1.0}
secret_key_env: "ROSTER_FAULT_SECRET_KEY"
`, w.repo, filepath.Join(dir, "roster.db"), port)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// ok runs roster and fails the test unless it exits 0; it returns stdout.
func (w *peopleWS) ok(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.run(args...)
	if code != 0 {
		w.t.Fatalf("roster %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs roster, wants exit 1 and every wanted text in stdout+stderr; it returns both.
func (w *peopleWS) fails(args []string, want ...string) string {
	w.t.Helper()
	out, errOut, code := w.run(args...)
	if code != 1 {
		w.t.Fatalf("roster %s: exit %d, want 1\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	for _, s := range want {
		if !strings.Contains(out+errOut, s) {
			w.t.Errorf("roster %s: output lacks %q:\n%s\n%s", strings.Join(args, " "), s, out, errOut)
		}
	}
	return out + errOut
}

func (w *peopleWS) remove(rel string) {
	w.t.Helper()
	if err := os.Remove(filepath.Join(w.repo, rel)); err != nil {
		w.t.Fatal(err)
	}
}

// sentMail is one message the SMTP server received, decoded.
type sentMail struct {
	To, Subject, Body string
	Header            mail.Header
}

// newMails returns the messages received since the last call, sorted by recipient.
func (w *peopleWS) newMails() []sentMail {
	w.t.Helper()
	raw := w.smtp.messages()
	var out []sentMail
	for _, m := range raw[w.seen:] {
		out = append(out, parseMail(w.t, m))
	}
	w.seen = len(raw)
	sort.SliceStable(out, func(i, j int) bool { return out[i].To < out[j].To })
	return out
}

// recipients is the To addresses of ms, in order.
func recipients(ms []sentMail) []string {
	var to []string
	for _, m := range ms {
		to = append(to, m.To)
	}
	return to
}

// parseMail decodes a message: the To address, the decoded Subject and the text/plain body
// (the text part of a multipart/alternative message).
func parseMail(t *testing.T, raw []byte) sentMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	to, err := mail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		t.Fatalf("To %q: %v", msg.Header.Get("To"), err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject: %v", err)
	}
	m := sentMail{To: to.Address, Subject: subject, Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextPart() // decodes quoted-printable parts itself
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("multipart: %v", err)
			}
			if pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt == "text/plain" {
				b, _ := io.ReadAll(p)
				m.Body = string(b)
			}
		}
		return m
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	m.Body = string(b)
	return m
}

// person is one directory entry of the test LDIF.
type person struct {
	uid, given, sn, mail, dept string
	disabled                   bool
}

// ldifOf is a directory with people under ou=people,dc=example,dc=com, keyed by DN.
func ldifOf(people ...person) string {
	var b strings.Builder
	b.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\n" +
		"dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	for _, p := range people {
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s %s\ngivenName: %s\nsn: %s\n",
			p.uid, p.uid, p.given, p.sn, p.given, p.sn)
		if p.mail != "" {
			fmt.Fprintf(&b, "mail: %s\n", p.mail)
		}
		if p.dept != "" {
			fmt.Fprintf(&b, "departmentNumber: %s\n", p.dept)
		}
		typ := "staff"
		if p.disabled {
			typ = "disabled"
		}
		fmt.Fprintf(&b, "employeeType: %s\n\n", typ)
	}
	return b.String()
}

// peopleTemplate is a users-only sync template over every person; license is paid or free.
func peopleTemplate(name, license string) string {
	return fmt.Sprintf(`name: %s
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
disabled_filter: (employeeType=disabled)
sync_users: true
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  host_privilege: HOST
  license: %s
  tracking: {DIVISION: "{{departmentNumber}}"}
`, name, license)
}

const usersCSVHeader = "USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10\n"

// csvUser is one local user row: active Y|N, first, last, email, then DIVISION and PROJECT.
func csvUser(active, first, last, email, division, project string) string {
	return fmt.Sprintf(",%s,%s,%s,%s,en-us,HOST,London,%s,,%s,,,,,,,\n", active, first, last, email, division, project)
}

// exportedUser is one row of `roster export users`.
type exportedUser struct {
	UserID, Active, First, Last, Division, Project string
}

// exportUsers runs `roster export users` and indexes the rows by email.
func (w *peopleWS) exportUsers() map[string]exportedUser {
	w.t.Helper()
	out := w.ok("export", "users")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0]+"\n" != usersCSVHeader {
		w.t.Fatalf("export header: %q", lines[0])
	}
	users := map[string]exportedUser{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",") // the test's values have no commas or quotes
		if len(f) != 18 {
			w.t.Fatalf("export row %q: %d fields", l, len(f))
		}
		users[f[4]] = exportedUser{UserID: f[0], Active: f[1], First: f[2], Last: f[3], Division: f[8], Project: f[10]}
	}
	return users
}

const peopleSettings = "auto_activation_emails: true\nadmins: [ops@example.com]\nemails: {smtp_server: default}\n"

// TestPeopleLocalAndDirectoryUsers: one account per email from users/*.csv and the
// directory; no email → skipped with a warning; two entries with one email → both skipped,
// the warning names both; a local user found in the directory becomes remote (the directory's
// values win); disabled or gone from every source → deactivated, never deleted; back →
// reactivated with the same USERID; the activation email (first name, USERID) goes once.
func TestPeopleLocalAndDirectoryUsers(t *testing.T) {
	t.Parallel()
	alice := person{uid: "alice", given: "Alice", sn: "Parkes", mail: "alice@example.com", dept: "ENG"}
	bob := person{uid: "bob", given: "Bob", sn: "Marley", mail: "Bob@Example.com", dept: "OPS"}
	nomail := person{uid: "george", given: "George", sn: "Baker"}
	dup1 := person{uid: "dup1", given: "Dee", sn: "One", mail: "dup@example.com"}
	dup2 := person{uid: "dup2", given: "Dee", sn: "Two", mail: "dup@example.com"}
	ursula := person{uid: "ursula", given: "Ursula", sn: "Klein", mail: "ursula@example.com", disabled: true}
	erinDir := person{uid: "erin", given: "Erin", sn: "Directory", mail: "erin@example.com"}
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":        peopleSettings,
		"templates/staff.yaml": peopleTemplate("staff", "paid"),
		"directory.ldif":       ldifOf(alice, bob, nomail, dup1, dup2, ursula),
		"users/local.csv": usersCSVHeader +
			csvUser("Y", "Alicia", "Local", "alice@example.com", "", "") + // also in the directory: remote, directory wins
			csvUser("Y", "Erin", "Local", "erin@example.com", "", "Atlas") +
			csvUser("N", "Frank", "Old", "frank@example.com", "", "") +
			csvUser("Y", "Gina", "Local", "gina@example.com", "", ""),
	})

	out := w.ok("plan")
	for _, want := range []string{
		`no_email: uid=george,ou=people,dc=example,dc=com:`,
		`duplicate_email: dup@example.com: directory entries staff:uid=dup1,ou=people,dc=example,dc=com and staff:uid=dup2,ou=people,dc=example,dc=com share this email; both skipped`,
		`+ user "alice@example.com" (staff)`, `+ user "bob@example.com" (staff)`, `+ user "erin@example.com"`, `+ user "frank@example.com"`, `+ user "gina@example.com"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first plan lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{`user "dup@example.com"`, `user "ursula@example.com"`, "george"} {
		if strings.Contains(out, not) && !strings.Contains(out, "no_email") {
			t.Errorf("first plan has %q:\n%s", not, out)
		}
	}
	if strings.Contains(out, `+ user "ursula@example.com"`) || strings.Contains(out, `+ user "dup@example.com"`) {
		t.Errorf("a disabled or duplicate directory user is imported:\n%s", out)
	}
	w.ok("apply")
	users := w.exportUsers()
	if len(users) != 5 {
		t.Fatalf("users after the first apply: %v", users)
	}
	if a := users["alice@example.com"]; a.First != "Alice" || a.Last != "Parkes" || a.Division != "ENG" || a.Active != "Y" {
		t.Errorf("alice: the directory's values do not win: %+v", a)
	}
	if f := users["frank@example.com"]; f.Active != "N" || f.UserID == "" {
		t.Errorf("frank (ACTIVE=N): %+v", f)
	}
	ids := map[string]bool{}
	for email, u := range users {
		if !regexp.MustCompile(`^[A-Za-z0-9]{1,19}$`).MatchString(u.UserID) || ids[u.UserID] {
			t.Errorf("%s: USERID %q is not 1–19 alphanumerics, or not unique", email, u.UserID)
		}
		ids[u.UserID] = true
	}
	// Activation emails: the active paid users, once each; not the deactivated CSV user.
	mails := w.newMails()
	if got := strings.Join(recipients(mails), " "); got != "alice@example.com bob@example.com erin@example.com gina@example.com" {
		t.Fatalf("activation emails went to %q", got)
	}
	for _, m := range mails {
		u := users[m.To]
		if !strings.Contains(m.Subject, u.First) || !strings.Contains(m.Body, "Hello "+u.First+" "+u.Last) ||
			!strings.Contains(m.Body, "User ID: "+u.UserID) || !strings.Contains(m.Body, m.To) {
			t.Errorf("activation email to %s lacks the first name %q or USERID %q:\n%s\n%s", m.To, u.First, u.UserID, m.Subject, m.Body)
		}
		if m.Header.Get("From") == "" || !strings.Contains(m.Header.Get("From"), "roster@example.com") {
			t.Errorf("From: %q", m.Header.Get("From"))
		}
	}
	if out := w.ok("plan", "--detailed-exitcode"); !strings.Contains(out, "No changes") {
		t.Fatalf("second plan:\n%s", out)
	}

	// Erin, a local user, turns up in the directory: she becomes remote and the directory's
	// values win; no second activation email.
	w.write("directory.ldif", ldifOf(alice, bob, nomail, dup1, dup2, ursula, erinDir))
	out = w.ok("apply")
	for _, want := range []string{`~ user "erin@example.com" (staff)`, `last_name: "Local" → "Directory"`, `origin: "local" → "remote"`} {
		if !strings.Contains(out, want) {
			t.Errorf("erin found in the directory: apply lacks %q:\n%s", want, out)
		}
	}
	users2 := w.exportUsers()
	if e := users2["erin@example.com"]; e.Last != "Directory" || e.UserID != users["erin@example.com"].UserID {
		t.Errorf("erin after the directory found her: %+v (was %+v)", e, users["erin@example.com"])
	}

	// Bob disabled in the directory: deactivated, not deleted. Alice gone from the
	// directory: deactivated although users/local.csv still lists her — once remote, the
	// directory governs the account (WebEx deactivates the users its directory sync no
	// longer finds), so an export committed back cannot keep leavers active. Her CSV
	// values do not overwrite the directory's either.
	bobOff := bob
	bobOff.disabled = true
	w.write("directory.ldif", ldifOf(bobOff, nomail, dup1, dup2, ursula, erinDir))
	out = w.ok("apply")
	for _, want := range []string{`! user "bob@example.com" (staff)`, `! user "alice@example.com" (staff)`, "2 to deactivate"} {
		if !strings.Contains(out, want) {
			t.Errorf("bob disabled, alice gone from the directory: apply lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Alicia") {
		t.Errorf("the CSV row overwrote a directory user's values:\n%s", out)
	}
	// Gina leaves the CSV (gone from every source) and Bob comes back.
	w.write("users/local.csv", usersCSVHeader+csvUser("Y", "Alicia", "Local", "alice@example.com", "", "")+
		csvUser("N", "Frank", "Old", "frank@example.com", "", ""))
	w.write("directory.ldif", ldifOf(bob, nomail, dup1, dup2, ursula, erinDir))
	out = w.ok("apply")
	for _, want := range []string{`! user "gina@example.com"`, `^ user "bob@example.com" (staff)`, "active: false → true"} {
		if !strings.Contains(out, want) {
			t.Errorf("gina gone, bob back: apply lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "alice") {
		t.Errorf("alice changed again:\n%s", out)
	}
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("moving, deactivating and reactivating users sent %d emails (activation is once in a lifetime): %v", len(ms), recipients(ms))
	}
	users3 := w.exportUsers()
	if len(users3) != 5 {
		t.Errorf("users were deleted: %v", users3)
	}
	if a := users3["alice@example.com"]; a.First != "Alice" || a.Last != "Parkes" {
		t.Errorf("alice's directory values were overwritten: %+v", a)
	}
	for email, want := range map[string]string{"alice@example.com": "N", "bob@example.com": "Y", "erin@example.com": "Y", "frank@example.com": "N", "gina@example.com": "N"} {
		if u := users3[email]; u.Active != want || u.UserID != users[email].UserID {
			t.Errorf("%s: active %s USERID %s, want active %s USERID %s", email, u.Active, u.UserID, want, users[email].UserID)
		}
	}
	var st Status
	if err := json.Unmarshal([]byte(w.ok("status", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Objects["users_active"] != 2 || st.Objects["users_deactivated"] != 3 {
		t.Errorf("status objects: %v", st.Objects)
	}

	// export users round-trips, comma and tab: committed as the only users CSV, it plans
	// nothing (the directory users stay remote, the deactivated stay deactivated).
	for _, delim := range []string{"comma", "tab"} {
		exported := filepath.Join(w.dir, "export-"+delim+".csv")
		w.ok("export", "users", "--delimiter", delim, "--out", exported)
		data, err := os.ReadFile(exported)
		if err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(w.repo, "users"))
		w.write("users/export.csv", string(data))
		if out, errOut, code := w.run("plan", "--detailed-exitcode"); code != 0 {
			t.Errorf("plan after the %s export round trip: exit %d\n%s\n%s", delim, code, out, errOut)
		}
	}

	// A second directory entry with Bob's email: both skipped, Bob's account left as it is.
	bob2 := person{uid: "bob2", given: "Robert", sn: "Marley", mail: "bob@example.com"}
	w.write("directory.ldif", ldifOf(bob, bob2, nomail, dup1, dup2, ursula, erinDir))
	out = w.ok("apply")
	if !strings.Contains(out, "duplicate_email: bob@example.com: directory entries staff:uid=bob,ou=people,dc=example,dc=com and staff:uid=bob2,ou=people,dc=example,dc=com") ||
		!strings.Contains(out, "Nothing to apply") {
		t.Errorf("a second entry with bob's email:\n%s", out)
	}
	if u := w.exportUsers()["bob@example.com"]; u.Active != "Y" || u.First != "Bob" {
		t.Errorf("bob after a duplicate entry: %+v", u)
	}

	// The sync template is deleted: its users' rows in the committed export now manage
	// them (nothing changes, nobody is deactivated), and an edit to a row applies.
	w.remove("templates/staff.yaml")
	if out, errOut, code := w.run("plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("plan after the template was deleted: exit %d\n%s\n%s", code, out, errOut)
	}
	data, err := os.ReadFile(filepath.Join(w.repo, "users/export.csv"))
	if err != nil {
		t.Fatal(err)
	}
	w.write("users/export.csv", strings.Replace(string(data), "\tBob\t", "\tRobert\t", 1))
	if out := w.ok("apply"); !strings.Contains(out, `first_name: "Bob" → "Robert"`) || strings.Contains(out, "deactivate") && !strings.Contains(out, "0 to deactivate") {
		t.Errorf("editing a row of a deleted template's user:\n%s", out)
	}
}

// TestPeopleActiveNAndLifetimeLimit: ACTIVE=N deactivates; the lifetime limit counts active
// and deactivated users and refuses a plan that crosses it, with a clear message.
func TestPeopleActiveNAndLifetimeLimit(t *testing.T) {
	t.Parallel()
	row := func(active, first, email string) string { return csvUser(active, first, "User", email, "", "") }
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":   peopleSettings + "lifetime_user_limit: 3\n",
		"users/local.csv": usersCSVHeader + row("Y", "Ann", "ann@example.com") + row("Y", "Ben", "ben@example.com"),
	})
	w.ok("apply")
	before := w.exportUsers()
	w.newMails()
	// Ben set to N: deactivated, same USERID.
	w.write("users/local.csv", usersCSVHeader+row("Y", "Ann", "ann@example.com")+row("N", "Ben", "ben@example.com"))
	out := w.ok("apply")
	if !strings.Contains(out, `! user "ben@example.com"`) {
		t.Errorf("ACTIVE=N: not deactivated:\n%s", out)
	}
	if u := w.exportUsers()["ben@example.com"]; u.Active != "N" || u.UserID != before["ben@example.com"].UserID {
		t.Errorf("ben after ACTIVE=N: %+v", u)
	}
	// A third user reaches the limit (3 = 2 + 1): allowed.
	w.write("users/local.csv", usersCSVHeader+row("Y", "Ann", "ann@example.com")+row("N", "Ben", "ben@example.com")+row("Y", "Cat", "cat@example.com"))
	w.ok("apply")
	// Ann leaves the CSV (deactivated, still counted) and Dan arrives: 4 > 3.
	w.write("users/local.csv", usersCSVHeader+row("N", "Ben", "ben@example.com")+row("Y", "Cat", "cat@example.com")+row("Y", "Dan", "dan@example.com"))
	w.fails([]string{"plan"}, "the lifetime user limit is 3 (active and deactivated users, ever); 3 exist and this plan adds 1",
		"lifetime_user_limit")
	w.fails([]string{"apply"}, "lifetime user limit is 3")
	if u := w.exportUsers(); len(u) != 3 || u["ann@example.com"].Active != "Y" {
		t.Errorf("a refused apply changed users: %v", u)
	}
	if ms := w.newMails(); len(ms) != 1 || ms[0].To != "cat@example.com" {
		t.Errorf("emails: %v, want only Cat's activation", recipients(ms))
	}
	// A USERID must match the account with that EMAIL.
	annID := before["ann@example.com"].UserID
	w.write("users/local.csv", usersCSVHeader+"999"+row("Y", "Ann", "ann@example.com")+row("N", "Ben", "ben@example.com")+row("Y", "Cat", "cat@example.com"))
	w.fails([]string{"plan"}, "users/local.csv:2: USERID 999 and EMAIL ann@example.com do not match an existing account")
	w.write("users/local.csv", usersCSVHeader+annID+row("Y", "Ann", "ann@example.com")+row("N", "Ben", "ben@example.com")+row("Y", "Cat", "cat@example.com"))
	if out, errOut, code := w.run("plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("ann's own USERID: exit %d\n%s\n%s", code, out, errOut)
	}
	// Reactivating a deactivated user does not count against the limit.
	w.write("users/local.csv", usersCSVHeader+row("Y", "Ann", "ann@example.com")+row("Y", "Ben", "ben@example.com")+row("Y", "Cat", "cat@example.com"))
	if out := w.ok("apply"); !strings.Contains(out, `^ user "ben@example.com"`) {
		t.Errorf("reactivate ben:\n%s", out)
	}
}

// TestPeopleTrackingCodes: the groups of tracking-codes.yaml are applied; CSV users' values
// are checked at plan time (required, an active dropdown code) with path:line errors, and
// an absent optional dropdown value takes the default. Directory users' values obey the
// same rules: one that breaks them is skipped (an existing account left unchanged) with a
// warning.
func TestPeopleTrackingCodes(t *testing.T) {
	t.Parallel()
	codes := `groups:
  - {slot: DIVISION, name: Division, input_mode: dropdown, usage: optional,
     codes: [{code: ENG}, {code: GEN, default: true}, {code: LEGACY, active: false}]}
  - {slot: PROJECT, name: Project, input_mode: text, usage: required}
`
	dee := person{uid: "dee", given: "Dee", sn: "Dir", mail: "dee@example.com"}
	eve := person{uid: "eve", given: "Eve", sn: "Dir", mail: "eve@example.com", dept: "LEGACY"}
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":        peopleSettings,
		"tracking-codes.yaml":  codes,
		"templates/staff.yaml": strings.Replace(peopleTemplate("staff", "paid"), "tracking: {DIVISION", "tracking: {PROJECT: Directory, DIVISION", 1),
		"directory.ldif":       ldifOf(dee, eve),
		"users/staff.csv": usersCSVHeader +
			csvUser("Y", "Ann", "Lee", "ann@example.com", "", "Atlas") + // line 2: DIVISION defaults to GEN
			csvUser("Y", "Ben", "Ng", "ben@example.com", "LEGACY", "Atlas") + // line 3: inactive code
			csvUser("Y", "Cat", "Roy", "cat@example.com", "ENG", "") + // line 4: PROJECT required
			csvUser("Y", "Dan", "Wu", "dan@example.com", "NOPE", "Atlas"), // line 5: not a code
	})
	for _, args := range [][]string{{"validate"}, {"plan"}} {
		w.fails(args,
			`users/staff.csv:3:`, `"LEGACY" is not an active code of tracking code group "Division"`,
			`users/staff.csv:4:`, `required by tracking code group "Project"`,
			`users/staff.csv:5:`, `"NOPE" is not an active code`)
	}
	w.write("users/staff.csv", usersCSVHeader+
		csvUser("Y", "Ann", "Lee", "ann@example.com", "", "Atlas")+
		csvUser("Y", "Cat", "Roy", "cat@example.com", "ENG", "Zephyr"))
	out := w.ok("apply")
	for _, want := range []string{`+ tracking group "DIVISION"`, `+ tracking group "PROJECT"`, `DIVISION="GEN"`,
		`invalid: eve@example.com: DIVISION "LEGACY" is not an active code of tracking code group "Division"`} {
		if !strings.Contains(out, want) {
			t.Errorf("apply lacks %q:\n%s", want, out)
		}
	}
	users := w.exportUsers()
	if users["ann@example.com"].Division != "GEN" || users["cat@example.com"].Division != "ENG" || users["cat@example.com"].Project != "Zephyr" ||
		users["dee@example.com"].Division != "GEN" || users["eve@example.com"].UserID != "" {
		t.Errorf("tracking values: %+v", users)
	}
	// Dee's department becomes a code that does not exist: she is left as she is.
	dee.dept = "NOPE"
	w.write("directory.ldif", ldifOf(dee, eve))
	out = w.ok("apply")
	if !strings.Contains(out, `invalid: dee@example.com: DIVISION "NOPE" is not an active code`) || !strings.Contains(out, "No changes") {
		t.Errorf("dee with an unknown code:\n%s", out)
	}
	if u := w.exportUsers()["dee@example.com"]; u.Division != "GEN" || u.Active != "Y" {
		t.Errorf("dee after an unknown code: %+v", u)
	}
	// A code made inactive: the group is updated, and a user holding it is refused at plan time.
	w.write("tracking-codes.yaml", strings.Replace(codes, "{code: ENG}", "{code: ENG, active: false}", 1))
	w.fails([]string{"plan"}, `users/staff.csv:3:`, `"ENG" is not an active code of tracking code group "Division"`)
}

// TestPeopleInvitations: Pexip Service invitations — the invitation email (name, expiry), the
// paid-licence budget in the plan and its limit, pending until accepted, the expiry in
// status (time left) and in the plan, revoke by removing the row, resend with `remind
// --invite` (fresh expiry), and an expired invitation frees its licence.
func TestPeopleInvitations(t *testing.T) {
	t.Parallel()
	settings := func(ttl string) string {
		return peopleSettings + "licenses: {paid: 4}\ninvite_ttl: " + ttl + "\n"
	}
	invites := func(rows ...string) string { return "name;email;username\n" + strings.Join(rows, "\n") + "\n" }
	ann := "Ann Lee;ann.lee@partner.example;ann.lee@partner.example"
	ben := "Ben Ng;ben.ng@partner.example;ben.ng@partner.example"
	cat := "Cat Roy;cat.roy@partner.example;cat.roy@partner.example"
	dan := "Dan Wu;dan.wu@partner.example;dan.wu@partner.example"
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":   settings("336h"),
		"users/local.csv": usersCSVHeader + csvUser("Y", "Olga", "Local", "olga@example.com", "", ""), // one paid user
		// Olga is invited too, in the commit that adds her as a user: not invited.
		"invites/q4.csv": invites(ann, ben, "Olga Local;olga@example.com;olga.local@example.com"),
	})
	start := time.Now().UTC()
	out := w.ok("plan")
	for _, want := range []string{`+ invite "ann.lee@partner.example"`, `name="Ann Lee"`, `status="pending"`, `expires_at=`,
		"✉ invite created → ann.lee@partner.example", "Paid licences: 3 used of 4, 1 remaining.",
		"already_member: olga@example.com: invites/q4.csv:4: olga@example.com already has an account; not invited"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`expires_at="([^"]+)"`).FindStringSubmatch(out); m == nil {
		t.Errorf("no expiry in the plan")
	} else if exp, err := time.Parse(time.RFC3339, m[1]); err != nil || exp.Sub(start) < 335*time.Hour || exp.Sub(start) > 337*time.Hour {
		t.Errorf("plan expiry %s (%v), want about 336h from now", m[1], err)
	}
	var jp struct {
		Emails   []struct{ To, Kind, Action string }
		Licenses struct{ Paid, Used, Remaining int }
		Changes  []struct{ Kind, Action, Key string }
	}
	if err := json.Unmarshal([]byte(w.ok("plan", "--format", "json")), &jp); err != nil {
		t.Fatal(err)
	}
	if jp.Licenses.Paid != 4 || jp.Licenses.Used != 3 || jp.Licenses.Remaining != 1 || len(jp.Emails) != 3 || len(jp.Changes) != 3 {
		t.Errorf("JSON plan: %+v", jp)
	}
	for _, e := range jp.Emails {
		if want := map[bool]string{true: "invite", false: "activation"}[strings.HasSuffix(e.To, "partner.example")]; e.Kind != want || e.Action != "created" {
			t.Errorf("JSON plan email %+v, want kind %s action created", e, want)
		}
	}
	w.ok("apply")
	mails := w.newMails()
	if got := strings.Join(recipients(mails), " "); got != "ann.lee@partner.example ben.ng@partner.example olga@example.com" {
		t.Fatalf("emails after apply went to %q", got)
	}
	expDay := start.Add(336 * time.Hour).Format("2006-01-02")
	for _, m := range mails[:2] {
		name := map[string]string{"ann.lee@partner.example": "Ann Lee", "ben.ng@partner.example": "Ben Ng"}[m.To]
		if !strings.Contains(m.Body, "Hello "+name) || !strings.Contains(m.Body, "expires on "+expDay) || !strings.Contains(m.Body, "Username: "+m.To) {
			t.Errorf("invitation to %s lacks the name %q or the expiry %s:\n%s", m.To, name, expDay, m.Body)
		}
	}
	inviteStatus := func() (string, map[string]PendingInvite) {
		var st Status
		if err := json.Unmarshal([]byte(w.ok("status", "--format", "json")), &st); err != nil {
			t.Fatal(err)
		}
		m := map[string]PendingInvite{}
		for _, in := range st.Invites {
			m[in.Email] = in
		}
		return w.ok("status"), m
	}
	text, pend := inviteStatus()
	if len(pend) != 2 || pend["ann.lee@partner.example"].TimeLeft != "13d 23h" || pend["ann.lee@partner.example"].Expired {
		t.Errorf("status pending invitations: %+v", pend)
	}
	if !strings.Contains(text, "ann.lee@partner.example expires "+expDay) || !strings.Contains(text, "(13d 23h)") || !strings.Contains(text, "2 pending invitations") {
		t.Errorf("status text lacks the invitations and their time left:\n%s", text)
	}

	// Two more invitations would need 5 paid licences of 4: refused, nothing sent.
	w.write("invites/q4.csv", invites(ann, ben, cat, dan))
	w.fails([]string{"apply"}, "paid licences: this plan needs 5", "licenses.paid is 4")
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("a refused plan sent %v", recipients(ms))
	}

	// Accept Ann's invitation: no longer pending, still a licence.
	w.write("invites/q4.csv", invites(ann, ben))
	if out := w.ok("invites", "accept", "Ann.Lee@partner.example"); !strings.Contains(out, "accepted") {
		t.Errorf("accept: %s", out)
	}
	w.fails([]string{"invites", "accept", "ann.lee@partner.example"}, "not pending")
	w.fails([]string{"invites", "accept", "nobody@partner.example"}, "no invitation for nobody@partner.example")
	if _, pend = inviteStatus(); len(pend) != 1 || pend["ben.ng@partner.example"].Email == "" {
		t.Errorf("pending after accepting ann: %+v", pend)
	}
	if out := w.ok("plan"); !strings.Contains(out, "Paid licences: 3 used of 4, 1 remaining.") {
		t.Errorf("licences after accepting ann:\n%s", out)
	}

	// Resend Ben's invitation: the email again (action reminder), a fresh expiry.
	oldExp := pend["ben.ng@partner.example"].ExpiresAt
	time.Sleep(1100 * time.Millisecond) // expiries are kept to the second
	out = w.ok("remind", "--invite", "ben.ng@partner.example")
	if !strings.Contains(out, "✉ invite reminder → ben.ng@partner.example") {
		t.Errorf("remind --invite:\n%s", out)
	}
	if ms := w.newMails(); len(ms) != 1 || ms[0].To != "ben.ng@partner.example" || !strings.Contains(ms[0].Body, "Hello Ben Ng") {
		t.Errorf("resent invitation: %v", ms)
	}
	if _, pend = inviteStatus(); !pend["ben.ng@partner.example"].ExpiresAt.After(oldExp) {
		t.Errorf("remind --invite kept the expiry %v (was %v)", pend["ben.ng@partner.example"].ExpiresAt, oldExp)
	}
	w.fails([]string{"remind", "--invite", "ann.lee@partner.example"}, `no pending or expired invitation for "ann.lee@partner.example"`)

	// Cat takes the last licence; then her row is removed before she accepts: revoked.
	w.write("invites/q4.csv", invites(ann, ben, cat))
	if out := w.ok("apply"); !strings.Contains(out, "Paid licences: 4 used of 4, 0 remaining.") {
		t.Errorf("cat invited:\n%s", out)
	}
	w.newMails()
	w.write("invites/q4.csv", invites(ann, ben))
	out = w.ok("apply")
	if !strings.Contains(out, `- invite "cat.roy@partner.example"`) || !strings.Contains(out, "Paid licences: 3 used of 4, 1 remaining.") {
		t.Errorf("cat's row removed: not revoked:\n%s", out)
	}
	if _, pend = inviteStatus(); pend["cat.roy@partner.example"].Email != "" {
		t.Errorf("a revoked invitation is still pending: %+v", pend)
	}
	w.fails([]string{"invites", "accept", "cat.roy@partner.example"}, "revoked")

	// Expiry: resend Ben's with a 1 s invite_ttl, wait; status and the plan show it expired,
	// and its licence is free again (Cat and Dan now fit).
	w.write("settings.yaml", settings("1s"))
	w.ok("remind", "--invite", "ben.ng@partner.example")
	w.newMails()
	time.Sleep(1100 * time.Millisecond)
	text, pend = inviteStatus()
	if b := pend["ben.ng@partner.example"]; !b.Expired || !strings.HasPrefix(b.TimeLeft, "expired") {
		t.Errorf("status after the expiry: %+v", b)
	}
	if !strings.Contains(text, "ben.ng@partner.example expires") || !strings.Contains(text, "expired") {
		t.Errorf("status text after the expiry:\n%s", text)
	}
	w.fails([]string{"invites", "accept", "ben.ng@partner.example"}, "expired", "roster remind --invite ben.ng@partner.example")
	w.write("settings.yaml", settings("336h"))
	w.write("invites/q4.csv", invites(ann, ben, cat, dan))
	out = w.ok("apply")
	for _, want := range []string{`~ invite "ben.ng@partner.example"`, `status: "pending" → "expired"`, `+ invite "cat.roy@partner.example"`,
		`+ invite "dan.wu@partner.example"`, "Paid licences: 4 used of 4, 0 remaining."} {
		if !strings.Contains(out, want) {
			t.Errorf("apply after ben's expiry lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Join(recipients(w.newMails()), " "); got != "cat.roy@partner.example dan.wu@partner.example" {
		t.Errorf("emails after the expiry: %q", got)
	}
	// Resending Ben's expired invitation now would need a fifth licence.
	w.fails([]string{"remind", "--invite", "ben.ng@partner.example"}, "licenses.paid is 4")
	// Dan's invitation revoked: the licence is free and Ben's can be resent, pending again.
	w.write("invites/q4.csv", invites(ann, ben, cat))
	w.ok("apply")
	if out := w.ok("remind", "--invite", "ben.ng@partner.example"); !strings.Contains(out, "✉ invite reminder → ben.ng@partner.example") {
		t.Errorf("resend an expired invitation:\n%s", out)
	}
	if ms := w.newMails(); len(ms) != 1 || ms[0].To != "ben.ng@partner.example" {
		t.Errorf("resent expired invitation: %v", recipients(ms))
	}
	if _, pend = inviteStatus(); pend["ben.ng@partner.example"].Expired || pend["ben.ng@partner.example"].TimeLeft != "13d 23h" {
		t.Errorf("ben after the resend: %+v", pend["ben.ng@partner.example"])
	}
	if out := w.ok("plan"); !strings.Contains(out, "Paid licences: 4 used of 4, 0 remaining.") || !strings.Contains(out, "No changes") {
		t.Errorf("plan after ben's resend:\n%s", out)
	}
}

// TestPeopleActivationEmails: Webex Control Hub — no activation email for a free licence;
// with auto_activation_emails off none is sent automatically but `notify users` sends them,
// once; a free→paid conversion always emails.
func TestPeopleActivationEmails(t *testing.T) {
	t.Parallel()
	ann := person{uid: "ann", given: "Ann", sn: "Lee", mail: "ann@example.com"}
	ben := person{uid: "ben", given: "Ben", sn: "Ng", mail: "ben@example.com"}
	cat := person{uid: "cat", given: "Cat", sn: "Roy", mail: "cat@example.com"}
	// "free" sees ann; "paid" sees ben and cat (their own subtree each).
	freeTmpl := strings.Replace(peopleTemplate("free", "free"), "(objectClass=inetOrgPerson)", "(uid=ann)", 1)
	paidTmpl := strings.Replace(peopleTemplate("paid", "paid"), "(objectClass=inetOrgPerson)", "(|(uid=ben)(uid=cat))", 1)
	noAuto := strings.Replace(peopleSettings, "auto_activation_emails: true", "auto_activation_emails: false", 1)
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":       noAuto,
		"templates/free.yaml": freeTmpl,
		"templates/paid.yaml": paidTmpl,
		"directory.ldif":      ldifOf(ann, ben, cat),
		"users/local.csv":     usersCSVHeader + csvUser("Y", "Lou", "Local", "lou@example.com", "", ""),
	})
	out := w.ok("apply")
	if strings.Contains(out, "✉") {
		t.Errorf("auto_activation_emails false: the apply plans emails:\n%s", out)
	}
	if ms := w.newMails(); len(ms) != 0 {
		t.Fatalf("auto_activation_emails false: %v got emails", recipients(ms))
	}
	users := w.exportUsers()
	// Notify Now: the active paid directory users never notified (not the free one, not the local one).
	out = w.ok("notify", "users")
	if !strings.Contains(out, "✉ activation created → ben@example.com") || strings.Contains(out, "ann@example.com") || strings.Contains(out, "lou@example.com") {
		t.Errorf("notify users:\n%s", out)
	}
	mails := w.newMails()
	if got := strings.Join(recipients(mails), " "); got != "ben@example.com cat@example.com" {
		t.Fatalf("notify users emailed %q", got)
	}
	for _, m := range mails {
		u := users[m.To]
		if !strings.Contains(m.Subject, u.First) || !strings.Contains(m.Body, "Hello "+u.First) || !strings.Contains(m.Body, "User ID: "+u.UserID) {
			t.Errorf("activation email to %s lacks %q / USERID %q:\n%s\n%s", m.To, u.First, u.UserID, m.Subject, m.Body)
		}
	}
	if out := w.ok("notify", "users"); !strings.Contains(out, "No changes") {
		t.Errorf("second notify users:\n%s", out)
	}
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("second notify users emailed %v", recipients(ms))
	}
	// Turning auto_activation_emails on later sends nothing to the notified.
	w.write("settings.yaml", peopleSettings)
	if out := w.ok("plan"); strings.Contains(out, "✉") {
		t.Errorf("auto_activation_emails on: emails for users already notified:\n%s", out)
	}
	// Free→paid conversion emails even with auto_activation_emails off.
	w.write("settings.yaml", noAuto)
	w.write("templates/free.yaml", strings.Replace(freeTmpl, "license: free", "license: paid", 1))
	out = w.ok("apply")
	if !strings.Contains(out, `license: "free" → "paid"`) || !strings.Contains(out, "✉ activation updated → ann@example.com") {
		t.Errorf("free→paid:\n%s", out)
	}
	mails = w.newMails()
	if len(mails) != 1 || mails[0].To != "ann@example.com" || !strings.Contains(mails[0].Body, "User ID: "+users["ann@example.com"].UserID) {
		t.Errorf("free→paid emails: %v", mails)
	}
	if out := w.ok("notify", "users"); !strings.Contains(out, "No changes") {
		t.Errorf("notify users after the conversion:\n%s", out)
	}
}

// TestPeopleLicencesFollowConversions: the paid-licence budget counts users as the plan
// leaves them — a free→paid conversion takes a licence (and is refused past
// licenses.paid), a paid→free one gives it back.
func TestPeopleLicencesFollowConversions(t *testing.T) {
	t.Parallel()
	ann := person{uid: "ann", given: "Ann", sn: "Lee", mail: "ann@example.com"}
	ben := person{uid: "ben", given: "Ben", sn: "Ng", mail: "ben@example.com"}
	settings := func(paid int) string { return peopleSettings + fmt.Sprintf("licenses: {paid: %d}\n", paid) }
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":        settings(2),
		"templates/staff.yaml": peopleTemplate("staff", "free"),
		"directory.ldif":       ldifOf(ann, ben),
		"users/local.csv":      usersCSVHeader + csvUser("Y", "Lou", "Local", "lou@example.com", "", ""),
	})
	if out := w.ok("apply"); !strings.Contains(out, "Paid licences: 1 used of 2, 1 remaining.") {
		t.Errorf("two free users and one paid:\n%s", out)
	}
	w.newMails()
	w.write("templates/staff.yaml", peopleTemplate("staff", "paid"))
	w.fails([]string{"apply"}, "paid licences: this plan needs 3", "licenses.paid is 2")
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("a refused conversion emailed %v", recipients(ms))
	}
	w.write("settings.yaml", settings(3))
	if out := w.ok("apply"); !strings.Contains(out, "Paid licences: 3 used of 3, 0 remaining.") {
		t.Errorf("free→paid within the budget:\n%s", out)
	}
	if got := strings.Join(recipients(w.newMails()), " "); got != "ann@example.com ben@example.com" {
		t.Errorf("free→paid emailed %q", got)
	}
	w.write("templates/staff.yaml", peopleTemplate("staff", "free"))
	if out := w.ok("plan"); !strings.Contains(out, "Paid licences: 1 used of 3, 2 remaining.") {
		t.Errorf("paid→free gives the licences back:\n%s", out)
	}
}
