package reconcile

import (
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/roster-dev/roster/schema/account"
)

// Desired objects are kept packed: each one a byte record in large pointer-free chunks,
// decoded into a struct only while something looks at it. A first apply of 400,000
// people holds 1.2 million desired objects from render to the end of apply; as structs
// with a string allocation per field they took ~1.4 KB a person and the garbage
// collector had to trace every one. Packed they take their text plus a few bytes, and
// the collector never looks inside. Decoded strings point into the chunks (no copy):
// chunks are only ever appended to, never rewritten.

// packChunk is the size of one chunk of records.
const packChunk = 1 << 20

// arena holds records in chunks; record i starts at offs[i] (chunk<<32 | offset) with
// its length as a uvarint.
type arena struct {
	chunks [][]byte
	offs   []uint64
	buf    []byte // scratch for encoding one record
}

// Len is the number of records.
func (a *arena) Len() int {
	if a == nil {
		return 0
	}
	return len(a.offs)
}

// add stores rec as a new record and returns its index.
func (a *arena) add(rec []byte) int {
	need := len(rec) + 5
	n := len(a.chunks)
	if n == 0 || cap(a.chunks[n-1])-len(a.chunks[n-1]) < need {
		a.chunks = append(a.chunks, make([]byte, 0, max(packChunk, need)))
		n++
	}
	c := a.chunks[n-1]
	a.offs = append(a.offs, uint64(n-1)<<32|uint64(len(c)))
	c = appendUvarint(c, uint64(len(rec)))
	a.chunks[n-1] = append(c, rec...)
	return len(a.offs) - 1
}

// rec is record i, a string over the chunk's bytes.
func (a *arena) rec(i int) string {
	o := a.offs[i]
	c := a.chunks[o>>32]
	r := reader{s: unsafe.String(unsafe.SliceData(c), len(c)), i: int(o & 0xffffffff)}
	n := int(r.uv())
	return r.s[r.i : r.i+n]
}

