// Package policy answers Pexip Infinity's external policy requests (PEXIP.md §2, SPEC §8)
// from an in-memory index of roster's state: the room behind a dialled alias (service
// configuration) and a registering device's credentials.
//
// The index is an immutable Snapshot, made by a Builder from plain Room and Device values
// and published in an Index with one atomic pointer store: a request reads one snapshot
// from start to end, so it never sees half of an apply, and a build running in the
// background never blocks it. Server is the http.Handler; Listen opens its listener
// (TLS, or plain HTTP on loopback only).
//
// In `roster serve` the answers come from a process of their own (answerer.go), so that
// the reconciler's heap, collections and CPU never delay one: the daemon's Supervisor
// (supervisor.go) starts it, hands it the listener, writes each snapshot to a file
// (snapfile.go) that the process maps read-only and swaps in, and reads its Counters
// from a file both map shared.
//
// Memory: 400,000 rooms must fit comfortably, so a snapshot holds no Go object per room.
// Every record lives in one string (the arena) as length-prefixed fields and varints,
// and the alias index is an open-addressing table of uint64 entries (32 bits of the
// alias's hash beside the record's arena offset, so that a probe touches the arena only
// when the hash matches). Neither holds a pointer: the garbage collector never scans
// them.
package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Room is a Virtual Meeting Room as the policy answer needs it.
type Room struct {
	Name        string
	ServiceTag  string // roster's tag column
	Description string
	PIN         string
	GuestPIN    string
	AllowGuests bool
	// MaxCallrateIn and MaxCallrateOut are in kbps, as stored; 0 means no limit.
	MaxCallrateIn, MaxCallrateOut int
	// ParticipantLimit 0 means no limit (roster's state stores unset as 0).
	ParticipantLimit int
	OwnerEmail       string // primary owner's e-mail address
	Aliases          []string
	// Enabled false (a disabled or deleted room) keeps the room out of the index.
	Enabled bool
}

// Device is a device registration: the alias it registers with and its credentials.
type Device struct {
	Alias    string
	Username string
	Password string
	Enabled  bool
}

var errFinished = errors.New("build policy snapshot: builder already finished")

// maxArena bounds the arena so that every offset+1 fits the low half of a table entry.
const maxArena = math.MaxUint32 - 1

// Builder collects rooms and devices into a new Snapshot. It is not safe for concurrent
// use; a Snapshot it finishes is.
type Builder struct {
	version     string
	started     time.Time
	arena       strings.Builder
	rooms       []uint32 // record offsets
	devices     []uint32
	roomAliases int
	tagIndex    map[string]int
	tags        []string
	rec         []byte // the record being encoded
	err         error
}

// NewBuilder starts a snapshot labelled version (shown by Status; e.g. the applied commit).
func NewBuilder(version string) *Builder {
	return &Builder{version: version, started: time.Now(), tagIndex: map[string]int{}}
}

// Grow reserves n bytes of arena, saving the copies of a growing one: pass the current
// snapshot's Stats().Bytes when rebuilding an estate of about the same size.
func (b *Builder) Grow(n int) {
	if b.err == nil && n > 0 && n <= maxArena {
		b.arena.Grow(n)
	}
}

// Build makes a snapshot of rooms and devices in one call.
func Build(version string, rooms []Room, devices []Device) (*Snapshot, error) {
	b := NewBuilder(version)
	size := 0 // the arena's size, give or take the varints: one allocation, no copies
	for i := range rooms {
		r := &rooms[i]
		size += len(r.Name) + len(r.Description) + len(r.PIN) + len(r.GuestPIN) + len(r.OwnerEmail) + 16
		for _, a := range r.Aliases {
			size += len(a) + 1
		}
	}
	for i := range devices {
		size += len(devices[i].Alias) + len(devices[i].Username) + len(devices[i].Password) + 4
	}
	b.Grow(size)
	for i := range rooms {
		b.AddRoom(&rooms[i])
	}
	for i := range devices {
		b.AddDevice(&devices[i])
	}
	return b.Finish()
}

// Record layouts (all integers uvarint, all strings uvarint length + bytes). Both kinds
// start with their aliases so that the lookup reads the same prefix:
//
//	room:   nAliases, aliases…, name, tag index, description, pin, guest_pin, owner,
//	        allow_guests (0/1), max_callrate_in, max_callrate_out, participant_limit
//	device: 1, alias, username, password

