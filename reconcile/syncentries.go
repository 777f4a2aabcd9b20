package reconcile

// The entries of an incremental search, kept by the engine across cycles (issue 18).
//
// Premark needs, for a search, the owner of every entry's objects and the email of the
// user it renders; loadChanges needs the pending entries. Reading them from sync_entries
// every cycle costs a scan of 400,000 rows (0.3–0.6 s once an apply has written the
// table), and marking each object by a hash lookup another 0.15–0.2 s. So the engine
// keeps, per search:
//
//   - an entrySet: the (owner, email) pairs of the entries and the pending ids, read
//     once, then updated in place from what each of its own applies wrote (the old
//     values come from the plan's lookup of the changed ids, the new ones from the
//     write), at the sync token that write recorded;
//   - its baseMarks: which objects of one index the entries own (premark without the
//     affected keys), moved by object id to the index refreshed after an apply, with
//     only the objects the apply touched or created and the changed owners' looked at
//     again (refresh_tables.go moves the index's lookup tables likewise).
//
// A premark then ORs the base marks into the plan's, skipping the objects of the keys
// the cycle changes: a sequential pass instead of 1.2 million hash lookups. Another
// writer of sync_entries changes the sync token (state.PutSync records a fresh one when
// the stored token is not the one the plan saw), and the set is read again; a plan of
// another index (reloaded, or one the engine did not refresh) computes its base marks
// again.
//
// The engine's plans and applies run one at a time (the daemon's loop): a set is not
// locked while a plan reads it, nor while the engine updates it after an apply.

