package reconcile

import (
	"fmt"
	"iter"
	"maps"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

// The packed lists must give back exactly what was added: every field, the extras by
// identity (the same maps and CSV rows, not copies), across chunks and records larger
// than a chunk, and after lists are appended to each other.

// packed is what the three lists have in common.
type packed[T any] interface {
	Add(*T) int
	At(int) *T
	Key(int) string
	Len() int
	All() iter.Seq2[int, *T]
	rec(int) string
}

// listOps is one list type as the tests drive it.
type listOps[T any, L packed[T]] struct {
	name    string
	newList func() L
	gen     func(g *gen, extras bool) *T
	key     func(*T) string
	norm    func(*T) *T          // a copy as At gives it back (no aliases: nil)
	ident   func(a, b *T) string // "" when the extras are the same objects
	extras  func(*T) bool        // whether the object has an extras part
	nExtras func(L) int          // extras the list holds
	appendL func(l, m L)
	// every field of T, set and unset (a field the generator leaves out fails the test)
	fieldsOf func(*T) any
}

// gen makes random desired objects. With long set, a few strings are over a chunk long.
type gen struct {
	rng   *rand.Rand
	big   string // random bytes, longer than two chunks, for long strings
	long  int    // one string in long is over a chunk (0: never)
	small bool   // no strings over 200 bytes
	// the last extras given, to give them again (the lists share a run of equal extras)
	overridable map[string]bool
	overrides   map[string]string
	csv         *CSVRow
}

func newGen(seed int64, long int) *gen {
	g := &gen{rng: rand.New(rand.NewSource(seed)), long: long}
	b := make([]byte, 2*packChunk+4096)
	g.rng.Read(b)
	g.big = string(b)
	return g
}

var genRunes = []rune{'a', 'Z', '0', ' ', 'é', 'ß', '漢', '字', '🙂', '\u0000', '\u200b', '\uffff', '\n', '"', '\\'}

// str is a random string: empty, short, unicode, invalid UTF-8, at a uvarint length
// boundary, or (1 in g.long) longer than a chunk.
func (g *gen) str() string {
	if g.long > 0 && g.rng.Intn(g.long) == 0 {
		return g.longStr()
	}
	switch g.rng.Intn(10) {
	case 0, 1:
		return ""
	case 2:
		return "\xff\xfe\x80" + fmt.Sprint(g.rng.Intn(100)) // not UTF-8
	case 3:
		n := []int{127, 128, 129, 16383, 16384}[g.rng.Intn(5)]
		if g.small {
			n = 127 + n%3
		}
		return strings.Repeat(string(rune('a'+g.rng.Intn(26))), n)
	case 4, 5:
		var b strings.Builder
		for range 1 + g.rng.Intn(20) {
			b.WriteRune(genRunes[g.rng.Intn(len(genRunes))])
		}
		return b.String()
	default:
		b := make([]byte, 1+g.rng.Intn(40))
		for i := range b {
			b[i] = byte('!' + g.rng.Intn(94))
		}
		return string(b)
	}
}

// longStr is a string longer than a chunk (or just under one).
func (g *gen) longStr() string {
	n := packChunk - 50 + g.rng.Intn(packChunk/2)
	off := g.rng.Intn(len(g.big) - n)
	return g.big[off : off+n]
}

func (g *gen) int64() int64 {
	switch g.rng.Intn(8) {
	case 0:
		return 0
	case 1:
		return []int64{1, -1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64}[g.rng.Intn(8)]
	case 2, 3:
		return -g.rng.Int63()
	case 4:
		return int64(g.rng.Intn(1000)) - 500
	default:
		return g.rng.Int63()
	}
}

func (g *gen) int() int { return int(g.int64()) }

func (g *gen) bool() bool { return g.rng.Intn(2) == 0 }

func (g *gen) aliases() []string {
	switch g.rng.Intn(5) {
	case 0:
		return nil
	case 1:
		return []string{}
	case 2:
		return []string{g.str()}
	default:
		as := make([]string, 2+g.rng.Intn(6))
		for i := range as {
			as[i] = g.str()
		}
		return as
	}
}

// maps gives an object's overridable fields and overrides: none, empty, new ones, or
// the last ones again.
func (g *gen) maps() (map[string]bool, map[string]string) {
	switch g.rng.Intn(6) {
	case 0:
		g.overridable = nil
	case 1:
		g.overridable = map[string]bool{}
	case 2:
		g.overridable = map[string]bool{"pin": g.bool(), g.str(): true}
	case 3: // equal to the last ones, not the same
		g.overridable = maps.Clone(g.overridable)
	} // else the last ones again
	switch g.rng.Intn(6) {
	case 0, 1:
		g.overrides = nil
	case 2:
		g.overrides = map[string]string{}
	case 3:
		g.overrides = map[string]string{"pin": g.str(), g.str(): g.str()}
	case 4:
		g.overrides = maps.Clone(g.overrides)
	}
	return g.overridable, g.overrides
}

func (g *gen) csvRow() *CSVRow {
	switch g.rng.Intn(5) {
	case 0:
		g.csv = nil
	case 1:
		g.csv = &CSVRow{Pos: schema.Pos{Path: g.str(), Line: g.int(), Col: g.int()}, GivenUserID: g.str()}
	case 2: // equal to the last one, not the same
		if g.csv != nil {
			c := *g.csv
			g.csv = &c
		}
	} // else the last one again
	return g.csv
}

func (g *gen) vmr(extras bool) *DesiredVMR {
	v := &DesiredVMR{VMR: account.VMR{
		ID: g.int64(), Name: g.str(), Description: g.str(), Aliases: g.aliases(), PIN: g.str(), GuestPIN: g.str(),
		AllowGuests: g.bool(), MaxCallrateIn: g.int(), MaxCallrateOut: g.int(), ParticipantLimit: g.int(),
		Tag: g.str(), OwnerEmail: g.str(), SyncTag: g.str(), EntryKey: g.str(),
	}}
	if extras {
		v.Overridable, v.Overrides = g.maps()
	}
	return v
}

func (g *gen) device(extras bool) *DesiredDevice {
	d := &DesiredDevice{Device: account.Device{
		ID: g.int64(), Alias: g.str(), Description: g.str(), Username: g.str(), Password: g.str(),
		Tag: g.str(), OwnerEmail: g.str(), SyncTag: g.str(), EntryKey: g.str(),
	}, Disabled: g.bool()}
	if extras {
		d.Overridable, d.Overrides = g.maps()
	}
	return d
}

func (g *gen) user(extras bool) *DesiredUser {
	tr := account.Tracking(g.str())
	if g.bool() {
		tr = account.MakeTracking([10]string{g.str(), "", g.str()})
	}
	u := &DesiredUser{User: account.User{
		ID: g.int64(), UserID: g.str(), Email: g.str(), FirstName: g.str(), LastName: g.str(), Language: g.str(),
		HostPrivilege: g.str(), TimeZone: g.str(), Tracking: tr, Active: g.bool(), Origin: g.str(),
		License: g.str(), SyncTag: g.str(), EntryKey: g.str(), Notified: g.bool(),
	}, Disabled: g.bool()}
	if extras {
		u.CSV = g.csvRow()
	}
	return u
}

func ptrOf(m any) uintptr {
	if reflect.ValueOf(m).IsNil() {
		return 0
	}
	return uintptr(reflect.ValueOf(m).UnsafePointer())
}

func vmrOps() listOps[DesiredVMR, *VMRList] {
	return listOps[DesiredVMR, *VMRList]{
		name:    "vmr",
		newList: func() *VMRList { return &VMRList{} },
		gen:     (*gen).vmr,
		key:     func(v *DesiredVMR) string { return v.Name },
		norm: func(v *DesiredVMR) *DesiredVMR {
			c := *v
			c.Aliases = nil
			if len(v.Aliases) > 0 {
				c.Aliases = append([]string(nil), v.Aliases...)
			}
			return &c
		},
		ident: func(a, b *DesiredVMR) string {
			if ptrOf(a.Overridable) != ptrOf(b.Overridable) || ptrOf(a.Overrides) != ptrOf(b.Overrides) {
				return fmt.Sprintf("maps are not the ones added: overridable %#x, want %#x; overrides %#x, want %#x",
					ptrOf(a.Overridable), ptrOf(b.Overridable), ptrOf(a.Overrides), ptrOf(b.Overrides))
			}
			return ""
		},
		extras:   func(v *DesiredVMR) bool { return v.Overridable != nil || v.Overrides != nil },
		nExtras:  func(l *VMRList) int { return len(l.x.list) },
		appendL:  (*VMRList).appendList,
		fieldsOf: func(v *DesiredVMR) any { return v },
	}
}

func deviceOps() listOps[DesiredDevice, *DeviceList] {
	return listOps[DesiredDevice, *DeviceList]{
		name:    "device",
		newList: func() *DeviceList { return &DeviceList{} },
		gen:     (*gen).device,
		key:     func(d *DesiredDevice) string { return d.Alias },
		norm:    func(d *DesiredDevice) *DesiredDevice { c := *d; return &c },
		ident: func(a, b *DesiredDevice) string {
			if ptrOf(a.Overridable) != ptrOf(b.Overridable) || ptrOf(a.Overrides) != ptrOf(b.Overrides) {
				return fmt.Sprintf("maps are not the ones added: overridable %#x, want %#x; overrides %#x, want %#x",
					ptrOf(a.Overridable), ptrOf(b.Overridable), ptrOf(a.Overrides), ptrOf(b.Overrides))
			}
			return ""
		},
		extras:   func(d *DesiredDevice) bool { return d.Overridable != nil || d.Overrides != nil },
		nExtras:  func(l *DeviceList) int { return len(l.x.list) },
		appendL:  (*DeviceList).appendList,
		fieldsOf: func(d *DesiredDevice) any { return d },
	}
}

func userOps() listOps[DesiredUser, *UserList] {
	return listOps[DesiredUser, *UserList]{
		name:    "user",
		newList: func() *UserList { return &UserList{} },
		gen:     (*gen).user,
		key:     func(u *DesiredUser) string { return u.Email },
		norm:    func(u *DesiredUser) *DesiredUser { c := *u; return &c },
		ident: func(a, b *DesiredUser) string {
			if a.CSV != b.CSV {
				return fmt.Sprintf("CSV row is not the one added: %p, want %p", a.CSV, b.CSV)
			}
			return ""
		},
		extras:   func(u *DesiredUser) bool { return u.CSV != nil },
		nExtras:  func(l *UserList) int { return len(l.x.list) },
		appendL:  (*UserList).appendList,
		fieldsOf: func(u *DesiredUser) any { return u },
	}
}

// shortValue shows a value, long strings cut.
func shortValue(v reflect.Value) string {
	s := fmt.Sprintf("%#v", v.Interface())
	if len(s) > 80 {
		s = fmt.Sprintf("%s…(%d bytes)", strings.ToValidUTF8(s[:80], ""), len(s))
	}
	return s
}

// fieldDiff names the fields that differ between two structs of one type.
func fieldDiff(a, b any) string {
	var out []string
	var walk func(path string, x, y reflect.Value)
	walk = func(path string, x, y reflect.Value) {
		if x.Kind() == reflect.Struct {
			for i := range x.NumField() {
				walk(path+"."+x.Type().Field(i).Name, x.Field(i), y.Field(i))
			}
			return
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, fmt.Sprintf("%s: got %s, want %s", path, shortValue(x), shortValue(y)))
		}
	}
	walk("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return strings.Join(out, "; ")
}

// check compares what l gives back with want (the objects added, in order).
func (ops listOps[T, L]) check(t *testing.T, what string, l L, want []*T) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", what, l.Len(), len(want))
	}
	bad := 0
	for i, w := range want {
		got := l.At(i)
		if msg := ops.same(got, w); msg != "" {
			t.Errorf("%s: At(%d): %s", what, i, msg)
			bad++
		}
		if k := l.Key(i); k != ops.key(w) {
			t.Errorf("%s: Key(%d) = %s, want %s", what, i, shortValue(reflect.ValueOf(k)), shortValue(reflect.ValueOf(ops.key(w))))
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many errors", what)
		}
	}
	n := 0
	for i, got := range l.All() {
		if i != n {
			t.Fatalf("%s: All yields index %d at %d", what, i, n)
		}
		if msg := ops.same(got, want[i]); msg != "" {
			t.Fatalf("%s: All at %d: %s", what, i, msg)
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("%s: All yields %d, want %d", what, n, len(want))
	}
}