// AddRoom adds r unless it is disabled or has no alias.
func (b *Builder) AddRoom(r *Room) {
	if !r.Enabled || b.err != nil {
		return
	}
	rec := b.rec[:0]
	rec, n := appendAliases(rec, r.Aliases)
	if n == 0 {
		return
	}
	rec = appendString(rec, r.Name)
	rec = binary.AppendUvarint(rec, uint64(b.tag(r.ServiceTag)))
	for _, s := range [...]string{r.Description, r.PIN, r.GuestPIN, r.OwnerEmail} {
		rec = appendString(rec, s)
	}
	guests := uint64(0)
	if r.AllowGuests {
		guests = 1
	}
	for _, v := range [...]uint64{guests, nonNegative(r.MaxCallrateIn), nonNegative(r.MaxCallrateOut), nonNegative(r.ParticipantLimit)} {
		rec = binary.AppendUvarint(rec, v)
	}
	if off, ok := b.write(rec); ok {
		b.rooms = append(b.rooms, off)
		b.roomAliases += n
	}
}

// AddDevice adds d unless it is disabled or its alias is empty.
func (b *Builder) AddDevice(d *Device) {
	if !d.Enabled || b.err != nil {
		return
	}
	rec, n := appendAliases(b.rec[:0], []string{d.Alias})
	if n == 0 {
		return
	}
	rec = appendString(rec, d.Username)
	rec = appendString(rec, d.Password)
	if off, ok := b.write(rec); ok {
		b.devices = append(b.devices, off)
	}
}

