package reconcile

// Announcements (SPEC §9, "Email Users"): each announcements/ file not yet sent becomes one
// email per recipient, planned here against the state as the plan leaves it, and enqueued
// by Apply with the record that makes its id go out once, ever. A sent announcement whose
// file changed since is a plan-wide error at the changed field's file:line:col.
//
// Bcc: each bcc address gets one copy of its own (To: that address), never a Bcc header
// on every recipient's message — an operator who copies the IT team on a message to 50,000
// users expects one copy in the team's mailbox, not 50,000.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// firstRecipients is how many recipients a plan shows by name per announcement.
const firstRecipients = 10

// Announcement is an announcement the plan sends.
type Announcement struct {
	ID         string   `json:"id"`
	Subject    string   `json:"subject"`
	Recipients int      `json:"recipients"` // emails it sends, bcc copies included
	First      []string `json:"first_recipients"`
	Bcc        []string `json:"bcc,omitempty"`

	to      []recipient // every recipient, in order, bcc copies last
	mail    MailSpec
	digests map[string]string
}

// recipient is one address an announcement goes to, with the names of its user account
// when it has one (the email's first_name and last_name variables).
type recipient struct{ addr, first, last string }

// announcementEmails is how many emails the plan's announcements send.
func (p *Plan) announcementEmails() int {
	n := 0
	for _, an := range p.Announcements {
		n += an.Recipients
	}
	return n
}

// announcementsDue reports whether any announcement is not sent yet: the plan then needs
// every user, VMR and device to resolve its recipients (hydrate).
func announcementsDue(as []*schema.Announcement, sent map[string]*state.Announced) bool {
	for _, an := range as {
		if sent[an.ID] == nil {
			return true
		}
	}
	return false
}

func planAnnouncements(p *Plan, d *Desired, a *state.Actual) {
	var r *resolver
	for _, an := range d.Announcements {
		if sent := a.Announced[an.ID]; sent != nil {
			if msg := editedAfterSending(an, sent); msg != "" {
				p.Errors = append(p.Errors, Problem{Message: msg})
			}
			continue
		}
		if r == nil {
			r = newResolver(p, d, a)
		}
		to := r.recipients(an)
		if len(to) == 0 {
			p.Warnings = append(p.Warnings, Warning{Code: "no_recipients", Key: an.ID, Message: fmt.Sprintf(
				"announcement %s (%s:%d) has no recipients yet; it is sent once it has some", an.ID, an.Pos.Path, an.Pos.Line)})
			continue
		}
		smtp := an.SMTPServer
		if smtp == "" {
			smtp = d.Settings.Emails.SMTPServer
		}
		pa := &Announcement{ID: an.ID, Subject: an.Subject, Recipients: len(to), to: to, digests: an.FieldDigests(),
			mail: MailSpec{SMTPServer: smtp, Subject: an.Subject, Body: an.Body, BodyPath: an.BodyFile, HTML: an.HTML}}
		for _, rc := range to[:min(len(to), firstRecipients)] {
			pa.First = append(pa.First, rc.addr)
		}
		for _, b := range an.Bcc {
			pa.Bcc = append(pa.Bcc, strings.TrimSpace(b))
		}
		p.Announcements = append(p.Announcements, pa)
	}
}

// editedAfterSending says what changed in a sent announcement, at the place in its file,
// and what to do instead; "" when nothing did.
func editedAfterSending(an *schema.Announcement, sent *state.Announced) string {
	now := an.FieldDigests()
	var changed []string
	for _, f := range schema.AnnouncementFields {
		if now[f] != sent.Digests[f] {
			changed = append(changed, f)
		}
	}
	if len(changed) == 0 {
		return ""
	}
	pos := an.FieldPos[changed[0]]
	if pos.Line == 0 {
		pos = an.Pos
	}
	from := "commit " + short(sent.Commit)
	if sent.Commit == "" {
		from = "from a working tree"
	}
	return fmt.Sprintf("%s:%d:%d: %s: announcement %q was sent on %s (%s, %d emails) and cannot be edited, but its %s changed since. "+
		"Restore it as it was sent (or delete the file: a sent announcement is never sent again) and put the new message in a new file with a new id",
		pos.Path, pos.Line, pos.Col, changed[0], an.ID, sent.AppliedAt.Format("2006-01-02 15:04 MST"), from, sent.Recipients,
		strings.Join(changed, " and "))
}

// resolver finds the recipients of announcements in the state as the plan leaves it.
type resolver struct {
	d       *Desired
	users   map[string]*account.User // by lower-case email
	emails  []string                 // users' keys, sorted
	vmrs    map[string]*account.VMR
	devices map[string]*account.Device
}

func newResolver(p *Plan, d *Desired, a *state.Actual) *resolver {
	r := &resolver{d: d, users: make(map[string]*account.User, len(a.Users))}
	for _, u := range a.Users {
		r.users[strings.ToLower(u.Email)] = u
	}
	for c := range p.unordered() {
		if u := c.newUser(); u != nil {
			r.users[strings.ToLower(u.Email)] = u
		}
	}
	r.emails = make([]string, 0, len(r.users))
	for e := range r.users {
		r.emails = append(r.emails, e)
	}
	slices.Sort(r.emails)
	r.vmrs, r.devices = endOwned(p, a)
	return r
}