// same is "" when got is exactly w as added (aliases: none is nil), extras by identity.
func (ops listOps[T, L]) same(got, w *T) string {
	want := ops.norm(w)
	if !reflect.DeepEqual(got, want) {
		d := fieldDiff(got, want)
		if d == "" {
			d = "differ (no field named)"
		}
		return d
	}
	return ops.ident(got, w)
}

// fill adds n random objects; every long-th index has a string over a chunk.
func (ops listOps[T, L]) fill(g *gen, l L, n int, extras bool) []*T {
	want := make([]*T, n)
	for i := range want {
		want[i] = ops.gen(g, extras)
		if k := l.Add(want[i]); k != l.Len()-1 {
			panic(fmt.Sprintf("Add returned %d, want %d", k, l.Len()-1))
		}
	}
	return want
}

// coverage fails unless each field of the objects is seen both zero and non-zero (and
// each integer negative): a field the tests never set could be lost unseen.
func coverage[T any](t *testing.T, objs []*T, fieldsOf func(*T) any) {
	t.Helper()
	type seen struct{ zero, set, isInt, neg bool }
	cov := map[string]*seen{}
	var order []string
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		if v.Kind() == reflect.Struct {
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		}
		s := cov[path]
		if s == nil {
			s = &seen{}
			cov[path] = s
			order = append(order, path)
		}
		if v.IsZero() {
			s.zero = true
		} else {
			s.set = true
		}
		if v.CanInt() {
			s.isInt = true
			s.neg = s.neg || v.Int() < 0
		}
	}
	for _, o := range objs {
		walk("", reflect.ValueOf(fieldsOf(o)).Elem())
	}
	for _, p := range order {
		s := cov[p]
		if !s.zero || !s.set {
			t.Errorf("field %s never seen both zero and set (zero %v, set %v)", p, s.zero, s.set)
		}
		if s.isInt && !s.neg {
			t.Errorf("field %s never negative", p)
		}
	}
}

