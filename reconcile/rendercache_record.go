package reconcile

// The render cache during one plan (see rendercache.go): a template's entries are
// skipped when the cache holds them, every entry's outcome is recorded, and once the
// plan is applied (or found to change nothing) the settled ones become the next file.

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// templateCache is the cache as one template's render uses it; nil: no cache.
type templateCache struct {
	rc     *renderCache
	tag    string
	cached *cachedTemplate // nil: nothing to skip
	rec    *templateRecords
}

// templateRecords are what a template's entries rendered, as the cache needs it: 40
// bytes an entry (a plan of 400,000 people holds them all until it ends).
type templateRecords struct {
	entries []recordedEntry
	absent  []string       // emails of the skipped entries' disabled users without account
	changed []changedNames // of the entries with objects not unchanged (few, but in a first apply)
	fresh   int            // entries rendered (not skipped) that rendered unchanged
}

// recordedEntry is one entry that may be settled: it rendered no warning, kept nothing,
// and none of its objects carries overrides.
type recordedEntry struct {
	hash, keyHash uint64
	email         string // its user's
	flags         uint8
	same          bool // every object it renders rendered unchanged
}

// changedNames are the names of an entry's changed VMR and device (warnings of claims
// name them), by position in entries.
type changedNames struct {
	entry       int
	vmr, device string
}

// forTemplate returns the cache of template t, or nil: no cache, or t read incrementally
// (sync.go premarks those entries its own way).
func (rc *renderCache) forTemplate(t *schema.Template, sr *syncRead) *templateCache {
	if rc == nil || (sr != nil && sr.info.Mode == ReadIncremental) {
		return nil
	}
	if _, ok := rc.fps[t.Name]; !ok {
		return nil
	}
	tc := &templateCache{rc: rc, tag: t.Name, cached: rc.loaded[t.Name], rec: &templateRecords{}}
	if tc.cached != nil { // about as many entries as last time
		tc.rec.entries = make([]recordedEntry, 0, len(tc.cached.entries)+len(tc.cached.entries)/16+64)
	}
	rc.mu.Lock()
	rc.records[t.Name] = tc.rec
	rc.mu.Unlock()
	return tc
}

// render renders e, or — when the cache holds it with the same hash and the objects it
// renders are in the index — returns the entry's objects marked unchanged, as rendering
// would. *h gets e's hash for record.
func (tc *templateCache) render(in Inputs, c *compiled, idx *refIndex, r *renderer, e *directory.Entry, h *uint64) entryOutput {
	if tc == nil || idx == nil || e.Key == "" {
		return renderEntry(in, c, idx, r, e)
	}
	*h = entryHash(tc.rc.seed, e)
	if out, ok := tc.skip(idx, e, *h, &r.near); ok {
		tc.rc.hits.Add(1)
		return out
	}
	return renderEntry(in, c, idx, r, e)
}

func (tc *templateCache) skip(idx *refIndex, e *directory.Entry, h uint64, at *near) (entryOutput, bool) {
	ct := tc.cached
	if ct == nil || idx.ix.Small.StateVersion != tc.rc.version {
		return entryOutput{}, false
	}
	j, ok := ct.find(h, &at.cached)
	if !ok {
		return entryOutput{}, false
	}
	ce := &ct.entries[j]
	out := entryOutput{cached: true}
	own := ownerKey(tc.tag, e.Key, "")
	var oh uint64
	if ce.flags&(cachedVMR|cachedDevice) != 0 {
		oh = idx.dg.owner(own.tag, own.key)
	}
	if ce.flags&cachedVMR != 0 {
		i, ok := idx.vmrNear(oh, &at.vmr)
		if !ok {
			return entryOutput{}, false
		}
		out.sameVMR = i + 1
	}
	if ce.flags&cachedDevice != 0 {
		i, ok := idx.deviceNear(oh, &at.device)
		if !ok {
			return entryOutput{}, false
		}
		out.sameDevice = i + 1
	}
	if ce.flags&cachedNoMail != 0 {
		out.warn = noEmailWarning(tc.tag, e.DN)
	}
	if ce.flags&(cachedUser|cachedAbsent) != 0 && tc.rc.csv[ce.email] {
		return entryOutput{}, false
	}
	if ce.flags&cachedAbsent != 0 {
		if idx.hasUser(ce.email) { // it has an account now: render it
			return entryOutput{}, false
		}
		out.absent = ce.email
	}
	if ce.flags&cachedUser != 0 {
		i, ok := idx.userNear(ce.email, &at.user)
		if !ok {
			return entryOutput{}, false
		}
		if u := &idx.ix.Users[i]; u.SyncTag() != tc.tag || u.EntryKey() != e.Key {
			return entryOutput{}, false
		}
		out.sameUser = i + 1
	}
	return out, true
}

