package reconcile

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// The operator's one-off actions — reminders, "Notify Now", accepting an invitation — are
// small plans too, applied by Apply in one transaction with their audit rows and outbox
// rows. None of them searches the directory (Pexip: reminders do not resync).

// ReminderTargets says whom `roster remind` reminds.
type ReminderTargets struct {
	Templates, VMRs, Devices, Invites []string
}

// PlanReminders plans `action: reminder` emails for every VMR and device of the named
// templates, the named VMRs and devices, and resends the named pending (or expired)
// invitations with a fresh expiry.
func PlanReminders(repo *schema.Repo, defaults map[string]MailSpec, a *state.Actual, t ReminderTargets, commit string, now time.Time) (*Plan, error) {
	d := &Desired{Mail: MailFromRepo(repo, defaults)}
	p := &Plan{FormatVersion: FormatVersion, Commit: commit, StateVersion: a.StateVersion}
	vmrs := byKey(a.VMRs, func(v *account.VMR) string { return v.Name })
	devices := byKey(a.Devices, func(d *account.Device) string { return d.Alias })
	var missing []string
	seenV, seenD := map[*account.VMR]bool{}, map[*account.Device]bool{}
	var vs []*account.VMR
	var ds []*account.Device
	for _, name := range t.Templates {
		n := 0
		for _, v := range a.VMRs {
			if v.SyncTag == name && !seenV[v] {
				seenV[v] = true
				vs = append(vs, v)
				n++
			}
		}
		for _, dv := range a.Devices {
			if dv.SyncTag == name && !seenD[dv] {
				seenD[dv] = true
				ds = append(ds, dv)
				n++
			}
		}
		if n == 0 {
			missing = append(missing, "template "+name+" owns no VMR or device")
		}
	}
	vs, missing = pickNamed(vmrs, t.VMRs, "no VMR named %q", seenV, vs, missing)
	ds, missing = pickNamed(devices, t.Devices, "no device alias %q", seenD, ds, missing)
	invites := map[string]*account.Invite{}
	for _, in := range a.Invites {
		invites[in.Email] = in
	}
	ttl := repo.Settings.InviteTTL.Duration
	if ttl <= 0 {
		ttl = 336 * time.Hour
	}
	revived := 0 // resent invitations that hold no licence now (expired)
	for _, email := range t.Invites {
		in := invites[strings.ToLower(email)]
		if in == nil || (in.Status != "pending" && in.Status != "expired") {
			missing = append(missing, fmt.Sprintf("no pending or expired invitation for %q", email))
			continue
		}
		if in.Status == "expired" || !now.Before(in.ExpiresAt) {
			revived++
		}
		re := *in
		re.Status, re.ExpiresAt = "pending", now.Add(ttl)
		p.changes = append(p.changes, &Change{Kind: account.KindInvite, Action: account.ActionUpdate, Key: re.Email,
			oldObj: in, newObj: &re, Fields: []FieldChange{{Name: "expires_at", Old: in.ExpiresAt, New: re.ExpiresAt}}})
		if m := d.Mail["invite"]; m != nil && m.VMR != nil {
			p.emails.add(&Email{To: re.Email, Kind: account.KindInvite, Action: account.EmailReminder, Key: re.Email, mail: m.VMR,
				obj: &re})
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("remind: %s", strings.Join(missing, "; "))
	}
	if budget := repo.Settings.Licenses.Paid; budget > 0 && revived > 0 {
		// An expired invitation freed its licence; resending it takes one again.
		if used := licencesHeld(a, now); used+revived > budget {
			return nil, fmt.Errorf("remind: resending %d expired invitation(s) needs %d paid licences but licenses.paid is %d (%d in use); "+
				"raise it in settings.yaml or revoke other invitations", revived, used+revived, budget, used)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
	sort.Slice(ds, func(i, j int) bool { return ds[i].Alias < ds[j].Alias })
	for _, v := range vs {
		before := p.EmailCount()
		vmrKind.addEmail(p, d, v, account.EmailReminder)
		if p.EmailCount() == before {
			p.Warnings = append(p.Warnings, Warning{Code: "no_email", Key: v.Name, Template: v.SyncTag, Message: "no owner email or no VMR email template; no reminder"})
		}
	}
	for _, dv := range ds {
		before := p.EmailCount()
		deviceKind.addEmail(p, d, dv, account.EmailReminder)
		if p.EmailCount() == before {
			p.Warnings = append(p.Warnings, Warning{Code: "no_email", Key: dv.Alias, Template: dv.SyncTag, Message: "no owner email or no device email template; no reminder"})
		}
	}
	p.finish()
	return p, nil
}

// PlanNotifyUsers is WebEx's "Notify Now": the activation email to every active user
// added by directory synchronisation who was never notified (paid licences only, as
// Control Hub does); each user is notified once in their lifetime.
func PlanNotifyUsers(repo *schema.Repo, defaults map[string]MailSpec, a *state.Actual, commit string) *Plan {
	d := &Desired{Mail: MailFromRepo(repo, defaults)}
	p := &Plan{FormatVersion: FormatVersion, Commit: commit, StateVersion: a.StateVersion}
	for _, u := range a.Users {
		if !u.Active || u.Notified || u.Origin != "remote" || u.License != "paid" {
			continue
		}
		want := *u
		want.Notified = true
		p.changes = append(p.changes, &Change{Kind: account.KindUser, Action: account.ActionUpdate, Key: u.Email, Template: u.SyncTag,
			oldObj: u, newObj: &want, Fields: []FieldChange{{Name: "notified", Old: false, New: true}}})
		p.addActivation(d, &want, account.EmailCreated)
	}
	p.finish()
	return p
}

// PlanAcceptInvite marks a pending invitation accepted (`roster invites accept EMAIL`).
func PlanAcceptInvite(a *state.Actual, email string, now time.Time) (*Plan, error) {
	p := &Plan{FormatVersion: FormatVersion, StateVersion: a.StateVersion}
	email = strings.ToLower(strings.TrimSpace(email))
	for _, in := range a.Invites {
		if in.Email != email {
			continue
		}
		if in.Status != "pending" {
			return nil, fmt.Errorf("invitation for %s is %s, not pending", email, in.Status)
		}
		if !now.Before(in.ExpiresAt) {
			return nil, fmt.Errorf("invitation for %s expired at %s; resend it with `roster remind --invite %s`", email, in.ExpiresAt.Format(time.RFC3339), email)
		}
		acc := *in
		acc.Status, acc.AcceptedAt = "accepted", now
		p.changes = append(p.changes, &Change{Kind: account.KindInvite, Action: account.ActionUpdate, Key: email,
			oldObj: in, newObj: &acc, Fields: []FieldChange{{Name: "status", Old: "pending", New: "accepted"}}})
		p.finish()
		return p, nil
	}
	return nil, fmt.Errorf("no invitation for %s", email)
}

// licencesHeld counts the paid licences in use: active paid users, pending invitations not
// yet expired, and accepted invitations whose invitee has no user account.
func licencesHeld(a *state.Actual, now time.Time) int {
	n := 0
	users := make(map[string]bool, len(a.Users))
	for _, u := range a.Users {
		users[strings.ToLower(u.Email)] = true
		if u.Active && u.License == "paid" {
			n++
		}
	}
	for _, in := range a.Invites {
		if in.Status == "pending" && now.Before(in.ExpiresAt) || in.Status == "accepted" && !users[in.Email] {
			n++
		}
	}
	return n
}

// pickNamed appends to out the objects byKey holds under keys, each once (seen), and to
// missing a line, after notFound, for each key it does not hold.
func pickNamed[T any](byKey map[string]*T, keys []string, notFound string, seen map[*T]bool, out []*T, missing []string) ([]*T, []string) {
	for _, k := range keys {
		if x := byKey[k]; x == nil {
			missing = append(missing, fmt.Sprintf(notFound, k))
		} else if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out, missing
}
