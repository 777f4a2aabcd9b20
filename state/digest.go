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
	// VMRMask and DeviceMask: sync tag → fields left out, named by MaskName, of the
	// digested fields of account.VMRFields and account.DeviceFields.
	VMRMask    map[string][]string
	DeviceMask map[string][]string
	// Undigested are sync tags whose objects LoadIndex reads without digests (their
	// Digest is Undigested's constant): a plan whose render cache holds the template's
	// entries compares few of them (rendercache.go), and the digest text is most of what
	// SQLite builds for the index. An object rendered anyway is then compared in full.
	Undigested map[string]bool
}

// Digested says whether the index holds the digests of tag's objects.
func (s *DigestSpec) Digested(tag string) bool { return !s.Undigested[tag] }

// undigested lists Undigested as an SQL list of string literals, in a fixed order
// ("" when empty).
func (s *DigestSpec) undigested() string {
	tags := make([]string, 0, len(s.Undigested))
	for tag, ok := range s.Undigested {
		if ok {
			tags = append(tags, "'"+strings.ReplaceAll(tag, "'", "''")+"'")
		}
	}
	slices.Sort(tags)
	return strings.Join(tags, ",")
}

// digestSQL is the digest text expression text, empty for the undigested tags.
func (s *DigestSpec) digestSQL(text string) string {
	if tags := s.undigested(); tags != "" {
		return "(CASE WHEN sync_tag IN (" + tags + ") THEN '' ELSE " + text + " END)"
	}
	return text
}

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

// VMR is the digest of v (masked by v's sync tag).
func (s *DigestSpec) VMR(v *account.VMR) uint64 {
	var h maphash.Hash
	h.SetSeed(s.Seed)
	mask := s.VMRMask[v.SyncTag]
	putFields(&h, account.VMRFields, v, mask)
	var aliases uint64
	if !slices.Contains(mask, "aliases") {
		for i, a := range v.Aliases {
			aliases += s.alias(i, a)
		}
	}
	return s.withAliases(h.Sum64(), aliases)
}

// MaskName is how a digest mask names a field: by its column, or its name when it has
// none (a VMR's aliases).
func MaskName[T any](f *account.Field[T]) string {
	if f.Column == "" {
		return f.Name
	}
	return f.Column
}

// putFields writes the digest text of x's digested fields but lists (a VMR's aliases,
// hashed apart), in their order; fields the mask names count as empty.
func putFields[T any](h *maphash.Hash, fields []account.Field[T], x *T, mask []string) {
	for i := range fields {
		f := &fields[i]
		if !f.Digested() || f.Type == account.Strings {
			continue
		}
		masked := len(mask) > 0 && slices.Contains(mask, f.Column)
		switch f.Type {
		case account.Int:
			n := *f.Num(x)
			if masked {
				n = 0
			}
			putInt(h, n)
		case account.Bool:
			putBool(h, *f.Flag(x) && !masked)
		default:
			v := *f.Str(x)
			if masked {
				v = ""
			}
			putStr(h, v)
		}
	}
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
	putFields(&h, account.DeviceFields, d, s.DeviceMask[d.SyncTag])
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

// fieldsText is the SQL of putFields: the digest text of a row's digested columns.
func fieldsText[T any](t *sqlText, fields []account.Field[T], mask map[string][]string) {
	for i := range fields {
		f := &fields[i]
		if !f.Digested() || f.Type == account.Strings {
			continue
		}
		kind := "s"
		if f.Type == account.Int || f.Type == account.Bool {
			kind = "i"
		}
		t.col(f.Column, kind, tagsMasking(mask, f.Column))
	}
}

// ownerText is the SQL of the text Owner hashes for a row: its sync tag and owner key
// (the SQL expression key), each length-prefixed. One text where two made the driver
// allocate twice per row; ownerTag reads the tag back.
func ownerText(key string) string {
	return "(octet_length(sync_tag) || ':' || sync_tag || octet_length(" + key + ") || ':' || " + key + ")"
}

// ownerTag is the sync tag at the start of an owner text ("" if it is not one).
func ownerTag(text string) string {
	i := strings.IndexByte(text, ':')
	if i < 0 {
		return ""
	}
	n, err := strconv.Atoi(text[:i])
	if err != nil || n < 0 || n > len(text)-i-1 {
		return ""
	}
	return text[i+1 : i+1+n]
}

// vmrQuery selects id, owner text and digest text of every VMR.
func (s *DigestSpec) vmrQuery() (string, []driver.Value) {
	var t sqlText
	fieldsText(&t, account.VMRFields, s.VMRMask)
	// The aliases come from a second query (see alias); the last column says when they
	// count as none.
	masked := "0"
	if tags := tagsMasking(s.VMRMask, "aliases"); len(tags) > 0 {
		masked = "(" + t.in(tags) + ")"
	}
	return `SELECT id, ` + ownerText(`CASE WHEN sync_tag = '`+account.ManualTag+`' OR entry_key = '' THEN name ELSE entry_key END`) + `, ` +
		s.digestSQL(t.sql()) + `, ` + masked + ` FROM vmrs ORDER BY id`, t.args
}

// deviceQuery selects id, owner text and digest text of every device.
func (s *DigestSpec) deviceQuery() (string, []driver.Value) {
	var t sqlText
	fieldsText(&t, account.DeviceFields, s.DeviceMask)
	return `SELECT id, ` + ownerText(`CASE WHEN sync_tag = '`+account.ManualTag+`' OR entry_key = '' THEN alias ELSE entry_key END`) + `, ` +
		s.digestSQL(t.sql()) + ` FROM devices ORDER BY id`, t.args
}

// userQuery selects what UserRef holds — its texts end to end and the lengths of the
// email, USERID and sync tag among them (one text: one allocation of the driver's where
// four were); flags: 1 active, 2 local, 4 paid — and the digest text.
func (s *DigestSpec) userQuery() string {
	var t sqlText
	for _, c := range []string{"first_name", "last_name", "language", "host_privilege", "time_zone"} {
		t.col(c, "s", nil)
	}
	t.col(`(CASE WHEN tracking = '[]' THEN '' ELSE tracking END)`, "s", nil)
	t.col("active != 0", "i", nil)
	for _, c := range []string{"origin", "license", "sync_tag", "entry_key"} {
		t.col(c, "s", nil)
	}
	return `SELECT id, lower(email) || userid || sync_tag || entry_key, octet_length(lower(email)), octet_length(userid), octet_length(sync_tag),
		(active != 0) | ((origin = 'local') << 1) | ((license = 'paid') << 2), ` + s.digestSQL(t.sql()) + ` FROM users ORDER BY id`
}
