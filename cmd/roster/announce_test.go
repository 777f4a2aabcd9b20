//go:build unix

package main

// End to end test of announcements (SPEC §9, issue 16) through the CLI and an in-process
// SMTP server: planned with the recipient count, sent once to the right recipients (bcc as
// one copy of its own), never again, an edit after sending refused with file:line:col, and
// shown by `roster status`.

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

const announceYAML = `id: 2026-12-maintenance
subject: "Maintenance on Saturday"
to: [all_active_users, "csv:users/local.csv", guest@partner.example]
bcc: [it@example.com]
body_file: emails/maintenance.html
`

func TestAnnouncementSentOnceOverSMTP(t *testing.T) {
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":        strings.Replace(peopleSettings, "auto_activation_emails: true", "auto_activation_emails: false", 1),
		"templates/staff.yaml": peopleTemplate("staff", "free"),
		"directory.ldif": ldifOf(person{uid: "amy", given: "Amy", sn: "Ng", mail: "amy@example.com"},
			person{uid: "bo", given: "Bo", sn: "Li", mail: "bo@example.com"},
			person{uid: "cy", given: "Cy", sn: "Old", mail: "cy@example.com", disabled: true}),
		"users/local.csv": usersCSVHeader + csvUser("Y", "Dee", "Local", "dee@example.com", "", "") +
			csvUser("N", "Eve", "Gone", "eve@example.com", "", ""),
		"emails/maintenance.html":                "<p>Hello {{ first_name|default('there') }},</p><p>the service is down on Saturday.</p>\n",
		"announcements/2026-12-maintenance.yaml": announceYAML,
	})
	// Amy, Bo and Dee are active (Cy is disabled, Eve inactive); guest and it@ are addresses.
	want := []string{"amy@example.com", "bo@example.com", "dee@example.com", "guest@partner.example", "it@example.com"}

	out := w.ok("plan")
	if !strings.Contains(out, `✉ announcement "2026-12-maintenance" → 5 recipients: "Maintenance on Saturday"`) ||
		!strings.Contains(out, ", 5 emails.") {
		t.Fatalf("plan does not list the announcement with 5 recipients:\n%s", out)
	}
	var plan struct {
		Summary       struct{ Emails int }
		Announcements []struct {
			ID              string
			Recipients      int
			FirstRecipients []string `json:"first_recipients"`
			Bcc             []string
		}
	}
	if err := json.Unmarshal([]byte(w.ok("plan", "--format", "json")), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Announcements) != 1 || plan.Announcements[0].Recipients != 5 || plan.Summary.Emails != 5 ||
		!slices.Equal(plan.Announcements[0].FirstRecipients, want) || !slices.Equal(plan.Announcements[0].Bcc, []string{"it@example.com"}) {
		t.Errorf("JSON plan: %+v", plan)
	}
	if md := w.ok("plan", "--format", "markdown"); !strings.Contains(md, "Announcements (1)") || !strings.Contains(md, "`amy@example.com`") {
		t.Errorf("markdown plan lacks the announcement:\n%s", md)
	}

	w.ok("apply")
	ms := w.newMails()
	if got := recipients(ms); !slices.Equal(got, want) {
		t.Fatalf("sent to %v, want %v", got, want)
	}
	for _, m := range ms {
		greeting := map[string]string{"amy@example.com": "Hello Amy,", "dee@example.com": "Hello Dee,", "guest@partner.example": "Hello there,"}[m.To]
		if m.Subject != "Maintenance on Saturday" || !strings.Contains(m.Body, greeting) || m.Header.Get("Bcc") != "" {
			t.Errorf("email to %s: subject %q, body %q, Bcc %q", m.To, m.Subject, m.Body, m.Header.Get("Bcc"))
		}
	}

	// A second apply sends nothing, nor does one after a new user arrives.
	if out := w.ok("apply"); !strings.Contains(out, "Nothing to apply") {
		t.Errorf("second apply:\n%s", out)
	}
	w.write("directory.ldif", ldifOf(person{uid: "amy", given: "Amy", sn: "Ng", mail: "amy@example.com"},
		person{uid: "bo", given: "Bo", sn: "Li", mail: "bo@example.com"}, person{uid: "fay", given: "Fay", sn: "New", mail: "fay@example.com"}))
	w.ok("apply")
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("applies after the announcement sent %v", recipients(ms))
	}

	// Editing it after sending is refused by plan and apply, at the changed field.
	w.write("announcements/2026-12-maintenance.yaml", strings.Replace(announceYAML, "on Saturday", "on Sunday", 1))
	for _, cmd := range []string{"plan", "apply"} {
		w.fails([]string{cmd}, `announcements/2026-12-maintenance.yaml:2:10: subject: announcement "2026-12-maintenance" was sent on`,
			"cannot be edited", "new id")
	}
	w.write("announcements/2026-12-maintenance.yaml", strings.Replace(announceYAML, "it@example.com", "it2@example.com", 1))
	w.fails([]string{"apply"}, "announcements/2026-12-maintenance.yaml:4:6: bcc:")
	if ms := w.newMails(); len(ms) != 0 {
		t.Errorf("refused applies sent %v", recipients(ms))
	}
	// Restored, or removed: nothing to do.
	w.write("announcements/2026-12-maintenance.yaml", announceYAML)
	if out := w.ok("plan"); !strings.Contains(out, "No changes") {
		t.Errorf("plan with the announcement as sent:\n%s", out)
	}
	w.remove("announcements/2026-12-maintenance.yaml")
	if out := w.ok("apply"); !strings.Contains(out, "Nothing to apply") || len(w.newMails()) != 0 {
		t.Errorf("apply after removing the file:\n%s", out)
	}

	// status shows it with its delivery, and the audit log has it.
	st := w.ok("status")
	if !strings.Contains(st, `2026-12-maintenance "Maintenance on Saturday" applied`) || !strings.Contains(st, "5 emails, 5 sent, 0 pending, 0 failed") {
		t.Errorf("status:\n%s", st)
	}
	var js struct {
		Announcements []struct {
			ID     string
			Outbox map[string]int
		}
	}
	if err := json.Unmarshal([]byte(w.ok("status", "--format", "json")), &js); err != nil || len(js.Announcements) != 1 || js.Announcements[0].Outbox["sent"] != 5 {
		t.Errorf("status JSON: %v %+v", err, js)
	}
}

// TestAnnouncementGuardedByMaxEmails: an announcement counts in safety.max_emails; beyond
// it apply is refused unless --allow-emails covers it.
func TestAnnouncementGuardedByMaxEmails(t *testing.T) {
	w := newPeopleWorkspace(t, map[string]string{
		"settings.yaml":        peopleSettings,
		"announcements/a.yaml": "id: a\nsubject: Hi\nto: [a@example.com, b@example.com, c@example.com]\nbody: Hello\n",
	})
	cfg, err := os.ReadFile(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.cfg, []byte(strings.Replace(string(cfg), "max_emails: 1000", "max_emails: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.fails([]string{"apply"}, "the plan would send 3 emails, above safety.max_emails 2", "--allow-emails 3")
	if ms := w.newMails(); len(ms) != 0 {
		t.Fatalf("a refused apply sent %v", recipients(ms))
	}
	w.ok("apply", "--allow-emails", "3")
	if got := recipients(w.newMails()); !slices.Equal(got, []string{"a@example.com", "b@example.com", "c@example.com"}) {
		t.Errorf("sent to %v", got)
	}
}