func TestPackRoundTripRandom(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testRoundTrip(t, vmrOps(), seed)
			testRoundTrip(t, deviceOps(), seed)
			testRoundTrip(t, userOps(), seed)
		})
	}
}

func testRoundTrip[T any, L packed[T]](t *testing.T, ops listOps[T, L], seed int64) {
	t.Run(ops.name, func(t *testing.T) {
		g := newGen(seed, 2000)
		l := ops.newList()
		want := ops.fill(g, l, 3000, true)
		coverage(t, want, ops.fieldsOf)
		ops.check(t, "random", l, want)
		var big, withExtras int
		for i, w := range want {
			if len(l.rec(i)) > packChunk {
				big++
			}
			if ops.extras(w) {
				withExtras++
			}
		}
		if big < 2 || withExtras == 0 || withExtras == len(want) {
			t.Fatalf("the test must cover records over a chunk (%d) and objects with and without extras (%d of %d)",
				big, withExtras, len(want))
		}
		// All stops when told.
		for _, stop := range []int{0, 1, len(want) / 2, len(want) - 1} {
			n := 0
			for i := range l.All() {
				n++
				if i == stop {
					break
				}
			}
			if n != stop+1 {
				t.Errorf("All yielded %d after a break at %d", n, stop)
			}
		}
		// An empty list.
		e := ops.newList()
		ops.check(t, "empty", e, nil)
	})
}