// record notes what entry e (hash h) rendered to r (renderTemplate's collector: one
// goroutine a template).
func (tc *templateCache) record(idx *refIndex, e *directory.Entry, h uint64, r *entryOutput) {
	if tc == nil || idx == nil || e.Key == "" || len(r.keep) > 0 {
		return
	}
	re := recordedEntry{hash: h, keyHash: strHash(tc.rc.seed, e.Key)}
	if w := r.warn; w != nil {
		if *w != *noEmailWarning(tc.tag, e.DN) {
			return
		}
		re.flags |= cachedNoMail
	}
	if r.absent != "" {
		re.flags |= cachedAbsent
		re.email = r.absent
	}
	var names changedNames
	if r.vmr != nil {
		if len(r.vmr.Overrides) > 0 {
			return
		}
		re.flags |= cachedVMR
		names.vmr = r.vmr.Name
	}
	if r.sameVMR != 0 {
		re.flags |= cachedVMR
	}
	if r.device != nil {
		if len(r.device.Overrides) > 0 || r.device.Disabled {
			return
		}
		re.flags |= cachedDevice
		names.device = r.device.Alias
	}
	if r.sameDevice != 0 {
		re.flags |= cachedDevice
	}
	absent := false
	if u := r.user; u != nil {
		// A disabled directory user without an account is never created: it changes
		// nothing, but takes part in the check for duplicate emails (checkAbsent).
		if u.Disabled && !idx.hasUser(u.Email) {
			re.flags |= cachedAbsent
			absent = true
		} else {
			re.flags |= cachedUser
		}
		re.email = u.Email
	}
	if r.sameUser != 0 {
		re.flags |= cachedUser
		re.email = idx.ix.Users[r.sameUser-1].Email()
	}
	if len(re.email) > 0xff || tc.rc.csv[re.email] {
		return
	}
	re.same = r.vmr == nil && r.device == nil && (r.user == nil || absent)
	if re.same && !r.cached {
		tc.rec.fresh++
	}
	if names.vmr != "" || names.device != "" {
		names.entry = len(tc.rec.entries)
		tc.rec.changed = append(tc.rec.changed, names)
	}
	tc.rec.entries = append(tc.rec.entries, re)
}

// settled lists, by template, the recorded entries of d's templates that are settled:
// once applied (applied) those no warning of p names, as sync.go's pending rule; else
// those that rendered unchanged. Entries sharing a key and failed templates never are.
func (rc *renderCache) settled(p *Plan, d *Desired, applied bool) map[string][]cachedEntry {
	warned := map[string]bool{}
	for _, w := range p.Warnings {
		warned[w.Key] = true
	}
	out := map[string][]cachedEntry{}
	for _, t := range d.Templates {
		tr := rc.records[t.Name]
		if t.Err != nil || tr == nil {
			continue
		}
		drop := make([]bool, len(tr.entries))
		for _, i := range sharedKeys(tr.entries) {
			drop[i] = true
		}
		{
			for _, c := range tr.changed {
				if c.vmr != "" && warned[c.vmr] || c.device != "" && warned[c.device] {
					drop[c.entry] = true
				}
			}
		}
		es := make([]cachedEntry, 0, len(tr.entries))
		for i := range tr.entries {
			re := &tr.entries[i]
			if drop[i] || (!applied && !re.same) || (re.email != "" && warned[re.email]) {
				continue
			}
			es = append(es, cachedEntry{hash: re.hash, flags: re.flags, email: re.email})
		}
		out[t.Name] = es
	}
	return out
}

