package state

import (
	"cmp"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/roster-dev/roster/schema/account"
)

// An Index is the actual state as a reconcile first needs it: for each VMR, device and
// user, who owns it and a digest of what the diff compares, not the object itself.
//
// Why: a no-op reconcile of 400,000 people compares 1.2 million objects and changes none.
// Holding them all (some 450 MB) to find that out was most of its memory. With an Index,
// the reconcile compares digests, then loads in full (LoadObjects) only the objects that
// changed, vanished, or hold a name or alias a changed object wants.
type Index struct {
	// Small holds the small tables in full (invites, tracking groups, reminders done), the
	// state version and MaxUserSeq; its VMRs, Devices and Users are empty.
	Small   *Actual
	VMRs    []ObjectRef
	Devices []ObjectRef
	Users   []UserRef
	Totals  Totals

	vmrTags, deviceTags, userTags map[string]int // counts by sync tag, one map per loader
	activePaid                    int            // counted by indexUsers
}

// ObjectRef stands for one VMR or device in an Index: 24 bytes, no pointers (the garbage
// collector never scans them).
type ObjectRef struct {
	ID     int64
	Owner  uint64 // DigestSpec.Owner of its sync tag and owner key (see OwnerKey)
	Digest uint64
}

// UserRef stands for one user in an Index, with what the diff needs to match it. Its
// texts are one string (email, USERID, sync tag, entry key, end to end): one pointer
// for the garbage collector to follow instead of four, in 40 bytes instead of 88 — a
// no-op plan holds 400,000 of them through every collection of the render.
type UserRef struct {
	ID     int64
	Digest uint64
	text   string
	// lengths of the email, USERID and sync tag in text; the entry key is the rest.
	emailLen, userIDLen, tagLen uint16
	Local                       bool // origin local (else remote)
	Active                      bool
}

// Email is the user's email, lower-case.
func (u *UserRef) Email() string { return u.text[:u.emailLen] }

// UserID is the user's USERID.
func (u *UserRef) UserID() string { return u.text[u.emailLen : u.emailLen+u.userIDLen] }

// SyncTag is the user's template ("" for a local user).
func (u *UserRef) SyncTag() string {
	at := u.emailLen + u.userIDLen
	return u.text[at : at+u.tagLen]
}

// EntryKey is the user's directory entry key ("" for a local user).
func (u *UserRef) EntryKey() string { return u.text[u.emailLen+u.userIDLen+u.tagLen:] }

// newUserRef makes a UserRef with its texts in ar. Texts longer than 65535 bytes cannot
// be a valid email, USERID or template name; they are cut, which only makes the user
// not match (and so planned in full).
func newUserRef(ar *arena, id int64, email, userID, syncTag, entryKey string) UserRef {
	cut := func(s string) string { return s[:min(len(s), 0xffff)] }
	email, userID, syncTag = cut(email), cut(userID), cut(syncTag)
	return UserRef{ID: id, text: ar.join(email, userID, syncTag, entryKey),
		emailLen: uint16(len(email)), userIDLen: uint16(len(userID)), tagLen: uint16(len(syncTag))}
}

// RowID is the object's id (its row in its table).
func (r ObjectRef) RowID() int64 { return r.ID }

// RowID is the user's id (its row in the users table).
func (u UserRef) RowID() int64 { return u.ID }

// OwnerKey is the key that, with its sync tag, identifies an object across reconciles: the
// entry key, or the name (a device's alias) when declared by hand.
func OwnerKey(syncTag, entryKey, name string) string {
	if syncTag == account.ManualTag || entryKey == "" {
		return name
	}
	return entryKey
}

// Totals are the counts over all objects that the plan's summary and safety guard use.
type Totals struct {
	Managed    int            // VMRs, devices and active users
	Users      int            // every user, active or not (the lifetime limit counts them)
	ActivePaid int            // active users with a paid licence
	Owned      map[string]int // by sync tag: VMRs, devices and active users
}

