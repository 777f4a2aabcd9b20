package state

import (
	"database/sql/driver"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"

	"github.com/roster-dev/roster/schema/account"
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
	Seed maphash.Seed
	// VMRMask: sync tag → VMR fields left out, of name, description, aliases, pin,
	// guest_pin, allow_guests, max_callrate_in, max_callrate_out, participant_limit, tag,
	// owner_email.
	VMRMask map[string][]string
	// DeviceMask: sync tag → device fields left out, of DeviceDigestFields.
	DeviceMask map[string][]string
}

// DeviceDigestFields are the device fields a mask may name, in digest order.
var DeviceDigestFields = []string{"description", "username", "password", "tag", "owner_email"}

// putStr, putInt and putBool write the digest text both sides build (SQLite in the
// index query, Go here). They take the hash itself, not an interface: through one, each
// digest's hash and number buffers escaped to the heap, ~1 GB of garbage in a no-op
// plan of 400,000 people.
func putStr(w *maphash.Hash, s string) {
	var n [24]byte
	w.Write(append(strconv.AppendInt(n[:0], int64(len(s)), 10), ':'))
	w.WriteString(s)
}

func putInt(w *maphash.Hash, v int) {
	var n [24]byte
	w.Write(append(strconv.AppendInt(n[:0], int64(v), 10), ';'))
}

func putBool(w *maphash.Hash, b bool) {
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
func (s *DigestSpec) VMR(v *account.VMR) uint64 {
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
	var aliases uint64
	if !m("aliases") {
		for i, a := range v.Aliases {
			aliases += s.alias(i, a)
		}
	}
	return s.withAliases(h.Sum64(), aliases)
}

// alias hashes the alias at position pos of a VMR's list. A VMR's aliases count in its
// digest as the sum of these, which LoadIndex adds up reading the aliases table in any
// order (sorting 800,000 aliases by VMR cost more than the rest of the index). The list
// is the same exactly when the (position, alias) pairs are, and so, but for collisions,
// when the sums are.
func (s *DigestSpec) alias(pos int, alias string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	putInt(&h, pos)
	putStr(&h, alias)
	return h.Sum64()
}

// withAliases combines the digest of a VMR's other fields with its aliases' sum.
func (s *DigestSpec) withAliases(fields, aliases uint64) uint64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], fields)
	binary.LittleEndian.PutUint64(b[8:], aliases)
	return maphash.Bytes(s.Seed, b[:])
}

// Device is the digest of d (masked by d's sync tag).
func (s *DigestSpec) Device(d *account.Device) uint64 {
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
func (s *DigestSpec) User(u *account.User) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	for _, x := range []string{u.FirstName, u.LastName, u.Language, u.HostPrivilege, u.TimeZone, string(u.Tracking)} {
		putStr(&h, x)
	}
	putBool(&h, u.Active)
	for _, x := range []string{u.Origin, u.License, u.SyncTag, u.EntryKey} {
		putStr(&h, x)
	}
	return h.Sum64()
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
	// The aliases come from a second query (see alias); the last column says when they
	// count as none.
	masked := "0"
	if tags := m("aliases"); len(tags) > 0 {
		masked = "(" + t.in(tags) + ")"
	}
	return `SELECT id, sync_tag, CASE WHEN sync_tag = '` + account.ManualTag + `' OR entry_key = '' THEN name ELSE entry_key END, ` +
		t.sql() + `, ` + masked + ` FROM vmrs ORDER BY id`, t.args
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
	return `SELECT id, sync_tag, CASE WHEN sync_tag = '` + account.ManualTag + `' OR entry_key = '' THEN alias ELSE entry_key END, ` +
		t.sql() + ` FROM devices ORDER BY id`, t.args
}

// userQuery selects what UserRef holds (flags: 1 active, 2 local, 4 paid) and the digest text.
func userQuery() string {
	var t sqlText
	for _, c := range []string{"first_name", "last_name", "language", "host_privilege", "time_zone"} {
		t.col(c, "s", nil)
	}
	t.col(`(CASE WHEN tracking = '[]' THEN '' ELSE tracking END)`, "s", nil)
	t.col("active != 0", "i", nil)
	for _, c := range []string{"origin", "license", "sync_tag", "entry_key"} {
		t.col(c, "s", nil)
	}
	return `SELECT id, lower(email), userid, sync_tag, entry_key,
		(active != 0) | ((origin = 'local') << 1) | ((license = 'paid') << 2), ` + t.sql() + ` FROM users ORDER BY id`
}
