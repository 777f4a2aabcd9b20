package reconcile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// diffUsers applies the WebEx rules: one account per email; users are never deleted but
// deactivated, and reactivated (keeping USERID) when they come back; a local user found in
// the directory becomes remote; the lifetime limit counts active and deactivated users.
func diffUsers(p *Plan, d *Desired, a *state.Actual, settled func(string) bool) {
	byEmail := d.indexFor(a).users
	seen := make(map[string]bool, d.Users.Len()+len(d.SameUsers))
	for _, u := range d.SameUsers {
		email := strings.ToLower(u.Email)
		if !seen[email] {
			seen[email] = true
			p.Summary.Unchanged++
		}
	}
	templates := make(map[string]bool, len(d.Templates))
	for _, t := range d.Templates {
		templates[t.Name] = true
	}
	seq := a.MaxUserSeq
	var creates []int32 // positions in d.Users
	for i, du := range d.Users.All() {
		email := strings.ToLower(du.Email)
		old := byEmail[email]
		if given := du.givenUserID(); given != "" && (old == nil || !strings.EqualFold(old.UserID, given)) {
			seen[email] = true
			p.Errors = append(p.Errors, Problem{Message: fmt.Sprintf(
				"%s:%d: USERID %s and EMAIL %s do not match an existing account; leave USERID blank to add a new user",
				du.CSV.Pos.Path, du.CSV.Pos.Line, given, du.Email)})
			continue
		}
		if old != nil && old.Origin == "remote" && du.Origin == "local" && templates[old.SyncTag] {
			// Once remote, always remote (WebEx): the directory governs the account. A CSV
			// row for it (say an export committed back) neither changes it nor keeps it
			// active: a directory user the directory no longer has is deactivated below,
			// as WebEx's directory integration does, unless its template failed. Only once
			// its template is gone from the repo does a CSV row manage it.
			continue
		}
		seen[email] = true
		if msg := trackingProblem(d.Tracking, &du.User); msg != "" && du.Origin == "remote" && !du.Disabled {
			// The CSV's values are checked when the file is loaded; the directory's here.
			p.Warnings = append(p.Warnings, Warning{Code: "invalid", Key: email, Template: du.SyncTag,
				Message: msg + "; this user is left unchanged"})
			continue
		}
		if old == nil {
			if du.Disabled || !du.Active && du.Origin == "remote" {
				continue // inactive directory users are not imported (WebEx)
			}
			creates = append(creates, int32(i)) // emails are lower-case from render and mergeUsers
			continue
		}
		want, fields := userUpdate(old, du)
		if len(fields) == 0 {
			p.Summary.Unchanged++
			continue
		}
		action := account.ActionUpdate
		switch {
		case old.Active && !want.Active:
			action = account.ActionDeactivate
		case !old.Active && want.Active:
			action = account.ActionReactivate
		}
		if activationDue(d, old, &want) {
			want.Notified = true
			p.addActivation(d, &want, account.EmailUpdated)
		}
		p.changes = append(p.changes, &Change{Kind: account.KindUser, Action: action, Key: email, Template: want.SyncTag,
			Fields: fields, newObj: &want, oldObj: old})
	}
	// New accounts get their USERIDs in email order, the order apply writes them in: the
	// USERID index then grows at its end instead of at random places.
	sorted := make([]keyed, len(creates)) // emails decoded once, not at each comparison
	for k, i := range creates {
		sorted[k] = keyed{d.Users.Key(int(i)), k}
	}
	slices.SortFunc(sorted, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	creates = reorder(creates, sorted)
	created := len(creates)
	for _, i := range creates {
		// The new account is the desired user with its USERID and notified flag, which
		// the plan keeps beside it (a first apply creates 400,000: no copy).
		du := d.Users.At(int(i))
		want := &du.User
		seq++
		want.UserID = strconv.FormatInt(seq, 10)
		want.Notified = false
		if activationDue(d, nil, want) {
			want.Notified = true
			if e, ok := activationOf(d, want, account.EmailCreated); ok {
				p.emails.addCreation(&e, i, seq) // the user is not held: the plan's creations have it
			}
		}
		p.created.addUser(&d.Users, createdUser{i: i, notified: want.Notified, seq: seq}, want.SyncTag)
	}
	for _, u := range a.Users {
		email := strings.ToLower(u.Email)
		if seen[email] || !u.Active {
			continue
		}
		if u.Origin == "remote" && (settled(u.SyncTag) || d.Keep[ownerKey(u.SyncTag, u.EntryKey, "")]) || d.Keep[userOwner(email)] {
			continue // its template or entry failed this cycle: change nothing
		}
		want := *u
		want.Active = false
		p.changes = append(p.changes, &Change{Kind: account.KindUser, Action: account.ActionDeactivate, Key: email, Template: u.SyncTag,
			Fields: []FieldChange{{Name: "active", Old: true, New: false}}, newObj: &want, oldObj: u})
	}
	if n := a.Totals().Users; d.UserLimit > 0 && n+created > d.UserLimit {
		p.Errors = append(p.Errors, Problem{Message: fmt.Sprintf(
			"the lifetime user limit is %d (active and deactivated users, ever); %d exist and this plan adds %d. "+
				"Raise lifetime_user_limit in settings.yaml or remove users from the sources",
			d.UserLimit, n, created)})
	}
}

// userUpdate is what du makes of the existing account old: the user to write and the
// fields that differ. Render uses it too, to drop entries that change nothing.
func userUpdate(old *account.User, du *DesiredUser) (account.User, []FieldChange) {
	want := du.User
	want.Email = strings.ToLower(du.Email)
	want.ID, want.UserID, want.Notified = old.ID, old.UserID, old.Notified
	if want.Origin == "local" && old.Origin == "remote" {
		// Once remote, always remote (WebEx): a CSV row for a directory user — say an
		// export committed back — does not turn the account local again.
		want.Origin, want.SyncTag, want.EntryKey, want.License = old.Origin, old.SyncTag, old.EntryKey, old.License
	}
	if du.Disabled {
		want.Active = false
	}
	return want, userFieldChanges(old, &want)
}

// activationDue: a user gets the activation email once in their lifetime, when active
// with a paid licence and auto_activation_emails is on; a free→paid conversion always
// emails (Webex Control Hub).
func activationDue(d *Desired, old, want *account.User) bool {
	if !want.Active || want.License != "paid" {
		return false
	}
	if old != nil && old.License == "free" {
		return true
	}
	return d.Settings.AutoActivationEmails && !want.Notified && (old == nil || !old.Notified)
}

// addActivation adds u's activation email; it returns it, or nil when there is none.
func (p *Plan) addActivation(d *Desired, u *account.User, action account.Action) *Email {
	e, ok := activationOf(d, u, action)
	if !ok {
		return nil
	}
	p.emails.add(&e)
	return &e
}

// activationOf is u's activation email; false when there is none.
func activationOf(d *Desired, u *account.User, action account.Action) (Email, bool) {
	m := d.Mail["activation"]
	if m == nil || m.VMR == nil {
		return Email{}, false
	}
	return Email{To: u.Email, Kind: account.KindActivation, Action: action, Key: u.Email, Template: u.SyncTag, mail: m.VMR, obj: u}, true
}

// UserVars are the activation email's variables.
func UserVars(u *account.User, action account.Action) map[string]any {
	return varMap(state.AppendUserVars(nil, u, string(action)))
}

func userFieldChanges(old, want *account.User) []FieldChange {
	var f []FieldChange
	str := func(name, o, n string) {
		if o != n {
			f = append(f, FieldChange{Name: name, Old: o, New: n})
		}
	}
	str("first_name", old.FirstName, want.FirstName)
	str("last_name", old.LastName, want.LastName)
	str("language", old.Language, want.Language)
	str("host_privilege", old.HostPrivilege, want.HostPrivilege)
	str("time_zone", old.TimeZone, want.TimeZone)
	if old.Tracking != want.Tracking {
		ot, wt := old.Tracking.Values(), want.Tracking.Values()
		for i := range ot {
			str(trackingSlots[i], ot[i], wt[i])
		}
	}
	if old.Active != want.Active {
		f = append(f, FieldChange{Name: "active", Old: old.Active, New: want.Active})
	}
	str("origin", old.Origin, want.Origin)
	str("license", old.License, want.License)
	str("sync_tag", old.SyncTag, want.SyncTag)
	str("entry_key", old.EntryKey, want.EntryKey)
	return f
}

// trackingProblem says how a user's tracking values break the groups' rules (required ⇒
// present; dropdown ⇒ an active code; at most 128 characters), or "".
func trackingProblem(groups []*account.TrackingGroup, u *account.User) string {
	if len(groups) == 0 {
		return ""
	}
	tr := u.Tracking.Values()
	for _, g := range groups {
		i := account.SlotIndex(g.Slot)
		if i >= len(tr) || g.Usage == "not_used" {
			continue
		}
		v := tr[i]
		if v == "" {
			if g.Usage == "required" {
				return fmt.Sprintf("%s is required by tracking code group %q", trackingSlots[i], g.Name)
			}
			continue
		}
		if n := utf8.RuneCountInString(v); n > 128 {
			return fmt.Sprintf("%s has %d characters; at most 128", trackingSlots[i], n)
		}
		if g.InputMode != "dropdown" {
			continue
		}
		active := false
		for _, c := range g.Codes {
			if c.Code == v && c.Active {
				active = true
				break
			}
		}
		if !active {
			return fmt.Sprintf("%s %q is not an active code of tracking code group %q", trackingSlots[i], v, g.Name)
		}
	}
	return ""
}

var trackingSlots = [10]string{"DIVISION", "DEPARTMENT", "PROJECT", "OTHER", "CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"}

// diffInvites: a new row invites (pending, expires after invite_ttl, an invitation email);
// a removed row revokes a pending invite; a pending invite past its expiry expires and
// frees its licence. Paid licences (active paid users plus pending invites) may not exceed
// settings.licenses.paid.
func diffInvites(p *Plan, d *Desired, a *state.Actual) {
	have := byKey(a.Invites, func(in *account.Invite) string { return in.Email })
	users := map[string]bool{}
	for _, u := range a.Users {
		users[strings.ToLower(u.Email)] = true
	}
	for _, cu := range p.created.user {
		users[p.created.users.Key(int(cu.i))] = true // created by this plan: a member already, not to invite
	}
	seen := map[string]bool{}
	pending := 0
	for _, row := range d.Invites {
		email := strings.ToLower(row.Email)
		seen[email] = true
		old := have[email]
		if old != nil && old.Status != "revoked" {
			if old.Status == "pending" && !d.Now.Before(old.ExpiresAt) {
				exp := *old
				exp.Status = "expired"
				p.changes = append(p.changes, &Change{Kind: account.KindInvite, Action: account.ActionUpdate, Key: email,
					oldObj: old, newObj: &exp, Fields: []FieldChange{{Name: "status", Old: "pending", New: "expired"}}})
				continue
			}
			if old.Status == "pending" || old.Status == "accepted" && !users[email] {
				pending++ // an accepted invitation is a member with a paid licence
			}
			p.Summary.Unchanged++
			continue
		}
		if users[email] {
			p.Warnings = append(p.Warnings, Warning{Code: "already_member", Key: email,
				Message: fmt.Sprintf("%s:%d: %s already has an account; not invited", row.Pos.Path, row.Pos.Line, email)})
			continue
		}
		in := &account.Invite{Email: email, Name: row.Name, Username: row.Username, Status: "pending",
			InvitedAt: d.Now, ExpiresAt: d.Now.Add(d.InviteTTL)}
		pending++
		p.changes = append(p.changes, &Change{Kind: account.KindInvite, Action: account.ActionCreate, Key: email, newObj: in})
		if m := d.Mail["invite"]; m != nil && m.VMR != nil {
			p.emails.add(&Email{To: email, Kind: account.KindInvite, Action: account.EmailCreated, Key: email, mail: m.VMR,
				obj: in})
		}
	}
	for _, in := range a.Invites {
		if seen[in.Email] || in.Status != "pending" {
			continue
		}
		rev := *in
		rev.Status = "revoked"
		p.changes = append(p.changes, &Change{Kind: account.KindInvite, Action: account.ActionDelete, Key: in.Email, oldObj: in, newObj: &rev})
	}
	if d.PaidLicenses > 0 {
		// Count the users as the plan leaves them: a free→paid conversion takes a licence,
		// paid→free and deactivation give one back.
		paid := 0
		planned := map[string]bool{}
		for c := range p.unordered() {
			if u := c.newUser(); c.Kind == account.KindUser && u != nil {
				planned[c.Key] = true
				if u.Active && u.License == "paid" {
					paid++
				}
			}
		}
		// Every active paid account the plan does not change (a.Users may hold only
		// some of them: every planned one, though).
		paid += a.Totals().ActivePaid
		for _, u := range a.Users {
			if u.Active && u.License == "paid" && planned[strings.ToLower(u.Email)] {
				paid--
			}
		}
		if used := paid + pending; used > d.PaidLicenses {
			p.Errors = append(p.Errors, Problem{Message: fmt.Sprintf(
				"paid licences: this plan needs %d (%d paid users, %d invitations pending or accepted) but licenses.paid is %d; "+
					"raise it in settings.yaml or remove invitations", used, paid, pending, d.PaidLicenses)})
		}
		p.Licenses = &Licenses{Paid: d.PaidLicenses, Used: paid + pending, Remaining: d.PaidLicenses - paid - pending}
	}
}

// InviteVars are the invitation email's variables.
func InviteVars(in *account.Invite, action account.Action) map[string]any {
	return varMap(appendInviteVars(nil, in, action))
}

func appendInviteVars(vars []state.Var, in *account.Invite, action account.Action) []state.Var {
	return append(vars, state.Var{Name: "name", Value: in.Name}, state.Var{Name: "email", Value: in.Email},
		state.Var{Name: "username", Value: in.Username},
		state.Var{Name: "expires_at", Value: in.ExpiresAt.UTC().Format("2006-01-02 15:04 MST")},
		state.Var{Name: "action", Value: string(action)})
}