// Totals returns the counts over all of a's objects: those an Index recorded when a holds
// only some of them (LoadObjects), else counted from a.
func (a *Actual) Totals() Totals {
	if a.totals != nil {
		return *a.totals
	}
	t := Totals{Owned: map[string]int{}, Users: len(a.Users), Managed: len(a.VMRs) + len(a.Devices)}
	for _, v := range a.VMRs {
		t.Owned[v.SyncTag]++
	}
	for _, v := range a.Devices {
		t.Owned[v.SyncTag]++
	}
	for _, u := range a.Users {
		if u.Active {
			t.Managed++
			if u.SyncTag != "" {
				t.Owned[u.SyncTag]++
			}
			if u.License == "paid" {
				t.ActivePaid++
			}
		}
	}
	return t
}

// Partial says whether a holds only some of the objects (see Index).
func (a *Actual) Partial() bool { return a.totals != nil }

// LoadIndex reads the Index of the actual state, consistent as LoadActual is.
func (db *DB) LoadIndex(ctx context.Context, dg *DigestSpec) (*Index, error) {
	for attempt := 0; ; attempt++ {
		ix := &Index{Small: &Actual{RemindersDone: map[string]bool{}},
			vmrTags: map[string]int{}, deviceTags: map[string]int{}, userTags: map[string]int{}}
		raw := map[string]func(*sqlite3.SQLiteConn, *Actual) error{
			"vmrs":    func(sc *sqlite3.SQLiteConn, _ *Actual) error { return indexVMRs(sc, ix, dg) },
			"devices": func(sc *sqlite3.SQLiteConn, _ *Actual) error { return indexDevices(sc, ix, dg) },
			"users":   func(sc *sqlite3.SQLiteConn, _ *Actual) error { return indexUsers(sc, ix, dg) },
		}
		if err := db.loadTables(ctx, ix.Small, raw); err != nil {
			return nil, err
		}
		v, err := db.StateVersion(ctx)
		if err != nil {
			return nil, fmt.Errorf("load state: %w", err)
		}
		if v == ix.Small.StateVersion || attempt == 4 {
			if v != ix.Small.StateVersion {
				return nil, fmt.Errorf("load state: the database keeps changing while it is read (state version %d → %d)", ix.Small.StateVersion, v)
			}
			ix.Totals = ix.totals()
			return ix, nil
		}
	}
}

func (ix *Index) totals() Totals {
	t := Totals{Owned: map[string]int{}, Users: len(ix.Users), Managed: len(ix.VMRs) + len(ix.Devices), ActivePaid: ix.activePaid}
	for _, m := range []map[string]int{ix.vmrTags, ix.deviceTags, ix.userTags} {
		for tag, n := range m {
			t.Owned[tag] += n
		}
	}
	for _, u := range ix.Users {
		if u.Active {
			t.Managed++
		}
	}
	return t
}

func indexVMRs(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec) error {
	ix.VMRs = presize(sc, "vmrs", ix.VMRs)
	return indexVMRsWhere(sc, ix, dg, "", nil)
}

// presize gives refs room for every row of table when it is empty: the largest id bounds
// the row count (one B-tree seek), where growing by appending copied the 400,000-row
// lists of a no-op plan several times over (~0.7 s of CPU at 400k, pprof).
func presize[T any](sc *sqlite3.SQLiteConn, table string, refs []T) []T {
	if len(refs) > 0 {
		return refs
	}
	var n int64
	_ = eachRowArgs(sc, `SELECT coalesce(max(id), 0) FROM `+table, nil, func(r []driver.Value) error {
		n = rawInt(r[0])
		return nil
	})
	if n <= 0 || n > 1<<26 { // no rows, or ids too sparse to trust as a count
		return refs
	}
	return make([]T, 0, n)
}

