package state

import (
	"database/sql/driver"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
)

// DigestSpec says how an Index digests objects: a 64-bit hash of a text that lists the
// fields a plan compares, each length-prefixed ("5:Alice"), integers as "4128;". SQLite
// builds that text for a stored object (LoadIndex reads one column instead of a dozen);
// the VMR, Device and User methods build the same text from an object in Go, so a
// rendered object and its stored counterpart have equal digests exactly when those
// fields are equal (collisions aside: 2^-64 a pair, with a seed random per process).
//
// Masks leave fields out, by sync tag: a template's overridable fields, which a plan
// never compares after creation. A masked field counts as empty (or 0).
type DigestSpec struct {
	Seed       maphash.Seed
	VMRMask    map[string][]string // sync tag → VMR fields (VMRDigestFields) left out
	DeviceMask map[string][]string // sync tag → device fields (DeviceDigestFields) left out
}

// VMRDigestFields and DeviceDigestFields are the fields a mask may name, in digest order.
var (
	VMRDigestFields = []string{"name", "description", "aliases", "pin", "guest_pin", "allow_guests",
		"max_callrate_in", "max_callrate_out", "participant_limit", "tag", "owner_email"}
	DeviceDigestFields = []string{"description", "username", "password", "tag", "owner_email"}
)

// digestText is the writer both sides build the text with (a maphash.Hash in Go).
type digestText interface {
	Write([]byte) (int, error)
	WriteString(string) (int, error)
	WriteByte(byte) error
}

func putStr(w digestText, s string) {
	var n [24]byte
	w.Write(append(strconv.AppendInt(n[:0], int64(len(s)), 10), ':'))
	w.WriteString(s)
}

func putInt(w digestText, v int) {
	var n [24]byte
	w.Write(append(strconv.AppendInt(n[:0], int64(v), 10), ';'))
}

func putBool(w digestText, b bool) {
	if b {
		w.WriteString("1;")
	} else {
		w.WriteString("0;")
	}
}

func (s *DigestSpec) masked(m map[string][]string, tag, field string) bool {
	return slices.Contains(m[tag], field)
}

// VMR is the digest of v (masked by v's sync tag).
func (s *DigestSpec) VMR(v *VMR) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	m := func(f string) bool { return s.masked(s.VMRMask, v.SyncTag, f) }
	str := func(f, x string) {
		if m(f) {
			x = ""
		}
		putStr(&h, x)
	}
	num := func(f string, x int) {
		if m(f) {
			x = 0
		}
		putInt(&h, x)
	}
	str("name", v.Name)
	str("description", v.Description)
	if !m("aliases") {
		for _, a := range v.Aliases {
			putStr(&h, a)
		}
	}
	h.WriteByte('|')
	str("pin", v.PIN)
	str("guest_pin", v.GuestPIN)
	putBool(&h, v.AllowGuests && !m("allow_guests"))
	num("max_callrate_in", v.MaxCallrateIn)
	num("max_callrate_out", v.MaxCallrateOut)
	num("participant_limit", v.ParticipantLimit)
	str("tag", v.Tag)
	str("owner_email", v.OwnerEmail)
	putStr(&h, v.SyncTag)
	putStr(&h, v.EntryKey)
	return h.Sum64()
}

// Device is the digest of d (masked by d's sync tag).
func (s *DigestSpec) Device(d *Device) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	str := func(f, x string) {
		if f != "" && s.masked(s.DeviceMask, d.SyncTag, f) {
			x = ""
		}
		putStr(&h, x)
	}
	str("", d.Alias)
	str("description", d.Description)
	str("username", d.Username)
	str("password", d.Password)
	str("tag", d.Tag)
	str("owner_email", d.OwnerEmail)
	putStr(&h, d.SyncTag)
	putStr(&h, d.EntryKey)
	return h.Sum64()
}

// User is the digest of u: what a plan compares of an account (not its email, which is
// its key, nor its USERID or activation, which a plan never changes).
func (s *DigestSpec) User(u *User) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	for _, x := range []string{u.FirstName, u.LastName, u.Language, u.HostPrivilege, u.TimeZone, string(u.Tracking)} {
		putStr(&h, x)
	}
	userTail(&h, u.Active, u.Origin, u.License, u.SyncTag, u.EntryKey)
	return h.Sum64()
}

func userTail(h *maphash.Hash, active bool, origin, license, syncTag, entryKey string) {
	putBool(h, active)
	for _, x := range []string{origin, license, syncTag, entryKey} {
		putStr(h, x)
	}
}

