package reconcile

import (
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/roster-dev/roster/schema/account"
)

// created holds the VMRs, devices and users a plan creates from the desired lists, as
// positions in those lists rather than Change values: a first apply creates 1.2 million
// objects, which as Changes took 128 bytes each on top of the objects themselves, all
// traced by the garbage collector. A Change is made for one only while the plan is read
// (Plan.All), and dropped after.
type created struct {
	vmrs    *VMRList
	devices *DeviceList
	users   *UserList
	// own holds the few creations that differ from their desired object (overrides
	// applied): their positions are -1-k for own's k. The diff never writes to the
	// desired lists: the same Desired may be diffed again.
	ownVMRs    VMRList
	ownDevices DeviceList
	vmr        []int32
	device     []int32
	user       []createdUser
	// perTemplate counts the creations of each template, for Plan.Templates.
	perTemplate map[string]int
	// The row ids apply gave the creations, by creation position: a creation's email
	// references its object's row (Plan.emailRef).
	vmrIDs, deviceIDs, userIDs createdIDs
}

// createdIDs are row ids by creation position: pos[i] for position i >= 0, own[-1-i] for
// a position in own's list.
type createdIDs struct {
	pos, own []int64
}

// set records id for position at; n and ownN are the lengths of the two lists.
func (r *createdIDs) set(at int32, n, ownN int, id int64) {
	if r.pos == nil {
		r.pos, r.own = make([]int64, n), make([]int64, ownN)
	}
	if at < 0 {
		r.own[-1-at] = id
	} else {
		r.pos[at] = id
	}
}

// get is the id recorded for at; 0 when none was.
func (r *createdIDs) get(at int32) int64 {
	switch {
	case at < 0 && int(-1-at) < len(r.own):
		return r.own[-1-at]
	case at >= 0 && int(at) < len(r.pos):
		return r.pos[at]
	}
	return 0
}

// setID records the row id of creation k of kind, as apply wrote it (Plan.All yields a
// kind's recorded creations in order k). A kind whose creations are held as Changes has
// none recorded: their emails hold their object, with its id.
func (c *created) setID(kind account.Kind, k int, id int64) {
	switch {
	case kind == account.KindVMR && k < len(c.vmr):
		c.vmrIDs.set(c.vmr[k], c.vmrs.Len(), c.ownVMRs.Len(), id)
	case kind == account.KindDevice && k < len(c.device):
		c.deviceIDs.set(c.device[k], c.devices.Len(), c.ownDevices.Len(), id)
	case kind == account.KindUser && k < len(c.user):
		c.userIDs.set(c.user[k].i, c.users.Len(), 0, id)
	}
}

// createdUser is a user account to create: the desired user, and what the diff gives it.
type createdUser struct {
	i        int32
	notified bool
	seq      int64 // its USERID
}

func (c *created) count(template string) {
	if c.perTemplate == nil {
		c.perTemplate = map[string]int{}
	}
	c.perTemplate[template]++
}

// addVMR records the creation of desired VMR i of l, or of v itself when it is not
// what l holds (v is nil when it is).
func (c *created) addVMR(l *VMRList, i int, v *DesiredVMR, template string) {
	c.vmrs, c.vmr = l, append(c.vmr, creationIndex(&c.ownVMRs, i, v))
	c.count(template)
}

// addDevice is addVMR for devices.
func (c *created) addDevice(l *DeviceList, i int, v *DesiredDevice, template string) {
	c.devices, c.device = l, append(c.device, creationIndex(&c.ownDevices, i, v))
	c.count(template)
}

// creationIndex is how a creation is recorded: i, its index in the desired list, or for
// one unlike what the list holds (v not nil), -1 - its index in own.
func creationIndex[T, X any, C codec[T, X]](own *packedList[T, X, C], i int, v *T) int32 {
	if v != nil {
		i = -1 - own.Add(v)
	}
	return int32(i)
}

// atOf and keyOf take listOf's two results.
func atOf[T, X any, C codec[T, X]](l *packedList[T, X, C], i int) *T { return l.At(i) }

func keyOf[T, X any, C codec[T, X]](l *packedList[T, X, C], i int) string { return l.Key(i) }

