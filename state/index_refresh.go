package state

import (
	"cmp"
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Touched names the rows a write updated or deleted, each with what it was before (its
// sync tag; a user's active and paid flags): the counts of the index are adjusted by them.
type Touched struct {
	VMRs, Devices []TouchedRow
	Users         []TouchedUser
}

// TouchedRow is a VMR or device a write updated or deleted, and its sync tag before.
type TouchedRow struct {
	ID      int64
	SyncTag string
}

// TouchedUser is a user a write updated, and what it was before.
type TouchedUser struct {
	ID           int64
	SyncTag      string
	Active, Paid bool
}

// RefreshIndex returns the Index of the state after a write that touched (updated or
// deleted) only the objects of old named by touched and created new ones: old's other
// entries are kept as they are, the touched rows and the rows created since (ids above
// every kept one) are read again, the small tables are read anew, the counts by sync tag
// adjusted. An incremental daemon cycle that applied one change so reads a handful of rows
// instead of the whole index (1.2 million rows at 400,000 people). old is not modified.
// It fails when the result does not hold as many objects as the tables (the write
// touched more than it said): the caller then loads the index in full.
func (db *DB) RefreshIndex(ctx context.Context, old *Index, dg *DigestSpec, touched Touched) (*Index, error) {
	ids := func(n int, id func(int) int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = id(i)
		}
		return out
	}
	for attempt := 0; ; attempt++ {
		ix := &Index{Small: &Actual{RemindersDone: map[string]bool{}},
			vmrTags: maps.Clone(old.vmrTags), deviceTags: maps.Clone(old.deviceTags), userTags: maps.Clone(old.userTags), activePaid: old.activePaid}
		for _, r := range touched.VMRs {
			ix.vmrTags[r.SyncTag]--
		}
		for _, r := range touched.Devices {
			ix.deviceTags[r.SyncTag]--
		}
		for _, u := range touched.Users {
			if u.Active && u.SyncTag != "" {
				ix.userTags[u.SyncTag]--
			}
			if u.Active && u.Paid {
				ix.activePaid--
			}
		}
		var rows [3]int
		count := func(sc *sqlite3.SQLiteConn, table string) (int, error) {
			n := 0
			err := eachRow(sc, `SELECT count(*) FROM `+table, func(r []driver.Value) error { n = int(rawInt(r[0])); return nil })
			return n, err
		}
		raw := map[string]func(*sqlite3.SQLiteConn, *Actual) error{
			"meta": func(sc *sqlite3.SQLiteConn, a *Actual) error { return refreshMeta(sc, a, old, touched.Users) },
			"vmrs": func(sc *sqlite3.SQLiteConn, _ *Actual) error {
				var err error
				ix.VMRs, err = refreshObjects(old.VMRs, ids(len(touched.VMRs), func(i int) int64 { return touched.VMRs[i].ID }), "vmrs",
					func(where string, args []driver.Value) ([]ObjectRef, error) {
						fresh := Index{vmrTags: ix.vmrTags}
						err := indexVMRsWhere(sc, &fresh, dg, where, args)
						return fresh.VMRs, err
					})
				if err == nil {
					rows[0], err = count(sc, "vmrs")
				}
				return err
			},
			"devices": func(sc *sqlite3.SQLiteConn, _ *Actual) error {
				var err error
				ix.Devices, err = refreshObjects(old.Devices, ids(len(touched.Devices), func(i int) int64 { return touched.Devices[i].ID }), "devices",
					func(where string, args []driver.Value) ([]ObjectRef, error) {
						fresh := Index{deviceTags: ix.deviceTags}
						q, qargs := dg.deviceQuery()
						err := indexDevicesQuery(sc, &fresh, dg, whereIDs(q, "devices", where), append(qargs, args...))
						return fresh.Devices, err
					})
				if err == nil {
					rows[1], err = count(sc, "devices")
				}
				return err
			},
			"users": func(sc *sqlite3.SQLiteConn, _ *Actual) error {
				var err error
				ix.Users, err = refreshObjects(old.Users, ids(len(touched.Users), func(i int) int64 { return touched.Users[i].ID }), "users",
					func(where string, args []driver.Value) ([]UserRef, error) {
						fresh := Index{userTags: ix.userTags}
						err := indexUsersQuery(sc, &fresh, dg, whereIDs(dg.userQuery(), "users", where), args)
						ix.activePaid += fresh.activePaid
						return fresh.Users, err
					})
				if err == nil {
					rows[2], err = count(sc, "users")
				}
				return err
			},
		}
		if err := db.loadTables(ctx, ix.Small, raw); err != nil {
			return nil, err
		}
		if len(ix.VMRs) != rows[0] || len(ix.Devices) != rows[1] || len(ix.Users) != rows[2] {
			return nil, fmt.Errorf("refresh index: %d/%d/%d objects of %d/%d/%d rows", len(ix.VMRs), len(ix.Devices), len(ix.Users),
				rows[0], rows[1], rows[2])
		}
		for _, m := range []map[string]int{ix.vmrTags, ix.deviceTags, ix.userTags} {
			for tag, n := range m {
				if n < 0 {
					return nil, fmt.Errorf("refresh index: %d objects of sync tag %q", n, tag)
				}
				if n == 0 {
					delete(m, tag)
				}
			}
		}
		v, err := db.StateVersion(ctx)
		if err != nil {
			return nil, fmt.Errorf("refresh index: %w", err)
		}
		if v == ix.Small.StateVersion || attempt == 4 {
			if v != ix.Small.StateVersion {
				return nil, fmt.Errorf("refresh index: the database keeps changing while it is read (state version %d → %d)", ix.Small.StateVersion, v)
			}
			ix.Totals = ix.totals()
			return ix, nil
		}
	}
}

// refreshMeta reads the state version, and the highest numeric USERID from old's and
// the users touched (their USERIDs before and now) or created since, instead of casting
// every user's (50–70 ms at 400,000): unless a touched user held the highest, it is
// old's or one of theirs now. When one did, every user is read as LoadIndex does.
func refreshMeta(sc *sqlite3.SQLiteConn, a *Actual, old *Index, touched []TouchedUser) error {
	if err := eachRow(sc, `SELECT value FROM meta WHERE key = 'state_version'`, func(r []driver.Value) error {
		fmt.Sscan(rawStr(r[0]), &a.StateVersion) // as loadMeta reads it
		return nil
	}); err != nil {
		return fmt.Errorf("read state version: %w", err)
	}
	maxOf := func(q string, args []driver.Value) (int64, error) {
		var n int64
		err := eachRowArgs(sc, q, args, func(r []driver.Value) error { n = rawInt(r[0]); return nil })
		return n, err
	}
	gone := make(map[int64]bool, len(touched))
	var before []string // the touched users' USERIDs before the write
	for _, u := range touched {
		gone[u.ID] = true
		if i, ok := slices.BinarySearchFunc(old.Users, u.ID, func(r UserRef, id int64) int { return cmp.Compare(r.ID, id) }); ok {
			before = append(before, old.Users[i].UserID())
		}
	}
	var top int64 // the largest untouched id: rows created since are above it
	for i := len(old.Users) - 1; i >= 0; i-- {
		if !gone[old.Users[i].ID] {
			top = old.Users[i].ID
			break
		}
	}
	ids := make([]int64, 0, len(touched))
	for id := range gone {
		ids = append(ids, id)
	}
	jb, err := json.Marshal(before)
	if err != nil {
		return err
	}
	ji, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	held, err := maxOf(`SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM json_each(?)`, []driver.Value{string(jb)})
	if err != nil {
		return fmt.Errorf("read user ids: %w", err)
	}
	if len(before) > 0 && held >= old.Small.MaxUserSeq {
		a.MaxUserSeq, err = maxOf(`SELECT COALESCE(MAX(CAST(userid AS INTEGER)), 0) FROM users`, nil)
	} else {
		a.MaxUserSeq, err = maxOf(`SELECT COALESCE(MAX(CAST(userid AS INTEGER)), 0) FROM users
			WHERE id IN (SELECT value FROM json_each(?) UNION ALL SELECT id FROM users WHERE id > ?)`, []driver.Value{string(ji), top})
		a.MaxUserSeq = max(a.MaxUserSeq, old.Small.MaxUserSeq)
	}
	if err != nil {
		return fmt.Errorf("read user ids: %w", err)
	}
	return nil
}

// refreshObjects is old without the touched ids, merged in id order with what read
// returns for the rows touched or above the largest untouched id (the rows created since:
// SQLite gives a new row an id above every id in its table).
func refreshObjects[R interface{ RowID() int64 }](old []R, touched []int64, table string, read func(where string, args []driver.Value) ([]R, error)) ([]R, error) {
	gone := make(map[int64]bool, len(touched))
	for _, id := range touched {
		gone[id] = true
	}
	var top int64
	for i := len(old) - 1; i >= 0; i-- {
		if !gone[old[i].RowID()] {
			top = old[i].RowID()
			break
		}
	}
	ids, err := json.Marshal(touched)
	if err != nil {
		return nil, err
	}
	// One IN over a UNION, so both parts are rowid lookups (an OR of the two scans).
	fresh, err := read("id IN (SELECT value FROM json_each(?) UNION ALL SELECT id FROM "+table+" WHERE id > ?)", []driver.Value{string(ids), top})
	if err != nil {
		return nil, err
	}
	out := make([]R, 0, len(old)+len(fresh)-len(touched))
	j := 0
	for _, r := range old {
		for j < len(fresh) && fresh[j].RowID() < r.RowID() {
			out = append(out, fresh[j])
			j++
		}
		if !gone[r.RowID()] {
			out = append(out, r)
		}
	}
	return append(out, fresh[j:]...), nil
}

// whereIDs puts a WHERE clause into one of the index's queries (… FROM table ORDER BY id).
func whereIDs(q, table, where string) string {
	from := " FROM " + table + " ORDER BY id"
	return strings.Replace(q, from, " FROM "+table+" WHERE "+where+" ORDER BY id", 1)
}