// appendAliases appends the count and the distinct non-empty normalized aliases.
func appendAliases(rec []byte, aliases []string) ([]byte, int) {
	var seen [8]string // a room has at most 8 aliases (SPEC §3); more only cost a rescan
	norms := seen[:0]
	for _, a := range aliases {
		if n := normalizeAlias(a); n != "" && !slices.Contains(norms, n) {
			norms = append(norms, n)
		}
	}
	rec = binary.AppendUvarint(rec, uint64(len(norms)))
	for _, n := range norms {
		rec = appendString(rec, n)
	}
	return rec, len(norms)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func nonNegative(v int) uint64 { return uint64(max(v, 0)) }

// tag interns a service tag: an estate has a handful (one per template), not one per room.
func (b *Builder) tag(t string) int {
	i, ok := b.tagIndex[t]
	if !ok {
		i = len(b.tags)
		b.tagIndex[t] = i
		b.tags = append(b.tags, t)
	}
	return i
}

func (b *Builder) write(rec []byte) (uint32, bool) {
	b.rec = rec
	off := b.arena.Len()
	if off+len(rec) > maxArena {
		b.err = fmt.Errorf("build policy snapshot: more than %d bytes of rooms and devices", maxArena)
		return 0, false
	}
	// strings.Builder.Grow doubles (append grows large slices by only 1.25×, copying
	// a 100 MB arena many times over).
	b.arena.Grow(len(rec))
	b.arena.Write(rec)
	return uint32(off), true
}

// Finish makes the snapshot. The builder must not be used afterwards.
func (b *Builder) Finish() (*Snapshot, error) {
	if b.err != nil {
		return nil, b.err
	}
	arena := b.arena.String()
	if b.arena.Cap()-len(arena) > len(arena)/8 {
		arena = strings.Clone(arena) // drop the slack of a doubled buffer: one copy
	}
	s := &Snapshot{
		version: b.version,
		seed:    rand.Uint64(),
		arena:   arena,
		tags:    b.tags,
		rooms:   len(b.rooms), devices: len(b.devices), roomAliases: b.roomAliases,
	}
	s.roomTable, s.collisions = s.makeTable(b.rooms, b.roomAliases)
	var devCollisions int
	s.deviceTable, devCollisions = s.makeTable(b.devices, len(b.devices))
	s.collisions += devCollisions
	s.builtAt = time.Now()
	s.buildDuration = s.builtAt.Sub(b.started)
	*b = Builder{err: errFinished}
	return s, nil
}

// Snapshot is an immutable index of rooms and devices by alias.
type Snapshot struct {
	version       string
	builtAt       time.Time
	buildDuration time.Duration
	seed          uint64 // of hashAlias; written to a snapshot file with the tables it placed
	arena         string
	tags          []string
	// roomTable and deviceTable hold an entry per alias: the high 32 bits of the folded
	// alias's hash, then the record's arena offset+1; 0 is an empty slot. Linear probing
	// at load at most 2/3: a miss ends after about five probes, none touching the arena
	// but for a 1-in-4-billion hash coincidence.
	roomTable, deviceTable []uint64
	rooms, devices         int
	roomAliases            int
	collisions             int
	// refs counts the holders of a mapped snapshot (the Index while it is current, and
	// each request reading it); the last one to let go unmaps it. Nil for a snapshot on
	// the Go heap, which the collector frees.
	refs *refCount
}

// makeTable indexes every alias of the records at offs.
func (s *Snapshot) makeTable(offs []uint32, aliases int) (table []uint64, collisions int) {
	table = make([]uint64, aliases+aliases/2+1) // always one empty slot: probes end
	for _, off := range offs {
		r := reader{s: s.arena, i: int(off)}
		for n := r.uvarint(); n > 0; n-- {
			folded := foldAlias(r.str())
			i, tag := s.slot(folded, len(table))
			counted := false
			for ; table[i] != 0; i = next(i, len(table)) {
				e := table[i]
				if other := uint32(e) - 1; !counted && e&tagMask == tag && other != off && s.holds(other, folded) {
					collisions++
					counted = true
				}
			}
			table[i] = tag | uint64(off+1)
		}
	}
	return table, collisions
}

const tagMask = math.MaxUint32 << 32

// slot hashes a folded alias to its first slot (from the low 32 bits) and its tag (the
// high 32 bits, in place).
func (s *Snapshot) slot(folded string, n int) (int, uint64) {
	h := hashAlias(s.seed, folded)
	return int((h & math.MaxUint32) * uint64(n) >> 32), h & tagMask
}

func next(i, n int) int {
	if i++; i == n {
		return 0
	}
	return i
}

// holds reports whether the record at off has an alias folding to folded.
func (s *Snapshot) holds(off uint32, folded string) bool {
	r := reader{s: s.arena, i: int(off)}
	for n := r.uvarint(); n > 0; n-- {
		if equalFolded(r.str(), folded) {
			return true
		}
	}
	return false
}

// match returns the offset of the record answering alias in table: the one whose alias
// equals the normalized alias exactly, else the only one equal to it ignoring case (see
// alias.go). Several candidates and no single exact one: no answer.
func (s *Snapshot) match(table []uint64, alias string) (uint32, bool) {
	norm := normalizeAlias(alias)
	if norm == "" || len(table) == 0 {
		return 0, false
	}
	folded := foldAlias(norm)
	const none = math.MaxUint32
	exact, fold := uint32(none), uint32(none)
	exactMany, foldMany := false, false
	i, tag := s.slot(folded, len(table))
	for ; table[i] != 0; i = next(i, len(table)) {
		if table[i]&tagMask != tag {
			continue
		}
		off := uint32(table[i]) - 1
		r := reader{s: s.arena, i: int(off)}
		for n := r.uvarint(); n > 0; n-- {
			a := r.str()
			if !equalFolded(a, folded) {
				continue
			}
			if a == norm {
				exactMany = exactMany || (exact != none && exact != off)
				exact = off
			}
			foldMany = foldMany || (fold != none && fold != off)
			fold = off
		}
	}
	switch {
	case exact != none:
		return exact, !exactMany
	case fold != none:
		return fold, !foldMany
	}
	return 0, false
}

// LookupRoom returns the enabled room that answers alias (its Aliases normalized).
func (s *Snapshot) LookupRoom(alias string) (Room, bool) {
	off, ok := s.match(s.roomTable, alias)
	if !ok {
		return Room{}, false
	}
	return s.roomAt(off, true), true
}

// LookupDevice returns the enabled device registering as alias (Alias normalized).
func (s *Snapshot) LookupDevice(alias string) (Device, bool) {
	off, ok := s.match(s.deviceTable, alias)
	if !ok {
		return Device{}, false
	}
	return s.deviceAt(off), true
}

// roomAt decodes a room record. Its strings share the arena: no copy, and no allocation
// unless withAliases.
func (s *Snapshot) roomAt(off uint32, withAliases bool) Room {
	r := reader{s: s.arena, i: int(off)}
	var room Room
	for n := r.uvarint(); n > 0; n-- {
		a := r.str()
		if withAliases {
			room.Aliases = append(room.Aliases, a)
		}
	}
	room.Name = r.str()
	room.ServiceTag = s.tags[r.uvarint()]
	room.Description, room.PIN, room.GuestPIN, room.OwnerEmail = r.str(), r.str(), r.str(), r.str()
	room.AllowGuests = r.uvarint() == 1
	room.MaxCallrateIn, room.MaxCallrateOut, room.ParticipantLimit = r.int(), r.int(), r.int()
	room.Enabled = true
	return room
}

func (s *Snapshot) deviceAt(off uint32) Device {
	r := reader{s: s.arena, i: int(off)}
	r.uvarint() // 1
	return Device{Alias: r.str(), Username: r.str(), Password: r.str(), Enabled: true}
}

// reader decodes a record of the arena. The arena is written only by Builder, so a
// malformed record is a bug: it panics (index out of range) rather than answer garbage.
type reader struct {
	s string
	i int
}

func (r *reader) uvarint() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := r.s[r.i]
		r.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (r *reader) int() int { return int(min(r.uvarint(), math.MaxInt)) }

func (r *reader) str() string {
	n := int(r.uvarint())
	s := r.s[r.i : r.i+n]
	r.i += n
	return s
}

// SnapshotStats describes a snapshot for the status page.
type SnapshotStats struct {
	Version       string        `json:"version"`
	BuiltAt       time.Time     `json:"built_at"`
	BuildDuration time.Duration `json:"build_duration_ns"`
	Rooms         int           `json:"rooms"`
	RoomAliases   int           `json:"room_aliases"`
	Devices       int           `json:"devices"`
	// CaseCollisions counts aliases that fold to the same key as another object's alias
	// (they differ only in letter case); a dialled form matching neither exactly gets
	// policy_unknown.
	CaseCollisions int `json:"case_collisions"`
	// Bytes is the snapshot's own memory: arena and tables.
	Bytes int `json:"bytes"`
}

// Stats describes the snapshot.
func (s *Snapshot) Stats() SnapshotStats {
	bytes := len(s.arena) + 8*(len(s.roomTable)+len(s.deviceTable))
	for _, t := range s.tags {
		bytes += len(t) + 16
	}
	return SnapshotStats{
		Version: s.version, BuiltAt: s.builtAt, BuildDuration: s.buildDuration,
		Rooms: s.rooms, RoomAliases: s.roomAliases, Devices: s.devices,
		CaseCollisions: s.collisions, Bytes: bytes,
	}
}

// Index holds the current snapshot. Publishing is one atomic store: readers never wait.
// The zero Index holds no snapshot (Server then answers 503: Pexip falls back).
type Index struct {
	cur atomic.Pointer[Snapshot]
}

// Load returns the current snapshot, or nil before the first Swap. Reading a mapped
// snapshot's records needs Acquire; its Stats need nothing.
func (x *Index) Load() *Snapshot { return x.cur.Load() }

// Acquire returns the current snapshot (nil before the first Swap) and the function that
// lets go of it: a mapped snapshot stays mapped until every request that acquired it
// has let go, however many swaps happen meanwhile.
func (x *Index) Acquire() (*Snapshot, func()) {
	for {
		s := x.cur.Load()
		if s == nil || s.refs == nil {
			return s, func() {}
		}
		if s.refs.acquire() {
			return s, s.refs.release
		}
		// Swapped out and released between the Load and the acquire: take the new one.
	}
}

// Swap publishes s and returns the snapshot it replaces. Requests already running finish
// on the old one. The Index holds a reference to a mapped snapshot while it is current:
// the one replaced is unmapped once its last request is answered (do not read its
// records after Swap without Acquire).
func (x *Index) Swap(s *Snapshot) *Snapshot {
	old := x.cur.Swap(s)
	if old != nil && old.refs != nil {
		old.refs.release()
	}
	return old
}

// refCount counts the holders of a mapped snapshot. Once it reaches zero it never rises
// again (acquire refuses), and free runs exactly once.
type refCount struct {
	n    atomic.Int64
	free func()
}

func newRefCount(free func()) *refCount {
	r := &refCount{free: free}
	r.n.Store(1) // the Index's, or the opener's until Swap
	return r
}

func (r *refCount) acquire() bool {
	for {
		n := r.n.Load()
		if n <= 0 {
			return false
		}
		if r.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (r *refCount) release() {
	if r.n.Add(-1) == 0 {
		r.free()
	}
}
