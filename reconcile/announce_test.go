package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const announceFile = `id: a1
to: [all_active_users, "template:staff", ops@example.com]
bcc: [it@example.com]
subject: Maintenance
body_file: emails/m.txt
`

// TestAnnouncementPlannedOnceAndEditsRefused: a new announcement is planned to the active
// users, the template's owners and the addresses (each once), counted in the emails; once
// applied it is never planned again, and an edit of any field is a plan-wide error at that
// field's place that names a new id; a change of where the body comes from is no edit.
func TestAnnouncementPlannedOnceAndEditsRefused(t *testing.T) {
	h := newHarness(t, alice, bob, dave)
	h.write("emails/m.txt", "Hello {{ first_name }}\n")
	h.write("announcements/a1.yaml", announceFile)
	p := h.plan()
	if len(p.Announcements) != 1 {
		t.Fatalf("announcements planned: %d", len(p.Announcements))
	}
	an := p.Announcements[0]
	var got []string
	for _, rc := range an.to {
		got = append(got, rc.addr)
	}
	want := []string{alice.mail, bob.mail, dave.mail, "ops@example.com", "it@example.com"}
	if !slices.Equal(got, want) || an.Recipients != 5 || p.Summary.Emails != p.EmailCount()+5 || p.Safety.Emails != p.Summary.Emails {
		t.Errorf("recipients %v (%d), summary %d emails (%d others), safety %d; want %v", got, an.Recipients, p.Summary.Emails, p.EmailCount(), p.Safety.Emails, want)
	}
	h.mustApply()
	if n := h.count(`SELECT COUNT(*) FROM outbox WHERE kind = 'announcement' AND object_key = 'a1'`); n != 5 {
		t.Fatalf("outbox rows of a1: %d, want 5", n)
	}
	if p := h.plan(); p.HasChanges() || len(p.Errors) > 0 {
		t.Fatalf("plan after applying: %d announcements, errors %v", len(p.Announcements), p.Errors)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"to", "all_active_users, ", "", "announcements/a1.yaml:2:5: to: "},
		{"bcc", "it@example.com", "it2@example.com", "announcements/a1.yaml:3:6: bcc: "},
		{"subject", "Maintenance", "Maintenance!", "announcements/a1.yaml:4:10: subject: "},
		{"body", "body_file: emails/m.txt", "body: \"Hi\"", "announcements/a1.yaml:5:7: body: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.write("announcements/a1.yaml", strings.Replace(announceFile, tc.from, tc.to, 1))
			p := h.plan()
			if len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Message, tc.want) || !strings.Contains(p.Errors[0].Message, "new id") ||
				len(p.Announcements) != 0 {
				t.Fatalf("errors %v, want one at %q naming a new id", p.Errors, tc.want)
			}
			if err := p.Check(h.cfg.Safety, Allowances{Emails: 1000}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("apply not refused: %v", err)
			}
		})
	}
	// The same text inline, and reordered recipients in another letter case, say the same.
	h.write("announcements/a1.yaml", fmt.Sprintf("id: a1\nto: [OPS@example.com, \"template:staff\", all_active_users]\nbcc: it@example.com\nsubject: Maintenance\nbody: %q\n", "Hello {{ first_name }}\n"))
	if p := h.plan(); p.HasChanges() || len(p.Errors) > 0 {
		t.Errorf("an unchanged announcement: errors %v", p.Errors)
	}
	h.remove("announcements/a1.yaml")
	if p := h.plan(); p.HasChanges() {
		t.Error("removing a sent announcement plans something")
	}
}