// indexVMRsWhere indexes the VMRs of the WHERE clause where (on id; "" = all), with args.
func indexVMRsWhere(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec, where string, whereArgs []driver.Value) error {
	// The VMRs first, in id order, each with the digest of its fields; then the aliases,
	// in table order, summed by VMR (see DigestSpec.alias) into a slice by position.
	q, args := dg.vmrQuery()
	if where != "" {
		q, args = whereIDs(q, "vmrs", where), append(args, whereArgs...)
	}
	first := len(ix.VMRs)
	masked := make([]bool, 0, cap(ix.VMRs)-first)
	err := eachRowArgs(sc, q, args, func(r []driver.Value) error {
		owner := rawStr(r[1])
		ix.VMRs = append(ix.VMRs, ObjectRef{ID: rawInt(r[0]), Owner: maphash.String(dg.Seed, owner),
			Digest: maphash.String(dg.Seed, rawStr(r[2]))})
		masked = append(masked, rawInt(r[3]) != 0)
		countTag(ix.vmrTags, ownerTag(owner))
		return nil
	})
	if err != nil {
		return err
	}
	read := ix.VMRs[first:]
	sums := make([]uint64, len(read))
	aq := `SELECT vmr_id, pos, alias FROM vmr_aliases`
	if where != "" {
		aq += " WHERE vmr_" + where // where begins with the id column
	}
	if tags := dg.undigested(); tags != "" { // their aliases count in no digest
		op := " WHERE "
		if where != "" {
			op = " AND "
		}
		aq += op + "vmr_id IN (SELECT id FROM vmrs WHERE sync_tag NOT IN (" + tags + "))"
	}
	err = eachRowArgs(sc, aq, whereArgs, func(r []driver.Value) error {
		if i := vmrPos(read, rawInt(r[0])); i >= 0 {
			sums[i] += dg.alias(int(rawInt(r[1])), rawStr(r[2]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range read {
		var aliases uint64
		if !masked[i] {
			aliases = sums[i]
		}
		read[i].Digest = dg.withAliases(read[i].Digest, aliases)
	}
	return nil
}

// vmrPos finds the VMR with id in refs (in id order): where ids run without gaps, at
// its offset from the first, else by binary search; -1 when absent (an alias whose VMR
// was not read: none, in one read transaction).
func vmrPos(refs []ObjectRef, id int64) int {
	if len(refs) == 0 {
		return -1
	}
	if i := id - refs[0].ID; i >= 0 && i < int64(len(refs)) && refs[i].ID == id {
		return int(i)
	}
	i, ok := slices.BinarySearchFunc(refs, id, func(r ObjectRef, id int64) int { return cmp.Compare(r.ID, id) })
	if !ok {
		return -1
	}
	return i
}

func indexDevices(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec) error {
	q, args := dg.deviceQuery()
	ix.Devices = presize(sc, "devices", ix.Devices)
	return indexDevicesQuery(sc, ix, dg, q, args)
}

func indexDevicesQuery(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec, q string, args []driver.Value) error {
	return eachRowArgs(sc, q, args, func(r []driver.Value) error {
		owner := rawStr(r[1])
		ix.Devices = append(ix.Devices, ObjectRef{ID: rawInt(r[0]), Owner: maphash.String(dg.Seed, owner), Digest: maphash.String(dg.Seed, rawStr(r[2]))})
		countTag(ix.deviceTags, ownerTag(owner))
		return nil
	})
}

func indexUsers(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec) error {
	ix.Users = presize(sc, "users", ix.Users)
	return indexUsersQuery(sc, ix, dg, dg.userQuery(), nil)
}

func indexUsersQuery(sc *sqlite3.SQLiteConn, ix *Index, dg *DigestSpec, q string, args []driver.Value) error {
	var ar arena
	return eachRowArgs(sc, q, args, func(r []driver.Value) error {
		// id, lower(email)+userid+sync_tag+entry_key, their first three lengths, flags, digest text
		id, text, flags := rawInt(r[0]), rawStr(r[1]), rawInt(r[5])
		le, lu, lt := int(rawInt(r[2])), int(rawInt(r[3])), int(rawInt(r[4]))
		if le < 0 || lu < 0 || lt < 0 || le+lu+lt > len(text) {
			return fmt.Errorf("user %d: its texts are not as long as their lengths say", id)
		}
		tag := text[le+lu : le+lu+lt]
		active := flags&1 != 0
		u := newUserRef(&ar, id, text[:le], text[le:le+lu], tag, text[le+lu+lt:])
		u.Local, u.Active, u.Digest = flags&2 != 0, active, maphash.String(dg.Seed, rawStr(r[6]))
		ix.Users = append(ix.Users, u)
		if active && flags&4 != 0 {
			ix.activePaid++
		}
		if active && tag != "" {
			countTag(ix.userTags, tag)
		}
		return nil
	})
}

// IDs are the objects LoadObjects reads.
type IDs struct{ VMRs, Devices, Users []int64 }

// ErrStateChanged: the database changed between LoadIndex and LoadObjects; plan again.
var ErrStateChanged = errors.New("the state changed while it was read; plan again")

// LoadObjects reads in full the objects of ix named by ids, with the small tables of ix,
// as an Actual that knows it is partial (its Totals are those of the whole index). It
// fails with ErrStateChanged when the state version is no longer the index's.
func (db *DB) LoadObjects(ctx context.Context, ix *Index, ids IDs) (*Actual, error) {
	a := *ix.Small
	totals := ix.Totals
	a.totals = &totals
	sel := func(all int, want []int64) selection {
		want = slices.Clone(want)
		slices.Sort(want)
		want = slices.Compact(want)
		return selection{ids: want, scan: len(want) > 4096 && len(want)*8 > all}
	}
	vs, ds, us := sel(len(ix.VMRs), ids.VMRs), sel(len(ix.Devices), ids.Devices), sel(len(ix.Users), ids.Users)
	raw := map[string]func(*sqlite3.SQLiteConn, *Actual) error{}
	if len(vs.ids) > 0 {
		raw["vmrs"] = func(sc *sqlite3.SQLiteConn, a *Actual) error {
			return vs.each(func(s selection) error { return rawVMRs(sc, a, s) })
		}
	}
	if len(ds.ids) > 0 {
		raw["devices"] = func(sc *sqlite3.SQLiteConn, a *Actual) error {
			return ds.each(func(s selection) error { return rawDevices(sc, a, s) })
		}
	}
	if len(us.ids) > 0 {
		raw["users"] = func(sc *sqlite3.SQLiteConn, a *Actual) error {
			return us.each(func(s selection) error { return rawUsers(sc, a, s) })
		}
	}
	if err := db.loadRaw(ctx, &a, raw); err != nil {
		return nil, err
	}
	v, err := db.StateVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if v != ix.Small.StateVersion {
		return nil, ErrStateChanged
	}
	return &a, nil
}

// selection is which rows a raw loader reads: all, those with ids (sorted), read in
// batches of IN lists, or — when they are many — by scanning the table and keeping them.
type selection struct {
	ids  []int64
	scan bool
	all  bool
}

const selectionBatch = 500

// each calls load with batches of s small enough for one IN list, or once when scanning.
func (s selection) each(load func(selection) error) error {
	if s.scan || s.all {
		return load(s)
	}
	for i := 0; i < len(s.ids); i += selectionBatch {
		if err := load(selection{ids: s.ids[i:min(i+selectionBatch, len(s.ids))]}); err != nil {
			return err
		}
	}
	return nil
}

// where is the WHERE clause on column (empty when scanning) and its arguments.
func (s selection) where(column string) (string, []driver.Value) {
	if s.all || s.scan {
		return "", nil
	}
	args := make([]driver.Value, len(s.ids))
	for i, id := range s.ids {
		args[i] = id
	}
	return " WHERE " + column + " IN (?" + strings.Repeat(",?", len(s.ids)-1) + ")", args
}

// keep says whether a scanned row is selected.
func (s selection) keep(id int64) bool {
	if !s.scan {
		return true
	}
	_, ok := slices.BinarySearch(s.ids, id)
	return ok
}

// loadRaw runs raw loaders in parallel, each on a connection of its own in a read transaction.
func (db *DB) loadRaw(ctx context.Context, a *Actual, raw map[string]func(*sqlite3.SQLiteConn, *Actual) error) error {
	errs := make(chan error, len(raw))
	for name, load := range raw {
		go func() {
			if err := db.rawLoad(ctx, a, load); err != nil {
				errs <- fmt.Errorf("load state: %s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	var first error
	for range raw {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ClaimHolders returns the ids of the VMRs holding any of names (as their name) or
// aliases, and of the devices holding any of deviceAliases, as of the index's state
// version (ErrStateChanged otherwise).
func (db *DB) ClaimHolders(ctx context.Context, ix *Index, names, aliases, deviceAliases []string) (vmrs, devices []int64, err error) {
	lookups := []struct {
		query  string
		values []string
		out    *[]int64
	}{
		{`SELECT id FROM vmrs WHERE name IN `, names, &vmrs},
		{`SELECT vmr_id FROM vmr_aliases WHERE alias IN `, aliases, &vmrs},
		{`SELECT id FROM devices WHERE alias IN `, deviceAliases, &devices},
	}
	err = db.rawLoad(ctx, nil, func(sc *sqlite3.SQLiteConn, _ *Actual) error {
		for _, l := range lookups {
			for i := 0; i < len(l.values); i += selectionBatch {
				batch := l.values[i:min(i+selectionBatch, len(l.values))]
				args := make([]driver.Value, len(batch))
				for j, v := range batch {
					args[j] = v
				}
				q := l.query + "(?" + strings.Repeat(",?", len(batch)-1) + ")"
				if err := eachRowArgs(sc, q, args, func(r []driver.Value) error {
					*l.out = append(*l.out, rawInt(r[0]))
					return nil
				}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load state: claims: %w", err)
	}
	if v, err := db.StateVersion(ctx); err != nil {
		return nil, nil, fmt.Errorf("load state: %w", err)
	} else if v != ix.Small.StateVersion {
		return nil, nil, ErrStateChanged
	}
	return vmrs, devices, nil
}

// countTag counts one more object of tag in m, copying the tag only the first time (the
// driver's string would pin its row's memory).
func countTag(m map[string]int, tag string) {
	if _, ok := m[tag]; !ok {
		tag = strings.Clone(tag)
	}
	m[tag]++
}

// Digests reads the digests under dg of the objects of table ("vmrs", "devices" or
// "users") with ids (nil: all of them), in id order, as of ix's state version
// (ErrStateChanged otherwise). A plan whose index left some templates' digests out
// (DigestSpec.Undigested) reads those it turns out to need.
func (db *DB) Digests(ctx context.Context, ix *Index, dg *DigestSpec, table string, ids []int64) ([]int64, []uint64, error) {
	full := *dg
	full.Undigested = nil
	var where string
	var args []driver.Value
	if ids != nil {
		b, err := json.Marshal(ids)
		if err != nil {
			return nil, nil, fmt.Errorf("load digests: %w", err)
		}
		where, args = "id IN (SELECT value FROM json_each(?))", []driver.Value{string(b)}
	}
	var outIDs []int64
	var out []uint64
	err := db.rawLoad(ctx, nil, func(sc *sqlite3.SQLiteConn, _ *Actual) error {
		fresh := Index{vmrTags: map[string]int{}, deviceTags: map[string]int{}, userTags: map[string]int{}}
		var err error
		switch table {
		case "vmrs":
			err = indexVMRsWhere(sc, &fresh, &full, where, args)
		case "devices":
			q, qargs := full.deviceQuery()
			if where != "" {
				q = whereIDs(q, "devices", where)
			}
			err = indexDevicesQuery(sc, &fresh, &full, q, append(qargs, args...))
		case "users":
			q := full.userQuery()
			if where != "" {
				q = whereIDs(q, "users", where)
			}
			err = indexUsersQuery(sc, &fresh, &full, q, args)
		default:
			err = fmt.Errorf("no table %q in the index", table)
		}
		for _, r := range fresh.VMRs {
			outIDs, out = append(outIDs, r.ID), append(out, r.Digest)
		}
		for _, r := range fresh.Devices {
			outIDs, out = append(outIDs, r.ID), append(out, r.Digest)
		}
		for _, u := range fresh.Users {
			outIDs, out = append(outIDs, u.ID), append(out, u.Digest)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load digests: %s: %w", table, err)
	}
	if v, err := db.StateVersion(ctx); err != nil {
		return nil, nil, fmt.Errorf("load digests: %w", err)
	} else if v != ix.Small.StateVersion {
		return nil, nil, ErrStateChanged
	}
	return outIDs, out, nil
}
