package reconcile

// The directory users merge: directory and CSV users into one account per email.

import (
	"fmt"
	"strings"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

// mergeUsers makes one account per email: directory ("remote") users win over CSV
// ("local") ones; two directory entries with one email are both skipped with a warning.
func mergeUsers(d *Desired, remote *UserList, local []*schema.UserRow) UserList {
	// Users rendered unchanged take part in the duplicate check by email and entry key.
	// They are found by the index's email table (emails are unique in the state), not
	// gathered into a map: an incremental cycle marks 400,000 and merges a handful.
	ri := d.refs
	unmarked := map[int32]bool{} // marked when the merge began: they still take part
	sameByEmail := func(email string) (int32, bool) {
		if ri == nil {
			return 0, false
		}
		j, ok := ri.user(email)
		return j, ok && (ri.sameUser[j] || unmarked[j])
	}
	// first is where each email's first directory entry is in remote; more holds the
	// entries after the first, for the few emails that have several. No per-user slice
	// or list: a first apply merges 400,000 users here while holding all of them.
	first := make(map[string]int32, remote.Len())
	var more map[string][]*DesiredUser
	for i := range remote.Len() {
		email := remote.Key(i)
		if _, ok := first[email]; !ok {
			first[email] = int32(i)
			continue
		}
		if more == nil {
			more = map[string][]*DesiredUser{}
		}
		more[email] = append(more[email], remote.At(i))
	}
	var out UserList
	for i := range remote.Len() {
		email := remote.Key(i)
		if first[email] != int32(i) {
			continue
		}
		u := remote.At(i)
		// us is the email's entries in order; an unchanged user's entry stands first, so
		// a changed entry with its email but another key is a duplicate.
		head, rest, isPhantom := u, more[email], false
		if j, ok := sameByEmail(email); ok {
			s := &d.refs.ix.Users[j]
			head = &DesiredUser{User: account.User{Email: email, SyncTag: s.SyncTag(), EntryKey: s.EntryKey()}}
			rest, isPhantom = append([]*DesiredUser{u}, rest...), true
		}
		var distinct []*DesiredUser
		for _, v := range rest {
			if v.EntryKey != head.EntryKey {
				if distinct == nil {
					distinct = []*DesiredUser{head}
				}
				distinct = append(distinct, v)
			}
		}
		if len(distinct) > 1 {
			keys := make([]string, len(distinct))
			for i, u := range distinct {
				keys[i] = u.SyncTag + ":" + u.EntryKey
			}
			d.Warnings = append(d.Warnings, Warning{Code: "duplicate_email", Key: email, Template: distinct[0].SyncTag,
				Message: fmt.Sprintf("directory entries %s share this email; both skipped (accounts are unique by email)", strings.Join(keys, " and "))})
			d.Keep[userOwner(email)] = true
			if j, ok := sameByEmail(email); ok {
				// Not unchanged after all: kept as it is, like any ambiguous account.
				d.refs.unmarkUser(j)
				unmarked[j] = true
			}
			continue
		}
		if !isPhantom {
			out.Add(head) // tracking defaults were filled at render
		}
	}
	// An email taken by a directory entry, changed or unchanged, is the directory's.
	taken := func(email string) bool {
		_, remote := first[email]
		_, same := sameByEmail(email)
		return remote || same
	}
	for _, row := range local {
		email := strings.ToLower(row.Email)
		if taken(email) {
			continue // the directory's values win; the account becomes remote
		}
		u := &DesiredUser{User: account.User{Email: email, FirstName: row.FirstName, LastName: row.LastName,
			Language: row.Language, HostPrivilege: row.HostPrivilege, TimeZone: row.TimeZone, Tracking: account.MakeTracking(row.Tracking),
			Active: row.Active, Origin: "local", License: "paid"}, CSV: &CSVRow{Pos: row.Pos, GivenUserID: row.UserID}}
		if u.HostPrivilege == "" {
			u.HostPrivilege = "HOST"
		}
		u = fillTracking(d.Tracking, u)
		// A row that is exactly its local account is only marked unchanged, as unchanged
		// directory entries are (a 200,000-row CSV holds no second copy of its users).
		if ri := d.refs; ri != nil {
			if i, ok := ri.user(email); ok {
				if old := &ri.ix.Users[i]; old.Local && (u.givenUserID() == "" || strings.EqualFold(u.givenUserID(), old.UserID())) &&
					ri.sameDigest(ri.userDigest(u), lateUsers, i, old.SyncTag()) {
					ri.markUser(i)
					continue
				}
			}
		}
		out.Add(u)
	}
	return out
}

// fillTracking gives an absent optional dropdown value the group's default code.
func fillTracking(groups []*account.TrackingGroup, u *DesiredUser) *DesiredUser {
	var tr [10]string
	unpacked, filled := false, false
	for _, g := range groups {
		i := account.SlotIndex(g.Slot)
		if i >= 10 || g.InputMode != "dropdown" || g.Usage == "not_used" {
			continue
		}
		if !unpacked {
			tr, unpacked = u.Tracking.Values(), true
		}
		if tr[i] != "" {
			continue
		}
		for _, c := range g.Codes {
			if c.Default && c.Active {
				tr[i], filled = c.Code, true
			}
		}
	}
	if filled {
		u.Tracking = account.MakeTracking(tr)
	}
	return u
}