// Owner hashes an owner: a sync tag and an owner key (see OwnerKey).
func (s *DigestSpec) Owner(tag, key string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	putStr(&h, tag)
	putStr(&h, key)
	return h.Sum64()
}

// sqlText is the SQL for the text of columns: each column maps to a string ('s') or an
// integer ('i'); masked columns (by the row's sync_tag) count as empty.
type sqlText struct {
	parts []string
	args  []driver.Value
}

// in is "sync_tag IN (…)" over tags, as numbered parameters (an expression may then
// appear twice, as a length prefix and as itself).
func (t *sqlText) in(tags []string) string {
	ps := make([]string, len(tags))
	for i, tag := range tags {
		k := slices.Index(t.args, driver.Value(tag))
		if k < 0 {
			t.args = append(t.args, tag)
			k = len(t.args) - 1
		}
		ps[i] = "?" + strconv.Itoa(k+1)
	}
	return "sync_tag IN (" + strings.Join(ps, ",") + ")"
}

func (t *sqlText) col(expr, kind string, maskedTags []string) {
	if len(maskedTags) > 0 {
		zero := "''"
		if kind == "i" {
			zero = "0"
		}
		expr = "(CASE WHEN " + t.in(maskedTags) + " THEN " + zero + " ELSE " + expr + " END)"
	}
	switch kind {
	case "s":
		t.parts = append(t.parts, "octet_length("+expr+")", "':'", expr)
	case "i":
		t.parts = append(t.parts, "CAST("+expr+" AS TEXT)", "';'")
	}
}

func (t *sqlText) sql() string { return "(" + strings.Join(t.parts, " || ") + ")" }

// tagsMasking lists the sync tags whose mask names field, in a fixed order.
func tagsMasking(m map[string][]string, field string) []string {
	var tags []string
	for tag, fields := range m {
		if slices.Contains(fields, field) {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	return tags
}

// vmrQuery selects id, sync_tag, owner key and digest text of every VMR.
func (s *DigestSpec) vmrQuery() (string, []driver.Value) {
	var t sqlText
	m := func(f string) []string { return tagsMasking(s.VMRMask, f) }
	t.col("name", "s", m("name"))
	t.col("description", "s", m("description"))
	aliases := `coalesce((SELECT group_concat(octet_length(alias) || ':' || alias, '' ORDER BY pos) FROM vmr_aliases WHERE vmr_id = vmrs.id), '')`
	if tags := m("aliases"); len(tags) > 0 { // masked: the list counts as empty
		aliases = "(CASE WHEN " + t.in(tags) + " THEN '' ELSE " + aliases + " END)"
	}
	t.parts = append(t.parts, aliases)
	t.parts = append(t.parts, "'|'")
	t.col("pin", "s", m("pin"))
	t.col("guest_pin", "s", m("guest_pin"))
	t.col("allow_guests", "i", m("allow_guests"))
	t.col("max_callrate_in", "i", m("max_callrate_in"))
	t.col("max_callrate_out", "i", m("max_callrate_out"))
	t.col("participant_limit", "i", m("participant_limit"))
	t.col("tag", "s", m("tag"))
	t.col("owner_email", "s", m("owner_email"))
	t.col("sync_tag", "s", nil)
	t.col("entry_key", "s", nil)
	return `SELECT id, sync_tag, CASE WHEN sync_tag = '` + ManualTag + `' OR entry_key = '' THEN name ELSE entry_key END, ` +
		t.sql() + ` FROM vmrs ORDER BY id`, t.args
}

// deviceQuery selects id, sync_tag, owner key and digest text of every device.
func (s *DigestSpec) deviceQuery() (string, []driver.Value) {
	var t sqlText
	m := func(f string) []string { return tagsMasking(s.DeviceMask, f) }
	t.col("alias", "s", nil)
	for _, f := range DeviceDigestFields {
		t.col(f, "s", m(f))
	}
	t.col("sync_tag", "s", nil)
	t.col("entry_key", "s", nil)
	return `SELECT id, sync_tag, CASE WHEN sync_tag = '` + ManualTag + `' OR entry_key = '' THEN alias ELSE entry_key END, ` +
		t.sql() + ` FROM devices ORDER BY id`, t.args
}

// userQuery selects what UserRef holds, the licence, and the head of the digest text.
func userQuery() string {
	var t sqlText
	for _, c := range []string{"first_name", "last_name", "language", "host_privilege", "time_zone"} {
		t.col(c, "s", nil)
	}
	t.col(`(CASE WHEN tracking = '[]' THEN '' ELSE tracking END)`, "s", nil)
	return `SELECT id, email, userid, sync_tag, entry_key, origin, active, license, ` + t.sql() + ` FROM users ORDER BY id`
}