import (
	"cmp"
	"context"
	"slices"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// entrySet is a search's entries as premark needs them, hashed with dg: the multiset of
// (owner of its key, email of its user) pairs, and the ids of the pending entries.
type entrySet struct {
	token   string // the sync token the set is at ("": none, never trusted)
	dg      *digester
	tag     string
	n       int                 // entries
	one     map[uint64]uint64   // owner → email, for owners one entry has
	more    map[uint64][]uint64 // owner → emails, for owners several entries share (a key clash)
	pending map[string]bool
	base    *baseMarks // nil until a premark computes it
}

func newEntrySet(token string, dg *digester, tag string, n int) *entrySet {
	return &entrySet{token: token, dg: dg, tag: tag, one: make(map[uint64]uint64, n), more: map[uint64][]uint64{}, pending: map[string]bool{}}
}

// add puts an entry's pair in the set.
func (es *entrySet) add(owner, email uint64) {
	es.n++
	if l, ok := es.more[owner]; ok {
		es.more[owner] = append(l, email)
		return
	}
	if e, ok := es.one[owner]; ok {
		delete(es.one, owner)
		es.more[owner] = []uint64{e, email}
		return
	}
	es.one[owner] = email
}

// remove takes one entry's pair out of the set; false when the set has no such pair
// (it is not the state the write started from).
func (es *entrySet) remove(owner, email uint64) bool {
	if l, ok := es.more[owner]; ok {
		i := slices.Index(l, email)
		if i < 0 {
			return false
		}
		if l = slices.Delete(l, i, i+1); len(l) == 1 {
			delete(es.more, owner)
			es.one[owner] = l[0]
		} else {
			es.more[owner] = l
		}
		es.n--
		return true
	}
	if e, ok := es.one[owner]; ok && e == email {
		delete(es.one, owner)
		es.n--
		return true
	}
	return false
}

// has says whether an entry has the key of owner.
func (es *entrySet) has(owner uint64) bool {
	if _, ok := es.one[owner]; ok {
		return true
	}
	_, ok := es.more[owner]
	return ok
}

// hasPair says whether an entry with the key of owner renders the user of email.
func (es *entrySet) hasPair(owner, email uint64) bool {
	if e, ok := es.one[owner]; ok {
		return e == email
	}
	return slices.Contains(es.more[owner], email)
}

// emailsOf calls fn with the email of each entry with the key of owner.
func (es *entrySet) emailsOf(owner uint64, fn func(uint64)) {
	if e, ok := es.one[owner]; ok {
		fn(e)
	}
	for _, e := range es.more[owner] {
		fn(e)
	}
}

// pendingIDs is the pending ids in the order SyncPending reads them (the order pending
// entries are searched and rendered in).
func (es *entrySet) pendingIDs() []string {
	out := make([]string, 0, len(es.pending))
	for u := range es.pending {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// put adds one entry as stored.
func (es *entrySet) put(en state.SyncEntry) {
	es.add(es.dg.owner(es.tag, en.Key), es.dg.email(en.Email))
	if en.Pending {
		es.pending[en.UUID] = true
	}
}

// readEntrySet reads a search's entries from the database, at token.
func (e *Engine) readEntrySet(ctx context.Context, req, token, tag string, dg *digester) (*entrySet, error) {
	es := newEntrySet(token, dg, tag, 0)
	err := e.DB.EachSyncEntry(ctx, req, func(uuid, key, email []byte, pending bool) {
		es.add(dg.owner(tag, string(key)), dg.email(string(email)))
		if pending {
			es.pending[string(uuid)] = true
		}
	})
	return es, err
}

// entrySet returns sr's entries hashed with dg: the engine's while they are at the sync
// token sr was read at, else read (and kept).
func (e *Engine) entrySet(ctx context.Context, sr *syncRead, dg *digester) (*entrySet, error) {
	e.mu.Lock()
	es := e.sets[sr.req]
	e.mu.Unlock()
	if es != nil && es.token != "" && es.token == sr.token && es.dg == dg {
		return es, nil
	}
	es, err := e.readEntrySet(ctx, sr.req, sr.token, sr.info.Template, dg)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.sets == nil {
		e.sets = map[string]*entrySet{}
	}
	e.sets[sr.req] = es
	e.mu.Unlock()
	return es, nil
}

// syncPending is the pending ids of sr's search: the engine's while at sr's token.
func (e *Engine) syncPending(ctx context.Context, sr *syncRead) ([]string, error) {
	e.mu.Lock()
	es := e.sets[sr.req]
	e.mu.Unlock()
	if es != nil && es.token != "" && es.token == sr.token {
		return es.pendingIDs(), nil
	}
	return e.DB.SyncPending(ctx, sr.req)
}

// baseMarks are the objects of one index that a search's entries own, by position: what
// premark marks when no key is affected.
type baseMarks struct {
	ix                *state.Index
	vmr, device, user []bool
}

// ownsUser says whether the entries own u: it has their sync tag and the email the entry
// of its key renders (an account the entry left behind, its email changed, is not its).
func (es *entrySet) ownsUser(u *state.UserRef) bool {
	return !u.Local && u.SyncTag() == es.tag && es.hasPair(es.dg.owner(es.tag, u.EntryKey()), es.dg.email(u.Email()))
}

// marksFor returns the base marks of ix, computing them when the set has none for it.
func (es *entrySet) marksFor(ix *state.Index) *baseMarks {
	if es.base != nil && es.base.ix == ix {
		return es.base
	}
	b := &baseMarks{ix: ix, vmr: make([]bool, len(ix.VMRs)), device: make([]bool, len(ix.Devices)), user: make([]bool, len(ix.Users))}
	for i := range ix.VMRs {
		b.vmr[i] = es.has(ix.VMRs[i].Owner)
	}
	for i := range ix.Devices {
		b.device[i] = es.has(ix.Devices[i].Owner)
	}
	for i := range ix.Users {
		b.user[i] = es.ownsUser(&ix.Users[i])
	}
	es.base = b
	return b
}

// objectsOf calls vmr and device with the position of each VMR and device of the index
// (tables are its lookup tables) with owner.
func objectsOf(ix *state.Index, t *refTables, owner uint64, vmr, device func(int32)) {
	t.vmrs.find(owner, func(i int32) bool {
		if ix.VMRs[i].Owner == owner {
			vmr(i)
		}
		return false
	})
	t.devices.find(owner, func(i int32) bool {
		if ix.Devices[i].Owner == owner {
			device(i)
		}
		return false
	})
}

// usersOf calls fn with the position of each user of the index with email and owner.
func (es *entrySet) usersOf(ix *state.Index, t *refTables, owner, email uint64, fn func(int32)) {
	t.users.find(email, func(i int32) bool {
		if u := &ix.Users[i]; u.SyncTag() == es.tag && es.dg.owner(es.tag, u.EntryKey()) == owner {
			fn(i)
		}
		return false
	})
}

// premark marks unchanged the objects of the search's entries that no change affects:
// their entries render what they are (they were settled when last applied).
func (sp *syncPlan) premark(ctx context.Context, sr *syncRead, idx *refIndex) error {
	if sr.info.Mode != ReadIncremental {
		return nil
	}
	es, err := sp.e.entrySet(ctx, sr, idx.dg)
	if err != nil {
		return err
	}
	sr.known = es.n
	b := es.marksFor(idx.ix)
	t := &refTables{vmrs: idx.vmrs, devices: idx.devices, users: idx.users}
	var skipV, skipD, skipU []int32
	for k := range sr.affected {
		// The users an affected entry may own have its owner and an email of its
		// entries: no other user of the owner is in the base marks.
		h := idx.dg.owner(es.tag, k)
		objectsOf(idx.ix, t, h, func(i int32) { skipV = append(skipV, i) }, func(i int32) { skipD = append(skipD, i) })
		es.emailsOf(h, func(m uint64) { es.usersOf(idx.ix, t, h, m, func(i int32) { skipU = append(skipU, i) }) })
	}
	markExcept(b.vmr, skipV, idx.markVMR)
	markExcept(b.device, skipD, idx.markDevice)
	markExcept(b.user, skipU, idx.markUser)
	return nil
}

// markExcept calls mark with every position set in base but those of skip.
func markExcept(base []bool, skip []int32, mark func(int32)) {
	slices.Sort(skip)
	j := 0
	for i, m := range base {
		if !m {
			continue
		}
		for j < len(skip) && skip[j] < int32(i) {
			j++
		}
		if j < len(skip) && skip[j] == int32(i) {
			continue
		}
		mark(int32(i))
	}
}

// update applies a write of some of the search's entries (not a full one) to the set:
// prev holds what each id written was before (nil: new to the search), as the plan read
// it. touched gets every pair taken out or put in. False when the write names an id the
// plan did not read, twice, or a pair the set does not hold: the set must be read again.
func (es *entrySet) update(w state.SyncWrite, prev map[string]*state.SyncEntry, touched func(owner, email uint64)) bool {
	seen := make(map[string]bool, len(w.Entries))
	for _, en := range w.Entries {
		old, ok := prev[en.UUID]
		if !ok || seen[en.UUID] {
			return false
		}
		seen[en.UUID] = true
		if old != nil {
			o, m := es.dg.owner(es.tag, old.Key), es.dg.email(old.Email)
			if !es.remove(o, m) {
				return false
			}
			delete(es.pending, en.UUID)
			touched(o, m)
		}
		if !en.Gone {
			es.put(en)
			touched(es.dg.owner(es.tag, en.Key), es.dg.email(en.Email))
		}
	}
	es.token = w.Token
	return true
}

// syncApplied follows the engine's own commit of p, planned with dg and the index ix:
// the entry sets take what p wrote, at the tokens it recorded (a set not at the token the
// plan saw is dropped: read again). next is the index of the state after the commit as
// the engine now holds it (ix when p changed no object; nil when it holds none) and tables
// its lookup tables: base marks of ix move to next by object id, the objects p touched or
// created and those of the changed entries looked at again; without next or its tables
// they are dropped (the next premark computes them).
func (e *Engine) syncApplied(sp *syncPlan, p *Plan, dg *digester, ix, next *state.Index, tables *refTables) {
	e.mu.Lock()
	defer e.mu.Unlock()
	type pair struct{ owner, email uint64 }
	changed := map[*entrySet][]pair{}
	for _, w := range p.syncWrites {
		req := w.Cookie.Req
		es := e.sets[req]
		switch {
		case w.Full:
			es = newEntrySet(w.Token, dg, w.Cookie.Template, len(w.Entries))
			for _, en := range w.Entries {
				if !en.Gone {
					es.put(en)
				}
			}
			if e.sets == nil {
				e.sets = map[string]*entrySet{}
			}
			e.sets[req] = es
		case len(w.Entries) == 0: // the token was not written
		default:
			var sr *syncRead
			for _, r := range sp.reads {
				if r.req == req {
					sr = r
				}
			}
			if es == nil || sr == nil || es.token != w.Seen || es.dg != dg ||
				!es.update(w, sr.prev, func(o, m uint64) { changed[es] = append(changed[es], pair{o, m}) }) {
				delete(e.sets, req)
			}
		}
	}
	for _, es := range e.sets {
		b := es.base
		if b == nil {
			continue
		}
		if b.ix != ix || next == nil || tables == nil || es.dg != dg {
			es.base = nil
			continue
		}
		if next != ix {
			b = &baseMarks{ix: next,
				vmr:    moveMarks(ix.VMRs, b.vmr, next.VMRs, func(i int) bool { return es.has(next.VMRs[i].Owner) }),
				device: moveMarks(ix.Devices, b.device, next.Devices, func(i int) bool { return es.has(next.Devices[i].Owner) }),
				user:   moveMarks(ix.Users, b.user, next.Users, func(i int) bool { return es.ownsUser(&next.Users[i]) })}
			es.base = b
		}
		for _, ch := range p.All() {
			switch o := ch.oldObj.(type) {
			case *account.VMR:
				if i, ok := positionOf(next.VMRs, o.ID); ok {
					b.vmr[i] = es.has(next.VMRs[i].Owner)
				}
			case *account.Device:
				if i, ok := positionOf(next.Devices, o.ID); ok {
					b.device[i] = es.has(next.Devices[i].Owner)
				}
			case *account.User:
				if i, ok := positionOf(next.Users, o.ID); ok {
					b.user[i] = es.ownsUser(&next.Users[i])
				}
			}
		}
		for _, c := range changed[es] {
			objectsOf(next, tables, c.owner,
				func(i int32) { b.vmr[i] = es.has(next.VMRs[i].Owner) },
				func(i int32) { b.device[i] = es.has(next.Devices[i].Owner) })
			// A user's base mark changes only with its own pair's: the pairs taken out
			// and put in name every user whose mark may have changed.
			es.usersOf(next, tables, c.owner, c.email, func(i int32) { b.user[i] = es.ownsUser(&next.Users[i]) })
		}
	}
}

// positionOf is the position of the object with id in an index's list (in id order).
func positionOf[R interface{ RowID() int64 }](list []R, id int64) (int, bool) {
	return slices.BinarySearchFunc(list, id, func(r R, id int64) int { return cmp.Compare(r.RowID(), id) })
}
