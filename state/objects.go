package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/jmoiron/sqlx"
	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/roster-dev/roster/schema/account"
)

// Actual is everything roster has applied, loaded in one read transaction.
type Actual struct {
	StateVersion  int64
	VMRs          []*account.VMR
	Devices       []*account.Device
	Users         []*account.User
	Invites       []*account.Invite
	Tracking      []*account.TrackingGroup
	RemindersDone map[string]bool
	Announced     map[string]*Announced // announcements applied, by id
	MaxUserSeq    int64                 // highest numeric USERID handed out, for generating the next ones

	totals *Totals // set when the object lists are partial (LoadObjects)
}

// LoadActual reads the whole actual state. The tables are read in parallel, each in a
// read transaction of its own; the state version is read before and after, and a write
// that landed in between (it always bumps the version) makes LoadActual read again, so the
// result is one consistent state with the version it had.
func (db *DB) LoadActual(ctx context.Context) (*Actual, error) {
	for attempt := 0; ; attempt++ {
		a, err := db.loadActualOnce(ctx)
		if err != nil {
			return nil, err
		}
		v, err := db.StateVersion(ctx)
		if err != nil {
			return nil, fmt.Errorf("load state: %w", err)
		}
		if v == a.StateVersion || attempt == 4 {
			if v != a.StateVersion {
				return nil, fmt.Errorf("load state: the database keeps changing while it is read (state version %d → %d)", a.StateVersion, v)
			}
			return a, nil
		}
	}
}

func (db *DB) loadActualOnce(ctx context.Context) (*Actual, error) {
	a := &Actual{RemindersDone: map[string]bool{}}
	all := selection{all: true}
	raw := map[string]func(*sqlite3.SQLiteConn, *Actual) error{
		"vmrs":    func(sc *sqlite3.SQLiteConn, a *Actual) error { return rawVMRs(sc, a, all) },
		"devices": func(sc *sqlite3.SQLiteConn, a *Actual) error { return rawDevices(sc, a, all) },
		"users":   func(sc *sqlite3.SQLiteConn, a *Actual) error { return rawUsers(sc, a, all) },
	}
	if err := db.loadTables(ctx, a, raw); err != nil {
		return nil, err
	}
	return a, nil
}

// loadTables reads the state version, then in parallel the three big tables with the raw
// loaders given and the small tables (invites, tracking groups, reminders) into a.
func (db *DB) loadTables(ctx context.Context, a *Actual, raw map[string]func(*sqlite3.SQLiteConn, *Actual) error) error {
	steps := []struct {
		name string
		fn   func(context.Context, *sqlx.Tx, *Actual) error
	}{
		{"vmrs", nil}, {"devices", nil}, {"users", nil}, // read raw
		{"invites", loadInvites}, {"tracking groups", loadTracking}, {"reminders", loadReminders}, {"announcements", loadAnnounced},
	}
	run := func(name string, fn func(context.Context, *sqlx.Tx, *Actual) error) error {
		if fn == nil {
			if err := db.rawLoad(ctx, a, raw[name]); err != nil {
				return fmt.Errorf("load state: %s: %w", name, err)
			}
			return nil
		}
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return fmt.Errorf("load state: %w", err)
		}
		defer tx.Rollback()
		if err := fn(ctx, tx, a); err != nil {
			return fmt.Errorf("load state: %s: %w", name, err)
		}
		return nil
	}
	// The version first: anything committed after it is caught by the re-check. A caller
	// may read the meta its own way (raw["meta"]: RefreshIndex).
	meta := loadMeta
	if raw["meta"] != nil {
		meta = nil
	}
	if err := run("meta", meta); err != nil {
		return err
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run(s.name, s.fn)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func loadMeta(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	var v sql.NullString
	if err := tx.GetContext(ctx, &v, `SELECT value FROM meta WHERE key = 'state_version'`); err != nil && err != sql.ErrNoRows {
		return err
	}
	if v.Valid {
		fmt.Sscan(v.String, &a.StateVersion)
	}
	return tx.GetContext(ctx, &a.MaxUserSeq, `SELECT COALESCE(MAX(CAST(userid AS INTEGER)), 0) FROM users`)
}

func loadInvites(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT email, name, username, status, invited_at, expires_at,
		COALESCE(accepted_at, '') FROM invites ORDER BY email`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		in := &account.Invite{}
		var inv, exp, acc string
		if err := rows.Scan(&in.Email, &in.Name, &in.Username, &in.Status, &inv, &exp, &acc); err != nil {
			return err
		}
		in.InvitedAt, in.ExpiresAt, in.AcceptedAt = ParseTime(inv), ParseTime(exp), ParseTime(acc)
		a.Invites = append(a.Invites, in)
	}
	return rows.Err()
}

func loadTracking(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT slot, name, input_mode, usage, sort, codes FROM tracking_groups`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		g := &account.TrackingGroup{}
		var codes string
		if err := rows.Scan(&g.Slot, &g.Name, &g.InputMode, &g.Usage, &g.Sort, &codes); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(codes), &g.Codes); err != nil {
			return fmt.Errorf("group %s: %w", g.Slot, err)
		}
		a.Tracking = append(a.Tracking, g)
	}
	sort.Slice(a.Tracking, func(i, j int) bool {
		return account.SlotIndex(a.Tracking[i].Slot) < account.SlotIndex(a.Tracking[j].Slot)
	})
	return rows.Err()
}

