package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// ManualTag is the sync tag of VMRs and devices declared by hand in the repo.
const ManualTag = "manual"

// VMR is a Virtual Meeting Room as roster applied it.
type VMR struct {
	ID               int64    `json:"-"`
	Name             string   `json:"name"`
	Description      string   `json:"description"`
	Aliases          []string `json:"aliases"`
	PIN              string   `json:"pin"`
	GuestPIN         string   `json:"guest_pin"`
	AllowGuests      bool     `json:"allow_guests"`
	MaxCallrateIn    int      `json:"max_callrate_in"`
	MaxCallrateOut   int      `json:"max_callrate_out"`
	ParticipantLimit int      `json:"participant_limit"`
	Tag              string   `json:"tag"`
	OwnerEmail       string   `json:"primary_owner_email_address"`
	SyncTag          string   `json:"sync_tag"`
	EntryKey         string   `json:"entry_key,omitempty"`
}

// Device is a device alias (a login for a video device or soft client).
type Device struct {
	ID          int64  `json:"-"`
	Alias       string `json:"alias"`
	Description string `json:"description"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	Tag         string `json:"tag"`
	OwnerEmail  string `json:"primary_owner_email_address"`
	SyncTag     string `json:"sync_tag"`
	EntryKey    string `json:"entry_key,omitempty"`
}

// User is a conferencing user account (WebEx Meetings Server semantics: one per email,
// never deleted).
type User struct {
	ID            int64      `json:"-"`
	UserID        string     `json:"userid"`
	Email         string     `json:"email"`
	FirstName     string     `json:"first_name"`
	LastName      string     `json:"last_name"`
	Language      string     `json:"language"`
	HostPrivilege string     `json:"host_privilege"`
	TimeZone      string     `json:"time_zone"`
	Tracking      [10]string `json:"tracking"`
	Active        bool       `json:"active"`
	Origin        string     `json:"origin"`  // local | remote
	License       string     `json:"license"` // paid | free
	SyncTag       string     `json:"sync_tag,omitempty"`
	EntryKey      string     `json:"entry_key,omitempty"`
	Notified      bool       `json:"notified"`
}

// Invite is a Pexip Service invitation.
type Invite struct {
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	Username   string    `json:"username"`
	Status     string    `json:"status"` // pending | accepted | revoked | expired
	InvitedAt  time.Time `json:"invited_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// TrackingCode is one code of a tracking-code group.
type TrackingCode struct {
	Code    string `json:"code"`
	Active  bool   `json:"active"`
	Default bool   `json:"default"`
}

// TrackingGroup is one of the ten tracking-code groups.
type TrackingGroup struct {
	Slot      string         `json:"slot"`
	Name      string         `json:"name"`
	InputMode string         `json:"input_mode"`
	Usage     string         `json:"usage"`
	Sort      string         `json:"sort"`
	Codes     []TrackingCode `json:"codes"`
}

// Actual is everything roster has applied, loaded in one read transaction.
type Actual struct {
	StateVersion  int64
	VMRs          []*VMR
	Devices       []*Device
	Users         []*User
	Invites       []*Invite
	Tracking      []*TrackingGroup
	RemindersDone map[string]bool
	MaxUserSeq    int64 // highest numeric USERID handed out, for generating the next ones
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
	steps := []struct {
		name string
		fn   func(context.Context, *sqlx.Tx, *Actual) error
	}{
		{"vmrs", loadVMRs}, {"devices", loadDevices}, {"users", loadUsers},
		{"invites", loadInvites}, {"tracking groups", loadTracking}, {"reminders", loadReminders},
	}
	run := func(name string, fn func(context.Context, *sqlx.Tx, *Actual) error) error {
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
	// The version first: anything committed after it is caught by the re-check.
	if err := run("meta", loadMeta); err != nil {
		return nil, err
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
			return nil, err
		}
	}
	return a, nil
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

func loadVMRs(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, name, description, pin, guest_pin, allow_guests,
		max_callrate_in, max_callrate_out, participant_limit, tag, owner_email, sync_tag, entry_key
		FROM vmrs ORDER BY id`)
	if err != nil {
		return err
	}
	var ar arena
	var vs slab[VMR]
	var r VMR
	for rows.Next() {
		if err := rows.Scan(&r.ID, &r.Name, &r.Description, &r.PIN, &r.GuestPIN, &r.AllowGuests,
			&r.MaxCallrateIn, &r.MaxCallrateOut, &r.ParticipantLimit, &r.Tag, &r.OwnerEmail, &r.SyncTag, &r.EntryKey); err != nil {
			rows.Close()
			return err
		}
		v := vs.next()
		*v = VMR{ID: r.ID, Name: ar.str(r.Name), Description: ar.str(r.Description), PIN: ar.str(r.PIN),
			GuestPIN: ar.str(r.GuestPIN), AllowGuests: r.AllowGuests, MaxCallrateIn: r.MaxCallrateIn,
			MaxCallrateOut: r.MaxCallrateOut, ParticipantLimit: r.ParticipantLimit, Tag: ar.intern(r.Tag),
			OwnerEmail: ar.str(r.OwnerEmail), SyncTag: ar.intern(r.SyncTag), EntryKey: ar.str(r.EntryKey)}
		a.VMRs = append(a.VMRs, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Aliases come in VMR id order, like the VMRs: a merge join, into one shared backing array.
	arows, err := tx.QueryContext(ctx, `SELECT vmr_id, alias FROM vmr_aliases ORDER BY vmr_id, pos`)
	if err != nil {
		return err
	}
	defer arows.Close()
	var all []string
	var owners []int64
	for arows.Next() {
		var id int64
		var alias string
		if err := arows.Scan(&id, &alias); err != nil {
			return err
		}
		all = append(all, ar.str(alias))
		owners = append(owners, id)
	}
	if err := arows.Err(); err != nil {
		return err
	}
	i := 0
	for _, v := range a.VMRs {
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

func loadDevices(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, alias, description, username, password, tag, owner_email,
		sync_tag, entry_key FROM devices ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ar arena
	var ds slab[Device]
	var r Device
	for rows.Next() {
		if err := rows.Scan(&r.ID, &r.Alias, &r.Description, &r.Username, &r.Password, &r.Tag, &r.OwnerEmail,
			&r.SyncTag, &r.EntryKey); err != nil {
			return err
		}
		d := ds.next()
		*d = Device{ID: r.ID, Alias: ar.str(r.Alias), Description: ar.str(r.Description), Username: ar.str(r.Username),
			Password: ar.str(r.Password), Tag: ar.intern(r.Tag), OwnerEmail: ar.str(r.OwnerEmail),
			SyncTag: ar.intern(r.SyncTag), EntryKey: ar.str(r.EntryKey)}
		a.Devices = append(a.Devices, d)
	}
	return rows.Err()
}

func loadUsers(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, userid, email, first_name, last_name, language, host_privilege,
		time_zone, tracking, active, origin, license, sync_tag, entry_key, notified_at IS NOT NULL FROM users ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ar arena
	var us slab[User]
	var r User
	var tracking string
	for rows.Next() {
		if err := rows.Scan(&r.ID, &r.UserID, &r.Email, &r.FirstName, &r.LastName, &r.Language, &r.HostPrivilege,
			&r.TimeZone, &tracking, &r.Active, &r.Origin, &r.License, &r.SyncTag, &r.EntryKey, &r.Notified); err != nil {
			return err
		}
		u := us.next()
		*u = User{ID: r.ID, UserID: ar.str(r.UserID), Email: ar.str(r.Email), FirstName: ar.intern(r.FirstName),
			LastName: ar.intern(r.LastName), Language: ar.intern(r.Language), HostPrivilege: ar.intern(r.HostPrivilege),
			TimeZone: ar.intern(r.TimeZone), Active: r.Active, Origin: ar.intern(r.Origin), License: ar.intern(r.License),
			SyncTag: ar.intern(r.SyncTag), EntryKey: ar.str(r.EntryKey), Notified: r.Notified}
		if tracking != "" && tracking != "[]" {
			for i, v := range decodeTracking(tracking) {
				u.Tracking[i] = ar.intern(v)
			}
		}
		a.Users = append(a.Users, u)
	}
	return rows.Err()
}

// encodeTracking stores the ten tracking values compactly: "[]" when all are empty.
func encodeTracking(t [10]string) string {
	last := -1
	for i, v := range t {
		if v != "" {
			last = i
		}
	}
	b, _ := json.Marshal(t[:last+1])
	return string(b)
}

func decodeTracking(s string) [10]string {
	var out [10]string
	if s == "" || s == "[]" {
		return out
	}
	var vals []string
	json.Unmarshal([]byte(s), &vals)
	copy(out[:], vals)
	return out
}

func loadInvites(ctx context.Context, tx *sqlx.Tx, a *Actual) error {
	rows, err := tx.QueryContext(ctx, `SELECT email, name, username, status, invited_at, expires_at,
		COALESCE(accepted_at, '') FROM invites ORDER BY email`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		in := &Invite{}
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
		g := &TrackingGroup{}
		var codes string
		if err := rows.Scan(&g.Slot, &g.Name, &g.InputMode, &g.Usage, &g.Sort, &codes); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(codes), &g.Codes); err != nil {
			return fmt.Errorf("group %s: %w", g.Slot, err)
		}
		a.Tracking = append(a.Tracking, g)
	}
	sort.Slice(a.Tracking, func(i, j int) bool { return SlotIndex(a.Tracking[i].Slot) < SlotIndex(a.Tracking[j].Slot) })
	return rows.Err()
}

// SlotIndex orders tracking slots DIVISION … CUSTOM10.
func SlotIndex(slot string) int {
	for i, s := range []string{"DIVISION", "DEPARTMENT", "PROJECT", "OTHER", "CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"} {
		if strings.EqualFold(s, slot) {
			return i
		}
	}
	return 99
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
