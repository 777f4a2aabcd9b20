package reconcile

// Skipping cached entries ahead of the state's index (see rendercache.go).
//
// A command's no-op plan skips nearly every entry through the render cache, and skipping
// needs the index only to find the positions of the entry's objects and mark them. Were
// the render to wait for the index at its first batch, the directory read would stall
// behind the index load (a third of a 400,000-person plan on one core, the other idle).
// So while the index loads, a batch whose entries the cache all holds is taken as
// skipped at once — its warnings, absent users and records as skip and record make them
// — and only the marks wait: each entry's place in the cache and its owner hash, 16 bytes,
// resolved in one pass when the index is there. Should any of them not resolve (an object
// the cache names is missing, or the state moved on since the cache was read), the entry
// would have been rendered after all, which is no longer possible: the plan is made again
// without skipping ahead (errAheadMiss).

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/roster-dev/roster/reconcile/directory"
)

// indexAhead lets a command's render skip cached entries before the index is loaded.
type indexAhead struct {
	ready <-chan struct{} // closed once the index is loaded (or failed to load)
	dg    *digester       // the index's: owner hashes are computed ahead with it
	never bool            // (tests) the index is never taken as loaded between batches
}

// loaded says whether the index is there (nil a: always, Render waits for it).
func (a *indexAhead) loaded() bool {
	if a == nil {
		return true
	}
	if a.never {
		return false
	}
	select {
	case <-a.ready:
		return true
	default:
		return false
	}
}

// errAheadMiss: an entry skipped ahead of the index turned out to need rendering; the
// plan is made again, waiting for the index.
var errAheadMiss = errors.New("render cache: an entry skipped ahead of the index must be rendered")

// resolveApart is how many marks resolve runs one goroutine a kind for (a variable for
// tests).
var resolveApart = 4096

// aheadMark is a skipped entry whose objects are marked unchanged once the index is there.
type aheadMark struct {
	owner uint64 // digester.owner of the template and the entry's key
	entry int32  // in the cachedTemplate's entries
}

// aheadMarks are the pending marks of one template.
type aheadMarks struct {
	marks []aheadMark
}

// skipAhead looks every entry of batch up in the cache without the index. When all of
// them are there it fills results (and hashes) as skip would, minus the marks, which it
// returns in marks (by entry), and returns true; else false, and the batch is rendered
// once the index is there.
func (tc *templateCache) skipAhead(a *indexAhead, batch []directory.Entry, results []entryOutput, hashes []uint64, marks []aheadMark, workers int) bool {
	if tc == nil || tc.cached == nil || a == nil {
		return false
	}
	var missed atomic.Bool
	eachRange(len(batch), workers, func(lo, hi int) {
		var at int32
		for i := lo; i < hi && !missed.Load(); i++ {
			if !tc.lookAhead(a, &batch[i], &results[i], &hashes[i], &marks[i], &at) {
				missed.Store(true)
			}
		}
	})
	if missed.Load() {
		clear(results)
		return false
	}
	return true
}

// lookAhead is skip without the index: whether e's hash is in the cache and what the
// entry's output is, but its marks (mark).
func (tc *templateCache) lookAhead(a *indexAhead, e *directory.Entry, out *entryOutput, h *uint64, mark *aheadMark, at *int32) bool {
	if e.Key == "" {
		return false
	}
	*h = entryHash(tc.rc.seed, e)
	ct := tc.cached
	j, ok := ct.find(*h, at)
	if !ok {
		return false
	}
	ce := &ct.entries[j]
	if ce.flags&(cachedUser|cachedAbsent) != 0 && tc.rc.csv[ce.email] {
		return false
	}
	*out = entryOutput{cached: true}
	if ce.flags&cachedNoMail != 0 {
		out.warn = noEmailWarning(tc.tag, e.DN)
	}
	if ce.flags&cachedAbsent != 0 {
		out.absent = ce.email
	}
	o := ownerKey(tc.tag, e.Key, "")
	*mark = aheadMark{owner: a.dg.owner(o.tag, o.key), entry: j}
	return true
}

// recordAhead is record for an entry skipped ahead: what record makes of the output skip
// gives, which repeats the cached entry.
func (tc *templateCache) recordAhead(e *directory.Entry, h uint64, m aheadMark) {
	ce := &tc.cached.entries[m.entry]
	tc.rec.entries = append(tc.rec.entries, recordedEntry{hash: h, keyHash: strHash(tc.rc.seed, e.Key),
		email: ce.email, flags: ce.flags, same: true})
}

// resolve marks the objects of the entries skipped ahead unchanged in idx, as skip would
// have; errAheadMiss when one of them would not have been skipped.
func (tc *templateCache) resolve(idx *refIndex, p *aheadMarks) error {
	if len(p.marks) == 0 {
		return nil
	}
	if idx == nil || idx.ix.Small.StateVersion != tc.rc.version {
		return errAheadMiss
	}
	// One pass a kind, on goroutines of their own when the marks are many: each kind
	// marks its own slice and count, and their random reads overlap.
	ct := tc.cached
	passes := [3]func() bool{
		func() bool {
			var at int32
			for _, m := range p.marks {
				if ct.entries[m.entry].flags&cachedVMR != 0 {
					i, ok := idx.vmrNear(m.owner, &at)
					if !ok {
						return false
					}
					idx.markVMR(i)
				}
			}
			return true
		},
		func() bool {
			var at int32
			for _, m := range p.marks {
				if ct.entries[m.entry].flags&cachedDevice != 0 {
					i, ok := idx.deviceNear(m.owner, &at)
					if !ok {
						return false
					}
					idx.markDevice(i)
				}
			}
			return true
		},
		func() bool {
			var at int32
			for _, m := range p.marks {
				ce := &ct.entries[m.entry]
				if ce.flags&cachedAbsent != 0 && idx.hasUser(ce.email) {
					return false
				}
				if ce.flags&cachedUser != 0 {
					i, ok := idx.userNear(ce.email, &at)
					if !ok {
						return false
					}
					// the entry key compared by its owner hash: the entry itself is gone by now
					u := &idx.ix.Users[i]
					if o := ownerKey(tc.tag, u.EntryKey(), ""); u.SyncTag() != tc.tag || idx.dg.owner(o.tag, o.key) != m.owner {
						return false
					}
					idx.markUser(i)
				}
			}
			return true
		},
	}
	var ok [3]bool
	if len(p.marks) < resolveApart {
		for k, pass := range passes {
			ok[k] = pass()
		}
	} else {
		var wg sync.WaitGroup
		for k, pass := range passes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok[k] = pass()
			}()
		}
		wg.Wait()
	}
	if !ok[0] || !ok[1] || !ok[2] {
		return errAheadMiss
	}
	tc.rc.hits.Add(int64(len(p.marks)))
	tc.rc.ahead.Add(int64(len(p.marks)))
	p.marks = p.marks[:0]
	return nil
}

// eachRange calls f on up to workers consecutive ranges of [0, n) at once (inline for
// one worker or few items).
func eachRange(n, workers int, f func(lo, hi int)) {
	if workers <= 1 || n < 64 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