// appendArena moves b's records to the end of a; b must not be used after.
func (a *arena) appendArena(b *arena) {
	shift := uint64(len(a.chunks)) << 32
	a.chunks = append(a.chunks, b.chunks...)
	for _, o := range b.offs {
		a.offs = append(a.offs, o+shift)
	}
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendVarint(b []byte, v int64) []byte {
	return appendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendStr(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

// interned holds the values of fields that take few distinct values (sync tag, tag,
// language, time zone, licence, origin, host privilege): a record holds a number of a
// byte or two instead of their text, ~50 bytes a person. One table for all lists (so
// lists can be joined as they are), append-only, read without a lock.
var interned struct {
	mu   sync.Mutex
	idx  sync.Map // string → uint64
	list atomic.Pointer[[]string]
}

// maxSymbols bounds the table: values past it are stored as text.
const maxSymbols = 1 << 12

// appendSym stores s as a symbol: 2k+1 for symbol k, else 2·len followed by the text.
func appendSym(b []byte, s string) []byte {
	if s == "" {
		return append(b, 0)
	}
	if k, ok := interned.idx.Load(s); ok {
		return appendUvarint(b, k.(uint64)<<1|1)
	}
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if k, ok := interned.idx.Load(s); ok {
		return appendUvarint(b, k.(uint64)<<1|1)
	}
	var list []string
	if p := interned.list.Load(); p != nil {
		list = *p
	}
	if len(list) >= maxSymbols {
		return append(appendUvarint(b, uint64(len(s))<<1), s...)
	}
	k := uint64(len(list))
	list = append(list[:len(list):len(list)], strings.Clone(s)) // readers keep the old slice
	interned.list.Store(&list)
	interned.idx.Store(strings.Clone(s), k)
	return appendUvarint(b, k<<1|1)
}

// reader decodes a record.
type reader struct {
	s string
	i int
}

func (r *reader) uv() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		c := r.s[r.i]
		r.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (r *reader) int() int {
	u := r.uv()
	return int(int64(u>>1) ^ -int64(u&1))
}

func (r *reader) str() string {
	n := int(r.uv())
	s := r.s[r.i : r.i+n]
	r.i += n
	return s
}

func (r *reader) sym() string {
	v := r.uv()
	if v&1 == 1 {
		return (*interned.list.Load())[v>>1]
	}
	n := int(v >> 1)
	s := r.s[r.i : r.i+n]
	r.i += n
	return s
}

func (r *reader) byte() byte {
	c := r.s[r.i]
	r.i++
	return c
}

// extras keeps the pointer-holding parts of desired objects (overridable field sets,
// overrides, CSV rows), which few objects have or many share, by index; index 0 is none.
type extras[X any] struct {
	list []X
}

func (x *extras[X]) add(v X, same func(a, b X) bool) uint64 {
	if n := len(x.list); n > 0 && same(x.list[n-1], v) {
		return uint64(n)
	}
	x.list = append(x.list, v)
	return uint64(len(x.list))
}

func (x *extras[X]) get(i uint64) (v X) {
	if i == 0 {
		return v
	}
	return x.list[i-1]
}

// sameMap reports whether two maps are the same map (not merely equal).
func sameMap[K comparable, V any](a, b map[K]V) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}

const (
	flagA     = 1 << iota // AllowGuests (VMR), Active (user), Disabled (device)
	flagB                 // Notified (user)
	flagC                 // Disabled (user)
	flagExtra             // an extras index follows
)

// codec encodes and decodes one kind of desired object; X is its pointer-holding part.
type codec[T, X any] interface {
	encode(b []byte, v *T, x *extras[X]) []byte
	// decode reads a record into v, every field of which it sets (v may be reused).
	decode(r *reader, x *extras[X], v *T)
}

// packedList is a packed list of desired objects of one kind. A record starts with the
// object's key (name, alias, email), so Key reads only that.
type packedList[T, X any, C codec[T, X]] struct {
	arena
	x extras[X]
}

// VMRList is a packed list of desired VMRs.
type VMRList = packedList[DesiredVMR, objExtra, vmrCodec]

// DeviceList is a packed list of desired devices.
type DeviceList = packedList[DesiredDevice, objExtra, deviceCodec]

// UserList is a packed list of desired users.
type UserList = packedList[DesiredUser, *CSVRow, userCodec]

// Add appends a copy of v and returns its index.
func (l *packedList[T, X, C]) Add(v *T) int {
	var c C
	l.buf = c.encode(l.buf[:0], v, &l.x)
	return l.add(l.buf)
}

// At decodes object i into a new struct.
func (l *packedList[T, X, C]) At(i int) *T {
	v := new(T)
	l.into(i, v)
	return v
}

// into decodes object i into v, which it overwrites (a list of aliases reuses v's).
func (l *packedList[T, X, C]) into(i int, v *T) {
	var c C
	r := reader{s: l.rec(i)}
	c.decode(&r, &l.x, v)
}

// Key is object i's key (a VMR's name, a device's alias, a user's email), without
// decoding the rest.
func (l *packedList[T, X, C]) Key(i int) string {
	r := reader{s: l.rec(i)}
	return r.str()
}

// All yields each object, decoded.
func (l *packedList[T, X, C]) All() iter.Seq2[int, *T] {
	return func(yield func(int, *T) bool) {
		for i := range l.Len() {
			if !yield(i, l.At(i)) {
				return
			}
		}
	}
}

// appendList moves m's objects to the end of l; m must not be used after.
func (l *packedList[T, X, C]) appendList(m *packedList[T, X, C]) {
	if len(l.x.list) > 0 && len(m.x.list) > 0 {
		// Records of m name extras by m's indexes: re-add them, which indexes them anew
		// (rare: only a second template with overridable fields or CSV rows).
		for i := range m.Len() {
			l.Add(m.At(i))
		}
		return
	}
	l.x.list = append(l.x.list, m.x.list...)
	l.arena.appendArena(&m.arena)
}

// objExtra is a desired VMR's or device's pointer-holding part.
type objExtra struct {
	overridable map[string]bool
	overrides   map[string]string
}

// addObjExtra indexes an object's extra part; consecutive objects of one template share one.
func addObjExtra(x *extras[objExtra], overridable map[string]bool, overrides map[string]string) uint64 {
	return x.add(objExtra{overridable, overrides}, func(a, b objExtra) bool {
		return b.overrides == nil && a.overrides == nil && sameMap(a.overridable, b.overridable)
	})
}

// appendOwned writes the head VMRs and devices share: the key, the flags (flagA: a
// kind's own flag; flagExtra: an extra part follows), the id, five strings, the tag, the
// sync tag and the index of the extra part (overridable fields and overrides).
func appendOwned(b []byte, key string, a bool, id int64, strs [5]string, tag, syncTag string,
	x *extras[objExtra], overridable map[string]bool, overrides map[string]string) []byte {
	b = appendStr(b, key)
	var flags byte
	if a {
		flags |= flagA
	}
	if overridable != nil || overrides != nil {
		flags |= flagExtra
	}
	b = append(b, flags)
	b = appendVarint(b, id)
	for _, s := range strs {
		b = appendStr(b, s)
	}
	b = appendSym(appendSym(b, tag), syncTag)
	if flags&flagExtra != 0 {
		b = appendUvarint(b, addObjExtra(x, overridable, overrides))
	}
	return b
}

// owned reads what appendOwned wrote.
func (r *reader) owned(key *string, a *bool, id *int64, strs [5]*string, tag, syncTag *string,
	x *extras[objExtra], overridable *map[string]bool, overrides *map[string]string) {
	*key = r.str()
	flags := r.byte()
	*a = flags&flagA != 0
	*id = int64(r.int())
	for _, s := range strs {
		*s = r.str()
	}
	*tag, *syncTag = r.sym(), r.sym()
	if flags&flagExtra != 0 {
		e := x.get(r.uv())
		*overridable, *overrides = e.overridable, e.overrides
	}
}

type vmrCodec struct{}

func (vmrCodec) encode(b []byte, v *DesiredVMR, x *extras[objExtra]) []byte {
	b = appendOwned(b, v.Name, v.AllowGuests, v.ID, [...]string{v.Description, v.PIN, v.GuestPIN, v.OwnerEmail, v.EntryKey},
		v.Tag, v.SyncTag, x, v.Overridable, v.Overrides)
	b = appendUvarint(b, uint64(len(v.Aliases)))
	for _, a := range v.Aliases {
		b = appendStr(b, a)
	}
	b = appendVarint(b, int64(v.MaxCallrateIn))
	b = appendVarint(b, int64(v.MaxCallrateOut))
	return appendVarint(b, int64(v.ParticipantLimit))
}

func (vmrCodec) decode(r *reader, x *extras[objExtra], v *DesiredVMR) {
	aliases := v.Aliases[:0]
	*v = DesiredVMR{}
	r.owned(&v.Name, &v.AllowGuests, &v.ID, [...]*string{&v.Description, &v.PIN, &v.GuestPIN, &v.OwnerEmail, &v.EntryKey},
		&v.Tag, &v.SyncTag, x, &v.Overridable, &v.Overrides)
	if n := int(r.uv()); n > 0 {
		if cap(aliases) < n {
			aliases = make([]string, n)
		}
		v.Aliases = aliases[:n]
		for k := range v.Aliases {
			v.Aliases[k] = r.str()
		}
	}
	v.MaxCallrateIn, v.MaxCallrateOut, v.ParticipantLimit = r.int(), r.int(), r.int()
}

type deviceCodec struct{}

func (deviceCodec) encode(b []byte, v *DesiredDevice, x *extras[objExtra]) []byte {
	return appendOwned(b, v.Alias, v.Disabled, v.ID, [...]string{v.Description, v.Username, v.Password, v.OwnerEmail, v.EntryKey},
		v.Tag, v.SyncTag, x, v.Overridable, v.Overrides)
}

func (deviceCodec) decode(r *reader, x *extras[objExtra], v *DesiredDevice) {
	*v = DesiredDevice{}
	r.owned(&v.Alias, &v.Disabled, &v.ID, [...]*string{&v.Description, &v.Username, &v.Password, &v.OwnerEmail, &v.EntryKey},
		&v.Tag, &v.SyncTag, x, &v.Overridable, &v.Overrides)
}

type userCodec struct{}

func (userCodec) encode(b []byte, u *DesiredUser, x *extras[*CSVRow]) []byte {
	b = appendStr(b, u.Email)
	var flags byte
	if u.Active {
		flags |= flagA
	}
	if u.Notified {
		flags |= flagB
	}
	if u.Disabled {
		flags |= flagC
	}
	if u.CSV != nil {
		flags |= flagExtra
	}
	b = append(b, flags)
	b = appendVarint(b, u.ID)
	for _, s := range [...]string{u.UserID, u.FirstName, u.LastName, string(u.Tracking), u.EntryKey} {
		b = appendStr(b, s)
	}
	for _, s := range [...]string{u.Language, u.HostPrivilege, u.TimeZone, u.Origin, u.License, u.SyncTag} {
		b = appendSym(b, s)
	}
	if u.CSV != nil {
		b = appendUvarint(b, x.add(u.CSV, func(a, b *CSVRow) bool { return a == b }))
	}
	return b
}

func (userCodec) decode(r *reader, x *extras[*CSVRow], u *DesiredUser) {
	*u = DesiredUser{}
	u.Email = r.str()
	flags := r.byte()
	u.Active, u.Notified, u.Disabled = flags&flagA != 0, flags&flagB != 0, flags&flagC != 0
	u.ID = int64(r.int())
	u.UserID, u.FirstName, u.LastName, u.Tracking, u.EntryKey = r.str(), r.str(), r.str(), account.Tracking(r.str()), r.str()
	u.Language, u.HostPrivilege, u.TimeZone = r.sym(), r.sym(), r.sym()
	u.Origin, u.License, u.SyncTag = r.sym(), r.sym(), r.sym()
	if flags&flagExtra != 0 {
		u.CSV = x.get(r.uv())
	}
}