// sharedKeys are the positions of the entries whose key another entry has too.
func sharedKeys(entries []recordedEntry) []int {
	type kp struct {
		key uint64
		pos int
	}
	byKey := make([]kp, len(entries))
	for i := range entries {
		byKey[i] = kp{entries[i].keyHash, i}
	}
	slices.SortFunc(byKey, func(a, b kp) int { return cmp.Compare(a.key, b.key) })
	var out []int
	for i := range byKey {
		if (i > 0 && byKey[i-1].key == byKey[i].key) || (i+1 < len(byKey) && byKey[i+1].key == byKey[i].key) {
			out = append(out, byKey[i].pos)
		}
	}
	return out
}

// misses says whether the plan rendered an entry the cache could have skipped next time:
// whether writing the cache after a plan that changes nothing is worth it.
func (rc *renderCache) misses(d *Desired) bool {
	for _, t := range d.Templates {
		if tr := rc.records[t.Name]; t.Err == nil && tr != nil && tr.fresh > 0 {
			return true
		}
	}
	return false
}

// keep arranges for p's cache to be written: after p is applied as the next state
// version (chained before any other hook), or now when p changes nothing and rendered
// entries the cache did not hold.
func (rc *renderCache) keep(ctx context.Context, db *state.DB, logger *slog.Logger, p *Plan, d *Desired) {
	if rc == nil {
		return
	}
	log := func(version int64, n map[string][]cachedEntry, err error) {
		if logger == nil {
			return
		}
		total := 0
		for _, es := range n {
			total += len(es)
		}
		logger.Debug("render cache written", "state_version", version, "entries", total, "err", err)
	}
	if p.HasChanges() {
		next := p.applied
		p.applied = func(ctx context.Context, version int64, own bool) {
			if next != nil {
				next(ctx, version, own)
			}
			if !own {
				// The state is not exactly this plan's (a repair or adoption rode along):
				// no cache rather than one that could describe another state.
				return
			}
			recs := rc.settled(p, d, true)
			log(version, recs, rc.write(ctx, db, version, recs))
		}
		return
	}
	if len(p.Errors) == 0 && rc.misses(d) {
		recs := rc.settled(p, d, false)
		log(p.StateVersion, recs, rc.write(ctx, db, p.StateVersion, recs))
	}
}

// undigested are the templates whose entries the cache holds: their objects' digests are
// not worth reading (state.DigestSpec.Undigested).
func (rc *renderCache) undigested() map[string]bool {
	tags := map[string]bool{}
	for name, ct := range rc.loaded {
		if len(ct.entries) > 0 {
			tags[name] = true
		}
	}
	return tags
}

// hasUser says whether the index has an account with email.
func (ri *refIndex) hasUser(email string) bool {
	_, ok := ri.user(email)
	return ok
}

// errCacheConflict: an entry the cache skipped would have taken part in a duplicate
// email; the plan is made again without the cache.
var errCacheConflict = errors.New("render cache: a skipped entry shares an email with a rendered one")

// checkAbsent makes sure that no disabled user without account that the cache skipped
// shares its email with a rendered user or another skipped one: rendered, it would have
// made both duplicates (mergeUsers), which skipping cannot show.
func (rc *renderCache) checkAbsent(remote *UserList) error {
	if rc == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, tr := range rc.records {
		for _, email := range tr.absent {
			if seen[email] {
				return errCacheConflict
			}
			seen[email] = true
		}
	}
	if len(seen) == 0 {
		return nil
	}
	for i := range remote.Len() {
		if seen[remote.Key(i)] {
			return errCacheConflict
		}
	}
	return nil
}
