package reconcile

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/state"
)

// checkSyncCache: every entry set the engine holds at the sync token the database
// records (one it would plan with) equals a fresh read of sync_entries, and its base
// marks equal marks computed afresh over the same index. Returns how many sets it checked
// and, of those, how many had base marks.
func checkSyncCache(t testing.TB, e *Engine) (sets, bases int) {
	t.Helper()
	ctx := context.Background()
	e.mu.Lock()
	held := maps.Clone(e.sets)
	e.mu.Unlock()
	for req, es := range held {
		token, err := e.DB.SyncToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if token != es.token {
			continue // another write since: the next plan reads the entries again
		}
		sets++
		fresh, err := e.readEntrySet(ctx, req, token, es.tag, es.dg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := describeSet(es), describeSet(fresh); got != want {
			t.Fatalf("search %s: the engine's entries differ from a fresh read at token %s\n--- engine\n%s\n--- read\n%s", req, token, got, want)
		}
		if es.base == nil {
			continue
		}
		bases++
		want := fresh.marksFor(es.base.ix)
		for _, k := range []struct {
			name      string
			got, want []bool
		}{{"vmr", es.base.vmr, want.vmr}, {"device", es.base.device, want.device}, {"user", es.base.user, want.user}} {
			if !slices.Equal(k.got, k.want) {
				t.Fatalf("search %s: base marks of the %ss differ from marks computed afresh\n%v\n%v", req, k.name, k.got, k.want)
			}
		}
	}
	return sets, bases
}

// describeSet is an entry set as text, the same for the same multiset of entries.
func describeSet(es *entrySet) string {
	var lines []string
	for o, m := range es.one {
		lines = append(lines, fmt.Sprintf("%x %x", o, m))
	}
	for o, ms := range es.more {
		for _, m := range ms {
			lines = append(lines, fmt.Sprintf("%x %x", o, m))
		}
	}
	slices.Sort(lines)
	return fmt.Sprintf("%d entries, pending %v\n%s", es.n, es.pendingIDs(), slices.Concat(lines))
}

// TestSyncCacheEqualsRead: over random histories of directory changes planned and
// applied by one engine, the entries it keeps (updated in place from its own applies)
// and their base marks equal a fresh read after every apply, and they are used: most
// cycles find them at the stored token.
func TestSyncCacheEqualsRead(t *testing.T) {
	seeds, cycles := 4, 16
	if testing.Short() {
		seeds = 2
	}
	checked, withBase := 0, 0
	for seed := int64(1); seed <= int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		ps, next := randomPeople(rng, 30)
		s := newSyncHarness(t, ps)
		for cycle := range cycles {
			for range 1 + rng.Intn(3) {
				ps = mutate(rng, ps, &next)
			}
			s.dir.Update(syncLDIF(ps))
			p := s.planWith(s.inc, "c1")
			s.applyPlan(p)
			n, b := checkSyncCache(t, s.inc)
			if n != 1 && cycle > 0 {
				t.Fatalf("seed %d cycle %d: the engine holds no entries at the stored token after its own apply (%+v)", seed, cycle, p.SyncReads())
			}
			checked += n
			withBase += b
		}
	}
	if withBase < checked*3/4 {
		t.Errorf("only %d of %d checked entry sets had base marks", withBase, checked)
	}
}