// listOf is where creation position i is: own's record -1-i when negative, else l's record i.
func listOf[T, X any, C codec[T, X]](l, own *packedList[T, X, C], i int32) (*packedList[T, X, C], int) {
	if i < 0 {
		return own, int(-1 - i)
	}
	return l, int(i)
}

func (c *created) addUser(l *UserList, u createdUser, template string) {
	c.users = l
	c.user = append(c.user, u)
	c.count(template)
}

// len is the number of creations.
func (c *created) len() int { return len(c.vmr) + len(c.device) + len(c.user) }

// Rank groups of the creations (see Plan.finish): kind*8 + the create action's order.
const (
	groupVMRCreate    = 1*8 + 4
	groupDeviceCreate = 2*8 + 4
	groupUserCreate   = 3*8 + 4
)

// group returns how many creations rank group g has (0 for another group).
func (c *created) group(g int) int {
	switch g {
	case groupVMRCreate:
		return len(c.vmr)
	case groupDeviceCreate:
		return len(c.device)
	case groupUserCreate:
		return len(c.user)
	}
	return 0
}

// change makes the Change of creation k of rank group g.
func (c *created) change(g, k int) *Change {
	return c.changeInto(g, k, nil)
}

// scratch is what changeInto makes a creation's Change into when it is read and let
// go at once (the printout, the fingerprint): a first apply reads 1.2 million creations
// several times, each a Change and an object allocated.
type scratch struct {
	change Change
	vmr    DesiredVMR
	device DesiredDevice
	user   DesiredUser
}

// changeInto makes the Change of creation k of rank group g in s, or new values when s
// is nil.
func (c *created) changeInto(g, k int, s *scratch) *Change {
	ch := new(Change)
	if s != nil {
		ch = &s.change
	}
	switch g {
	case groupVMRCreate:
		l, i := listOf(c.vmrs, &c.ownVMRs, c.vmr[k])
		dv := decodeInto(l, i, s, func(s *scratch) *DesiredVMR { return &s.vmr })
		*ch = Change{Kind: account.KindVMR, Action: account.ActionCreate, Key: dv.Name, Template: dv.SyncTag, newObj: &dv.VMR, rank: g << 32}
	case groupDeviceCreate:
		l, i := listOf(c.devices, &c.ownDevices, c.device[k])
		dd := decodeInto(l, i, s, func(s *scratch) *DesiredDevice { return &s.device })
		*ch = Change{Kind: account.KindDevice, Action: account.ActionCreate, Key: dd.Alias, Template: dd.SyncTag, newObj: &dd.Device, rank: g << 32}
	default:
		cu := c.user[k]
		du := decodeInto(c.users, int(cu.i), s, func(s *scratch) *DesiredUser { return &s.user })
		u := &du.User
		u.UserID, u.Notified = strconv.FormatInt(cu.seq, 10), cu.notified
		*ch = Change{Kind: account.KindUser, Action: account.ActionCreate, Key: u.Email, Template: u.SyncTag, newObj: u, rank: g << 32}
	}
	return ch
}

// decodeInto decodes object i of l into s's value of its kind, or a new one when s is nil.
func decodeInto[T, X any, C codec[T, X]](l *packedList[T, X, C], i int, s *scratch, of func(*scratch) *T) *T {
	if s == nil {
		return l.At(i)
	}
	v := of(s)
	l.into(i, v)
	return v
}

// sort orders each kind's creations by key (the key is unique among creations), then
// by position, as Plan.finish orders changes.
func (c *created) sort() {
	byKey := func(a, b keyed) int {
		if x := strings.Compare(a.key, b.key); x != 0 {
			return x
		}
		return a.at - b.at
	}
	parallel(3, func(kind int) {
		var n int
		var key func(k int) string
		switch kind {
		case 0:
			n, key = len(c.vmr), func(k int) string { return keyOf(listOf(c.vmrs, &c.ownVMRs, c.vmr[k])) }
		case 1:
			n, key = len(c.device), func(k int) string { return keyOf(listOf(c.devices, &c.ownDevices, c.device[k])) }
		default:
			n, key = len(c.user), func(k int) string { return c.users.Key(int(c.user[k].i)) }
		}
		if n < 2 {
			return
		}
		ks := make([]keyed, n)
		for k := range ks {
			ks[k] = keyed{key(k), k}
		}
		slices.SortFunc(ks, byKey)
		switch kind {
		case 0:
			c.vmr = reorder(c.vmr, ks)
		case 1:
			c.device = reorder(c.device, ks)
		default:
			c.user = reorder(c.user, ks)
		}
	})
}