// recipients are an's addresses: its `to` entries in order (each group by address), then
// its bcc addresses; an address is emailed once, whatever its letter case.
func (r *resolver) recipients(an *schema.Announcement) []recipient {
	var out []recipient
	seen := map[string]bool{}
	add := func(addr string) {
		key := strings.ToLower(addr)
		if addr == "" || seen[key] {
			return
		}
		seen[key] = true
		rc := recipient{addr: addr}
		if u := r.users[key]; u != nil {
			rc.first, rc.last = u.FirstName, u.LastName
		}
		out = append(out, rc)
	}
	for _, t := range an.Targets {
		switch t.Kind {
		case schema.TargetAllActiveUsers:
			for _, e := range r.emails {
				if u := r.users[e]; u.Active {
					add(u.Email)
				}
			}
		case schema.TargetTemplate:
			var addrs []string
			for _, e := range r.emails {
				if u := r.users[e]; u.Active && u.SyncTag == t.Value {
					addrs = append(addrs, u.Email)
				}
			}
			for _, v := range r.vmrs {
				if v.SyncTag == t.Value {
					addrs = append(addrs, v.OwnerEmail)
				}
			}
			for _, dv := range r.devices {
				if dv.SyncTag == t.Value {
					addrs = append(addrs, dv.OwnerEmail)
				}
			}
			slices.Sort(addrs)
			for _, a := range addrs {
				add(a)
			}
		case schema.TargetCSV:
			for _, row := range r.d.UserRows {
				if row.Active && row.Pos.Path == t.Value {
					add(row.Email)
				}
			}
		case schema.TargetAddress:
			add(t.Value)
		}
	}
	for _, b := range an.Bcc {
		add(strings.TrimSpace(b))
	}
	return out
}

// fingerprintAnnouncements hashes what the announcements send and to whom.
func (p *Plan) fingerprintAnnouncements(w *fpWriter) {
	for _, an := range p.Announcements {
		w.s(an.ID)
		for _, f := range schema.AnnouncementFields {
			w.s(an.digests[f])
		}
		w.s(an.mail.SMTPServer)
		w.i(int64(len(an.to)))
		for _, rc := range an.to {
			w.s(rc.addr)
			w.s(rc.first)
			w.s(rc.last)
		}
	}
}

// enqueueAnnouncements writes one outbox row per recipient of each announcement, its audit
// row and the record that the id was sent, in the apply's transaction. The outbox rows are
// the per-recipient record (address, status, sent_at); the audit log gets one row per
// announcement, not 50,000.
func enqueueAnnouncements(ctx context.Context, w *state.Writer, p *Plan, opts ApplyOptions) error {
	for _, an := range p.Announcements {
		emails := make([]state.Email, len(an.to))
		for i, rc := range an.to {
			emails[i] = state.Email{Kind: string(account.KindAnnouncement), Action: string(account.ActionAnnounce), ObjectKey: an.ID,
				To: rc.addr, SMTPServer: an.mail.SMTPServer, Commit: p.Commit, Subject: an.mail.Subject, Body: an.mail.Body,
				BodyPath: an.mail.BodyPath, HTML: an.mail.HTML,
				Vars: map[string]any{"email": rc.addr, "first_name": rc.first, "last_name": rc.last, "id": an.ID}}
		}
		tx, err := w.Tx()
		if err != nil {
			return err
		}
		if err := state.EnqueueBatched(ctx, tx, opts.Now, emails); err != nil {
			return fmt.Errorf("announcement %s: %w", an.ID, err)
		}
		if err := w.AnnouncementSent(state.Announced{ID: an.ID, Subject: an.Subject, Digests: an.digests, Recipients: len(an.to),
			Commit: p.Commit, Actor: opts.Actor}); err != nil {
			return err
		}
		if err := w.Audit(p.Commit, opts.Actor, account.KindAnnouncement, account.ActionAnnounce, an.ID,
			fmt.Sprintf("%d emails: %s", len(an.to), an.Subject)); err != nil {
			return err
		}
	}
	return nil
}

// announcementLine is an announcement as the text and markdown plans show it: addr and
// text quote addresses and the id and subject for the format.
func announcementLine(an *Announcement, addr, text func(string) string) string {
	shown := an.First[:min(len(an.First), 3)] // the JSON plan names firstRecipients
	names := make([]string, len(shown))
	for i, a := range shown {
		names[i] = addr(a)
	}
	more := ""
	if n := an.Recipients - len(shown); n > 0 {
		more = fmt.Sprintf(", … %d more", n)
	}
	return fmt.Sprintf("✉ announcement %s → %d recipients: %s (%s%s)", text(an.ID), an.Recipients, text(an.Subject), strings.Join(names, ", "), more)
}