// TestSyncCacheOtherWriter: a write of sync_entries by another process is detected by the
// sync token — after the engine's own read, and between its plan and its apply — and the
// engine reads the entries again instead of planning with what it holds.
func TestSyncCacheOtherWriter(t *testing.T) {
	ps := []syncPerson{
		{id: "00000001-0000-4000-8000-000000000000", uid: "ann", given: "Ann", sn: "Lee", mail: "ann@example.com"},
		{id: "00000002-0000-4000-8000-000000000000", uid: "bo", given: "Bo", sn: "Kim", mail: "bo@example.com"},
		{id: "00000003-0000-4000-8000-000000000000", uid: "cy", given: "Cy", sn: "Roe", mail: "cy@example.com"},
	}
	s := newSyncHarness(t, ps)
	a := s.inc
	s.applyPlan(s.planWith(a, "c1")) // the full read
	s.applyPlan(s.planWith(a, "c1")) // incremental: a holds the entries
	if n, _ := checkSyncCache(t, a); n != 1 {
		t.Fatal("the engine holds no entries after an incremental cycle")
	}

	// Another process renames ann (her key changes) and applies it.
	s.restart()
	b := s.inc
	ps[0].uid = "ann2"
	s.dir.Update(syncLDIF(ps))
	s.applyPlan(s.planWith(b, "c1"))
	// a's next cycle has no change to read; with ann's old key it would delete her objects.
	s.inc = a
	got, want := s.planWith(a, "c1"), s.planWith(s.full, "c1")
	if g, w := planDigest(got), planDigest(want); g != w || got.HasChanges() {
		t.Fatalf("after another process's write the plan differs from a full read's\n--- incremental\n%s\n--- full\n%s", g, w)
	}
	s.applyPlan(got)
	if n, _ := checkSyncCache(t, a); n != 1 {
		t.Fatal("the engine did not read the entries again")
	}

	// Between a's plan and its apply, another writer marks cy pending (no object
	// changes, so the apply is not stale): a's apply records a token a does not expect.
	ps[1].sn = "Fox"
	s.dir.Update(syncLDIF(ps))
	p := s.planWith(a, "c1")
	if err := s.db.InTx(context.Background(), func(tx *sqlx.Tx) error {
		cs, err := s.db.SyncCookies(context.Background())
		if err != nil || len(cs) != 1 {
			return fmt.Errorf("cookies %v: %w", cs, err)
		}
		for _, c := range cs {
			return state.PutSync(context.Background(), tx, s.now, state.SyncWrite{Cookie: c,
				Entries: []state.SyncEntry{{UUID: ps[2].id, Key: ps[2].uid, Email: ps[2].mail, Pending: true}}})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.applyPlan(p)
	if n, _ := checkSyncCache(t, a); n != 0 {
		t.Fatal("after another writer came between the plan and its apply the engine still holds the entries at the stored token")
	}
	got = s.planWith(a, "c1")
	if r := got.SyncReads(); len(r) != 1 || r[0].Mode != ReadIncremental || r[0].Pending != 1 {
		t.Fatalf("the entry the other writer made pending is not read again: %+v", r)
	}
	if n, _ := checkSyncCache(t, a); n != 1 {
		t.Fatal("the engine did not read the entries again")
	}
}

// TestPosTableRemove: random insertions and removals in a small table, with hashes that
// crowd a few home slots and runs that wrap around its end, leave every position held
// found by its hash, and no other.
func TestPosTableRemove(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		hashes := make([]uint64, 12) // position → hash
		for i := range hashes {
			hashes[i] = uint64(12 + rng.Intn(8)) // homes 12..19: runs wrap past slot 15
		}
		tab := newPosTable(len(hashes)) // 32 slots
		tab = posTable{slots: tab.slots[:16], mask: 15}
		held := map[int32]bool{}
		for range 200 {
			p := int32(rng.Intn(len(hashes)))
			if held[p] {
				if !tab.remove(p, hashes[p]) {
					t.Fatalf("seed %d: remove %d: not found", seed, p)
				}
				delete(held, p)
			} else {
				tab.insert(hashes[p], p)
				held[p] = true
			}
			n := 0
			for _, s := range tab.slots {
				if s.pos != 0 {
					n++
					if !held[s.pos-1] || s.hash() != hashes[s.pos-1] {
						t.Fatalf("seed %d: the table holds %d (hash %d), removed or hashed otherwise", seed, s.pos-1, s.hash())
					}
				}
			}
			if n != len(held) {
				t.Fatalf("seed %d: the table holds %d positions, want %d", seed, n, len(held))
			}
			for q := range held {
				if _, ok := tab.find(hashes[q], func(i int32) bool { return i == q }); !ok {
					t.Fatalf("seed %d: %d is not found by its hash after the removals", seed, q)
				}
			}
		}
		if tab.remove(99, 3) {
			t.Fatalf("seed %d: removed a position the table does not hold", seed)
		}
	}
}