// keyed is a creation's key and its position before sorting.
type keyed struct {
	key string
	at  int
}

// reorder returns xs in the order of order's positions.
func reorder[T any](xs []T, order []keyed) []T {
	out := make([]T, len(xs))
	for k, o := range order {
		out[k] = xs[o.at]
	}
	return out
}

// segment is a run of the plan's changes in order: either changes held as values or a
// rank group of creations.
type segment struct {
	changes []*Change
	group   int // a creations group when changes is nil
	n       int
}

// segments lays the plan's changes out in order: the held changes (sorted by finish)
// with each group of creations where its rank puts it.
func (p *Plan) segments() []segment {
	var out []segment
	groups := []int{groupVMRCreate, groupDeviceCreate, groupUserCreate}
	cs := p.changes
	for _, g := range groups {
		n := p.created.group(g)
		if n == 0 {
			continue
		}
		cut, _ := slices.BinarySearchFunc(cs, g, func(c *Change, g int) int { return c.rank>>32 - g })
		// Held changes of lower ranks come first; none has rank g (finish refuses that).
		if cut > 0 {
			out = append(out, segment{changes: cs[:cut], n: cut})
		}
		out = append(out, segment{group: g, n: n})
		cs = cs[cut:]
	}
	if len(cs) > 0 {
		out = append(out, segment{changes: cs, n: len(cs)})
	}
	return out
}

// Len is the number of changes in the plan.
func (p *Plan) Len() int { return len(p.changes) + p.created.len() }

// All yields the plan's changes in order. A creation's Change is made as it is yielded.
func (p *Plan) All() iter.Seq2[int, *Change] {
	return func(yield func(int, *Change) bool) {
		i := 0
		for _, s := range p.segments() {
			for k := range s.n {
				c := s.at(&p.created, k)
				if !yield(i, c) {
					return
				}
				i++
			}
		}
	}
}

// reused yields the plan's changes in order as All does, but a creation's Change and
// object are made into one scratch, overwritten by the next: for readers that let each
// go before the next (the printout).
func (p *Plan) reused() iter.Seq2[int, *Change] {
	return func(yield func(int, *Change) bool) {
		var sc scratch
		i := 0
		for _, s := range p.segments() {
			for k := range s.n {
				if !yield(i, s.into(&p.created, k, &sc)) {
					return
				}
				i++
			}
		}
	}
}

func (s *segment) at(c *created, k int) *Change {
	return s.into(c, k, nil)
}

// into is at with a creation made in sc (nil: new values).
func (s *segment) into(c *created, k int, sc *scratch) *Change {
	if s.changes != nil {
		return s.changes[k]
	}
	return c.changeInto(s.group, k, sc)
}

// unordered yields the plan's changes while the diff still makes it: the held ones
// first, in the order they were made, then the creations. (For each kind, deletions are
// made before creations, so a name freed and taken in one plan ends taken.)
func (p *Plan) unordered() iter.Seq[*Change] {
	return func(yield func(*Change) bool) {
		for _, c := range p.changes {
			if !yield(c) {
				return
			}
		}
		for _, g := range []int{groupVMRCreate, groupDeviceCreate, groupUserCreate} {
			for k := range p.created.group(g) {
				if !yield(p.created.change(g, k)) {
					return
				}
			}
		}
	}
}

// Changes returns every change of the plan in order, made at once (for small plans and tests).
func (p *Plan) Changes() []*Change {
	out := make([]*Change, 0, p.Len())
	for _, c := range p.All() {
		out = append(out, c)
	}
	return out
}

// eachIn calls fn with changes [lo, hi) of the plan in order, creations made in one
// scratch that the next overwrites.
func (p *Plan) eachIn(segs []segment, lo, hi int, fn func(*Change)) {
	var sc scratch
	start := 0
	for _, s := range segs {
		end := start + s.n
		for k := max(lo, start); k < min(hi, end); k++ {
			fn(s.into(&p.created, k-start, &sc))
		}
		start = end
	}
}