// A record of a chunk's size or so, wherever the chunk stands: just fits, just does not.
func TestPackChunkBoundaries(t *testing.T) {
	for _, first := range []int{0, 1, 100, packChunk / 2, packChunk - 200} {
		fits, not := 0, 0
		for d := -12; d <= 12; d++ {
			l := &DeviceList{}
			a := &DesiredDevice{Device: account.Device{Alias: "a", Description: strings.Repeat("x", first)}}
			l.Add(a)
			free := packChunk - len(l.chunks[0])
			// the record for a description of n bytes is n + overhead bytes long, plus its length prefix
			b := &DesiredDevice{Device: account.Device{Alias: "b"}}
			overhead := len(b.Alias) + 1 + 1 + 1 + 7 // alias and its length, flags, id, seven empty strings
			n := max(0, free+d-overhead-4)
			b.Description = strings.Repeat("y", n)
			c := &DesiredDevice{Device: account.Device{Alias: "c", Password: "p"}}
			l.Add(b)
			if len(l.chunks) == 1 {
				fits++
			} else {
				not++
			}
			l.Add(c)
			ops := deviceOps()
			ops.check(t, fmt.Sprintf("first %d, d %d", first, d), l, []*DesiredDevice{a, b, c})
		}
		if fits == 0 || not == 0 {
			t.Errorf("first %d: the second record must fit its chunk in some cases (%d) and not in others (%d)", first, fits, not)
		}
	}
}