func loadReminders(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	var ids []string
	if err := tx.SelectContext(ctx, &ids, `SELECT id FROM reminders_done`); err != nil {
		return err
	}
	for _, id := range ids {
		a.RemindersDone[id] = true
	}
	return nil
}

// The three big tables are read straight from the driver (rawVMRs, rawDevices, rawUsers):
// database/sql converts every column of every row through reflection, which for 400,000
// people is some 8 million conversions — the larger part of loading the state.

// rawLoad runs load on a connection of its own inside one read transaction.
func (db *DB) rawLoad(ctx context.Context, a *Actual, load func(*sqlite3.SQLiteConn, *Actual) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		// A scan gains nothing from the 64 MiB page cache the writer uses, and four
		// loaders filling theirs from a 400 MB database were most of a no-op plan's RSS.
		if _, err := sc.Exec("PRAGMA cache_size = -2048", nil); err != nil {
			return err
		}
		defer sc.Exec(fmt.Sprintf("PRAGMA cache_size = %d", cacheSizeKiB), nil)
		if _, err := sc.Exec("BEGIN DEFERRED", nil); err != nil {
			return err
		}
		err := load(sc, a)
		if _, rerr := sc.Exec("ROLLBACK", nil); err == nil && rerr != nil {
			err = rerr
		}
		return err
	})
}

// eachRow calls fn with the values of each row of query.
func eachRow(sc *sqlite3.SQLiteConn, query string, fn func([]driver.Value) error) error {
	return eachRowArgs(sc, query, nil, fn)
}

// eachRowArgs is eachRow with query arguments.
func eachRowArgs(sc *sqlite3.SQLiteConn, query string, args []driver.Value, fn func([]driver.Value) error) error {
	rows, err := sc.Query(query, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := fn(dest); err != nil {
			return err
		}
	}
}