func TestPackTable(t *testing.T) {
	ovr := map[string]bool{"pin": true, "description": false}
	ovr2 := maps.Clone(ovr) // equal, not the same
	ovs := map[string]string{"pin": "4321"}
	long := strings.Repeat("ü", packChunk) // 2 MiB
	vmrs := []*DesiredVMR{
		{},
		{VMR: account.VMR{ID: -1, Name: "a", Description: "d", Aliases: []string{"x"}, PIN: "1", GuestPIN: "2",
			AllowGuests: true, MaxCallrateIn: -5, MaxCallrateOut: math.MaxInt, ParticipantLimit: math.MinInt,
			Tag: "t", OwnerEmail: "o@x", SyncTag: "s", EntryKey: "e"}},
		{VMR: account.VMR{Name: "empty aliases", Aliases: []string{}}},
		{VMR: account.VMR{Name: "aliases", Aliases: []string{"", "漢字", "🙂", ""}}},
		{VMR: account.VMR{Name: long, Aliases: []string{long}, PIN: long}},
		{VMR: account.VMR{ID: math.MinInt64, Name: "ovr"}, Overridable: ovr},
		{VMR: account.VMR{ID: math.MaxInt64, Name: "same ovr"}, Overridable: ovr},
		{VMR: account.VMR{Name: "ovr and ovs"}, Overridable: ovr, Overrides: ovs},
		{VMR: account.VMR{Name: "ovs only"}, Overrides: ovs},
		{VMR: account.VMR{Name: "empty maps"}, Overridable: map[string]bool{}, Overrides: map[string]string{}},
		{VMR: account.VMR{Name: "equal ovr"}, Overridable: ovr2},
		{VMR: account.VMR{Name: "none after"}},
		{VMR: account.VMR{Name: "ovr again"}, Overridable: ovr},
	}
	csv := &CSVRow{Pos: schema.Pos{Path: "users/a.csv", Line: 3, Col: -1}, GivenUserID: "42"}
	devices := []*DesiredDevice{
		{},
		{Device: account.Device{ID: -7, Alias: "a", Description: "d", Username: "u", Password: "p", Tag: "t",
			OwnerEmail: "o", SyncTag: "s", EntryKey: "e"}, Disabled: true},
		{Device: account.Device{Alias: "\x00\xff", Password: long}, Overridable: ovr},
		{Device: account.Device{Alias: "same"}, Overridable: ovr},
		{Device: account.Device{Alias: "equal"}, Overridable: ovr2},
		{Device: account.Device{Alias: "ovs"}, Overrides: ovs, Disabled: true},
		{Device: account.Device{Alias: "empty"}, Overridable: map[string]bool{}},
	}
	users := []*DesiredUser{
		{},
		{User: account.User{ID: -9, UserID: "u", Email: "e", FirstName: "f", LastName: "l", Language: "la",
			HostPrivilege: "h", TimeZone: "tz", Tracking: account.MakeTracking([10]string{"a", "", "c"}), Active: true,
			Origin: "local", License: "paid", SyncTag: "s", EntryKey: "k", Notified: true}, Disabled: true, CSV: csv},
		{User: account.User{Email: "same csv", Notified: true}, CSV: csv},
		{User: account.User{Email: "equal csv"}, CSV: &CSVRow{Pos: csv.Pos, GivenUserID: csv.GivenUserID}},
		{User: account.User{Email: "disabled only"}, Disabled: true},
		{User: account.User{Email: "active only", Active: true}},
		{User: account.User{Email: long, LastName: long}, CSV: &CSVRow{}},
		{User: account.User{Email: "csv again"}, CSV: csv},
	}
	tableCheck(t, vmrOps(), vmrs)
	tableCheck(t, deviceOps(), devices)
	tableCheck(t, userOps(), users)
}

// tableCheck adds each object alone to a list, then all to one list.
func tableCheck[T any, L packed[T]](t *testing.T, ops listOps[T, L], objs []*T) {
	t.Run(ops.name, func(t *testing.T) {
		for i, o := range objs {
			l := ops.newList()
			if k := l.Add(o); k != 0 {
				t.Errorf("Add to an empty list returned %d", k)
			}
			ops.check(t, fmt.Sprintf("alone %d", i), l, []*T{o})
		}
		l := ops.newList()
		for i, o := range objs {
			if k := l.Add(o); k != i {
				t.Errorf("Add returned %d, want %d", k, i)
			}
		}
		ops.check(t, "all", l, objs)
	})
}