func rawStr(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func rawInt(v driver.Value) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func rawVMRs(sc *sqlite3.SQLiteConn, a *Actual, sel selection) error {
	var ar arena
	var vs slab[account.VMR]
	where, args := sel.where("id")
	first := len(a.VMRs)
	err := eachRowArgs(sc, `SELECT id, name, description, pin, guest_pin, allow_guests, max_callrate_in, max_callrate_out,
		participant_limit, tag, owner_email, sync_tag, entry_key FROM vmrs`+where+` ORDER BY id`, args, func(r []driver.Value) error {
		if !sel.keep(rawInt(r[0])) {
			return nil
		}
		v := vs.next()
		*v = account.VMR{ID: rawInt(r[0]), Name: ar.str(rawStr(r[1])), Description: ar.str(rawStr(r[2])), PIN: ar.str(rawStr(r[3])),
			GuestPIN: ar.str(rawStr(r[4])), AllowGuests: rawInt(r[5]) != 0, MaxCallrateIn: int(rawInt(r[6])),
			MaxCallrateOut: int(rawInt(r[7])), ParticipantLimit: int(rawInt(r[8])), Tag: ar.intern(rawStr(r[9])),
			OwnerEmail: ar.str(rawStr(r[10])), SyncTag: ar.intern(rawStr(r[11])), EntryKey: ar.str(rawStr(r[12]))}
		a.VMRs = append(a.VMRs, v)
		return nil
	})
	if err != nil {
		return err
	}
	// Aliases come in VMR id order, like the VMRs: a merge join, into one shared backing array.
	var all []string
	var owners []int64
	where, args = sel.where("vmr_id")
	err = eachRowArgs(sc, `SELECT vmr_id, alias FROM vmr_aliases`+where+` ORDER BY vmr_id, pos`, args, func(r []driver.Value) error {
		if !sel.keep(rawInt(r[0])) {
			return nil
		}
		owners = append(owners, rawInt(r[0]))
		all = append(all, ar.str(rawStr(r[1])))
		return nil
	})
	if err != nil {
		return err
	}
	i := 0
	for _, v := range a.VMRs[first:] {
		for i < len(owners) && owners[i] < v.ID {
			i++ // an alias of no VMR: the foreign key forbids it; skip defensively
		}
		j := i
		for j < len(owners) && owners[j] == v.ID {
			j++
		}
		if j > i {
			v.Aliases = all[i:j:j]
		}
		i = j
	}
	return nil
}

func rawDevices(sc *sqlite3.SQLiteConn, a *Actual, sel selection) error {
	var ar arena
	var ds slab[account.Device]
	where, args := sel.where("id")
	return eachRowArgs(sc, `SELECT id, alias, description, username, password, tag, owner_email, sync_tag, entry_key
		FROM devices`+where+` ORDER BY id`, args, func(r []driver.Value) error {
		if !sel.keep(rawInt(r[0])) {
			return nil
		}
		d := ds.next()
		*d = account.Device{ID: rawInt(r[0]), Alias: ar.str(rawStr(r[1])), Description: ar.str(rawStr(r[2])),
			Username: ar.str(rawStr(r[3])), Password: ar.str(rawStr(r[4])), Tag: ar.intern(rawStr(r[5])),
			OwnerEmail: ar.str(rawStr(r[6])), SyncTag: ar.intern(rawStr(r[7])), EntryKey: ar.str(rawStr(r[8]))}
		a.Devices = append(a.Devices, d)
		return nil
	})
}

func rawUsers(sc *sqlite3.SQLiteConn, a *Actual, sel selection) error {
	var ar arena
	var us slab[account.User]
	where, args := sel.where("id")
	return eachRowArgs(sc, `SELECT id, userid, email, first_name, last_name, language, host_privilege, time_zone, tracking,
		active, origin, license, sync_tag, entry_key, notified_at IS NOT NULL FROM users`+where+` ORDER BY id`, args, func(r []driver.Value) error {
		if !sel.keep(rawInt(r[0])) {
			return nil
		}
		u := us.next()
		*u = account.User{ID: rawInt(r[0]), UserID: ar.str(rawStr(r[1])), Email: ar.str(rawStr(r[2])),
			FirstName: ar.intern(rawStr(r[3])), LastName: ar.intern(rawStr(r[4])), Language: ar.intern(rawStr(r[5])),
			HostPrivilege: ar.intern(rawStr(r[6])), TimeZone: ar.intern(rawStr(r[7])), Active: rawInt(r[9]) != 0,
			Origin: ar.intern(rawStr(r[10])), License: ar.intern(rawStr(r[11])), SyncTag: ar.intern(rawStr(r[12])),
			EntryKey: ar.str(rawStr(r[13])), Notified: rawInt(r[14]) != 0}
		u.Tracking = trackingFromDB(ar.intern(rawStr(r[8])))
		a.Users = append(a.Users, u)
		return nil
	})
}