// Strings decoded early point into chunks later Adds append to: they must stay intact.
func TestPackDecodedStringsSurviveAdds(t *testing.T) {
	testSurvive(t, vmrOps())
	testSurvive(t, deviceOps())
	testSurvive(t, userOps())
}

func testSurvive[T any, L packed[T]](t *testing.T, ops listOps[T, L]) {
	t.Run(ops.name, func(t *testing.T) {
		g := newGen(11, 0)
		l := ops.newList()
		want := ops.fill(g, l, 500, true)
		kept := make([]*T, len(want))
		keys := make([]string, len(want))
		for i := range want {
			kept[i], keys[i] = l.At(i), l.Key(i)
		}
		g.long = 300
		more := ops.fill(g, l, 5000, true) // several chunks, some records over one
		for i, w := range want {
			if msg := ops.same(kept[i], w); msg != "" {
				t.Fatalf("object %d decoded before more adds: %s", i, msg)
			}
			if keys[i] != ops.key(w) {
				t.Fatalf("key %d read before more adds changed", i)
			}
		}
		ops.check(t, "after more adds", l, append(want, more...))
	})
}

// appendList keeps every record of both lists, in order, with their own extras, whether
// neither, the first, the second or both lists have extras; and the list goes on
// taking records after.
func TestPackAppendList(t *testing.T) {
	testAppend(t, vmrOps())
	testAppend(t, deviceOps())
	testAppend(t, userOps())
}

func testAppend[T any, L packed[T]](t *testing.T, ops listOps[T, L]) {
	for ci, tc := range []struct {
		name         string
		nl, nm       int
		left, right  bool
		longL, longM int
	}{
		{"neither", 300, 400, false, false, 0, 0},
		{"left", 300, 400, true, false, 0, 0},
		{"right", 300, 400, false, true, 0, 0},
		{"both", 300, 400, true, true, 0, 0},
		{"neither long", 50, 60, false, false, 40, 40},
		{"left long", 50, 60, true, false, 40, 40},
		{"right long", 50, 60, false, true, 40, 40},
		{"both long", 50, 60, true, true, 40, 40},
		{"empty left", 0, 100, false, true, 0, 0},
		{"empty right", 100, 0, true, false, 0, 0},
		{"both empty", 0, 0, false, false, 0, 0},
	} {
		t.Run(ops.name+"/"+tc.name, func(t *testing.T) {
			g := newGen(int64(100+ci), tc.longL)
			l, m := ops.newList(), ops.newList()
			wantL := ops.fill(g, l, tc.nl, tc.left)
			g.long = tc.longM
			wantM := ops.fill(g, m, tc.nm, tc.right)
			if tc.nl > 0 && (ops.nExtras(l) > 0) != tc.left || tc.nm > 0 && (ops.nExtras(m) > 0) != tc.right {
				t.Fatalf("the case must be what it says: extras %d and %d", ops.nExtras(l), ops.nExtras(m))
			}
			keptL, keptM := make([]*T, len(wantL)), make([]*T, len(wantM))
			for i := range keptL {
				keptL[i] = l.At(i)
			}
			for i := range keptM {
				keptM[i] = m.At(i)
			}
			ops.appendL(l, m)
			want := append(append([]*T(nil), wantL...), wantM...)
			ops.check(t, "appended", l, want)
			for i, k := range keptL {
				if msg := ops.same(k, wantL[i]); msg != "" {
					t.Fatalf("left %d decoded before: %s", i, msg)
				}
			}
			for i, k := range keptM {
				if msg := ops.same(k, wantM[i]); msg != "" {
					t.Fatalf("right %d decoded before: %s", i, msg)
				}
			}
			// More records, with extras, then a third list with extras.
			g.long = 100
			want = append(want, ops.fill(g, l, 200, true)...)
			ops.check(t, "appended, then added", l, want)
			n := ops.newList()
			wantN := ops.fill(g, n, 150, true)
			ops.appendL(l, n)
			want = append(want, wantN...)
			ops.check(t, "appended twice", l, want)
			// And a list without extras, then more adds.
			o := ops.newList()
			wantO := ops.fill(g, o, 80, false)
			ops.appendL(l, o)
			want = append(want, wantO...)
			want = append(want, ops.fill(g, l, 50, true)...)
			ops.check(t, "appended thrice, then added", l, want)
		})
	}
}
