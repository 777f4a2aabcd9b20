package reconcile

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/roster-dev/roster/schema"
)

// planAll is planDigest with every warning (a full read's no_email notices included) and
// the per-template counts: what a plan with the render cache must equal exactly.
func planAll(p *Plan) string {
	var b strings.Builder
	b.WriteString(planDigest(p))
	for _, w := range p.Warnings {
		if w.Code == "no_email" {
			b.WriteString("\nwarning " + w.Code + " " + w.Key)
		}
	}
	fmt.Fprintf(&b, "\ntemplates %+v licences %+v fingerprint %s", p.Templates, p.Licenses, p.Fingerprint)
	return b.String()
}

// cacheHarness plans one history with and without the render cache.
type cacheHarness struct {
	*harness
	next int
	ps   []syncPerson
}

func (c *cacheHarness) planBy(e *Engine, repo *schema.Repo) *Plan {
	c.t.Helper()
	p, err := e.Plan(context.Background(), repo, "") // a folder's commit: the cache must not lean on it
	if err != nil {
		c.t.Fatalf("plan: %v", err)
	}
	return p
}

func (c *cacheHarness) applyPlan(p *Plan) {
	c.t.Helper()
	if _, err := Apply(context.Background(), c.db, p, ApplyOptions{Actor: "test", Now: c.now}, true); err != nil {
		c.t.Fatalf("apply: %v", err)
	}
}

// edit changes the repo at random: the template's patterns or overridable fields,
// overrides.yaml, users/*.csv sharing directory emails.
func (c *cacheHarness) edit(rng *rand.Rand) {
	tmpl := strings.Replace(staffTemplate, "key_attribute: entryUUID", "key_attribute: uid", 1)
	switch rng.Intn(7) {
	case 0:
		tmpl = strings.Replace(tmpl, `description: "Room of {{cn}}"`, `description: "Room for {{cn}}"`, 1)
		c.write("templates/staff.yaml", tmpl)
	case 1:
		tmpl = strings.Replace(tmpl, "overridable: [pin_settings]", "overridable: [pin_settings, description]", 1)
		c.write("templates/staff.yaml", tmpl)
	case 2:
		c.write("templates/staff.yaml", tmpl)
	case 3:
		if len(c.ps) > 0 {
			p := c.ps[rng.Intn(len(c.ps))]
			c.write("overrides.yaml", fmt.Sprintf("vmrs:\n  \"%s %s VMR\": {pin: \"%d\"}\n", p.given, p.sn, 100000+rng.Intn(2)))
		}
	case 4:
		c.remove("overrides.yaml")
	case 5:
		csv := usersHeader
		for _, email := range []string{"local1@example.com", "shared0@example.com", fmt.Sprintf("u%03d@example.com", 1+rng.Intn(c.next+1))} {
			if rng.Intn(2) == 0 {
				csv += fmt.Sprintf(",Y,Lo%d,Cal,%s,en-us,HOST,London,,,,,,,,,,\n", rng.Intn(2), email)
			}
		}
		c.write("users/local.csv", csv)
	case 6:
		c.remove("users/local.csv")
	}
}

// TestPropertyRenderCacheEqualsFullRender: over random histories of the directory
// (people added, renamed, deleted, disabled, out of the filter, their mail changed or
// shared: clashes and duplicates) and of the repo (template edits, overridable fields,
// overrides, CSV users taking directory emails), with generated PINs and passwords, the
// plan of an engine that skips the entries its render cache holds equals, change for
// change and count for count, the plan of an engine that renders every entry. Applies by
// either engine, no-op plans that write the cache, and writes the cache does not follow
// all happen along the way; the cache must have skipped entries for the test to count.
func TestPropertyRenderCacheEqualsFullRender(t *testing.T) {
	seeds, steps := 10, 10
	if testing.Short() {
		seeds = 3
	}
	hits, late, plans := 0, 0, 0
	var aheadHits int64
	defer func(n int) { lateSingles = n }(lateSingles)
	for seed := int64(1); seed <= int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		lateSingles = int(seed % 3) // late digests read all at once, after one, after two
		c := &cacheHarness{harness: newHarness(t)}
		c.write("templates/staff.yaml", strings.Replace(staffTemplate, "key_attribute: entryUUID", "key_attribute: uid", 1))
		for range 10 {
			c.ps = mutate(rng, c.ps, &c.next)
		}
		for step := range steps {
			if step > 0 {
				for range rng.Intn(4) {
					c.ps = mutate(rng, c.ps, &c.next)
				}
				if rng.Intn(3) == 0 {
					c.edit(rng)
				}
			}
			c.write("directory.ldif", string(syncLDIF(c.ps)))
			repo := c.loadRepo()
			cached, full, ahead := c.engine(), c.engine(), c.engine()
			full.NoRenderCache = true
			ahead.aheadAlways = true
			for round := 0; round < 2; round++ { // the second round: the cache a no-op plan wrote
				want, got := c.planBy(full, repo), c.planBy(cached, repo)
				plans++
				hits, late = hits+got.cached, late+got.late
				if g, w := planAll(got), planAll(want); g != w {
					t.Fatalf("seed %d step %d round %d: the plan with the render cache (%d entries skipped) differs from a full render's\n--- cached\n%s\n--- full\n%s",
						seed, step, round, got.cached, g, w)
				}
				// the same cache, its entries skipped ahead of the index
				if g, w := planAll(c.planBy(ahead, repo)), planAll(want); g != w {
					t.Fatalf("seed %d step %d round %d: the plan skipping ahead of the index differs from a full render's\n--- ahead\n%s\n--- full\n%s",
						seed, step, round, g, w)
				}
				aheadHits += ahead.aheadHits
				ahead.aheadHits = 0
				if got.HasChanges() {
					switch rng.Intn(4) {
					case 0: // applied by a process without the cache: the file is stale now
						c.applyPlan(want)
					default:
						c.applyPlan(got)
					}
					break
				}
			}
		}
	}
	t.Logf("%d plans, %d entries skipped by the render cache (%d ahead of the index), %d digests read late", plans, hits, aheadHits, late)
	if hits == 0 || late == 0 || aheadHits == 0 {
		t.Fatal("the render cache never skipped an entry, or no digest was read late: the property was not exercised")
	}
}

// TestRenderCacheStale: a cache file is used only at its state version with the token the
// database holds; a torn, edited, older or disowned file is ignored and the plan renders
// every entry, with the same result.
func TestRenderCacheStale(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	h.mustApply()
	path := renderCachePath(h.db.Path)
	valid, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the apply wrote no render cache: %v", err)
	}
	flip := func(b []byte, at int) []byte { b = append([]byte(nil), b...); b[at] ^= 1; return b }
	tests := []struct {
		name string
		file []byte
		hits int
	}{
		{"valid", valid, 3},
		{"torn", valid[:len(valid)-9], 0},
		{"an entry's hash changed", flip(valid, len(valid)-20), 0},
		{"the token changed", flip(valid, 25), 0},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			p := h.plan()
			if p.HasChanges() || p.cached != tt.hits {
				t.Fatalf("plan: %v, %d entries skipped; want no change, %d skipped", changes(p), p.cached, tt.hits)
			}
		})
	}
	// The plan that found the file empty wrote it anew: the next one skips everything.
	if p := h.plan(); p.cached != 3 {
		t.Fatalf("after a no-op plan rewrote the cache: %d entries skipped, want 3", p.cached)
	}
	older, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A file the database does not name (its meta row holds another token).
	v, _, err := h.db.RenderCacheToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.db.SetRenderCacheToken(context.Background(), v, "another"); err != nil || !ok {
		t.Fatalf("set token: %v %v", ok, err)
	}
	if p := h.plan(); p.cached != 0 || p.HasChanges() {
		t.Fatalf("a disowned cache skipped %d entries (changes %v)", p.cached, changes(p))
	}
	if ok, err := h.db.SetRenderCacheToken(context.Background(), v-1, "stale"); err != nil || ok {
		t.Fatalf("a token for an older state version was written: %v %v", ok, err)
	}
	// A file of an older state version.
	h.directory(alice, bob, carol, dave)
	h.mustApply()
	if err := os.WriteFile(path, older, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := h.plan(); p.cached != 0 || p.HasChanges() {
		t.Fatalf("a cache of an older state version skipped %d entries (changes %v)", p.cached, changes(p))
	}
}

// TestRenderCacheAbsentUser: a disabled person without account is skipped (it changes
// nothing), but when a rendered entry takes the same email the plan is made without the
// cache, so both are reported duplicates exactly as a full render reports them.
func TestRenderCacheAbsentUser(t *testing.T) {
	gone := person{uid: "gone", given: "Gone", sn: "Away", mail: "gone@example.com", disabled: true}
	h := newHarness(t, alice, gone)
	h.mustApply()
	if p := h.plan(); p.cached != 2 || p.HasChanges() {
		t.Fatalf("no-op plan: %d entries skipped, changes %v; want 2, none", p.cached, changes(p))
	}
	twin := person{uid: "twin", given: "Twin", sn: "Away", mail: "gone@example.com"}
	h.directory(alice, gone, twin)
	full := h.engine()
	full.NoRenderCache = true
	want, err := full.Plan(context.Background(), h.loadRepo(), fmt.Sprintf("c%03d", h.seq))
	if err != nil {
		t.Fatal(err)
	}
	got := h.plan()
	if g, w := planAll(got), planAll(want); g != w {
		t.Fatalf("cached plan differs from a full render's\n--- cached\n%s\n--- full\n%s", g, w)
	}
	if !contains(warningCodes(got), "duplicate_email gone@example.com") {
		t.Fatalf("warnings %v, want duplicate_email gone@example.com", warningCodes(got))
	}
}

// TestRenderCacheAheadMiss: an entry skipped ahead of the index whose object the index
// turns out not to hold (the cache names it, the row is gone at the same state version)
// would have been rendered; the plan is made again waiting for the index, and equals a
// full render's.
func TestRenderCacheAheadMiss(t *testing.T) {
	defer func(n int) { resolveApart = n }(resolveApart)
	for i, table := range []string{"vmrs", "devices", "users", "vmrs", "devices", "users"} {
		resolveApart = 1 << 30
		if i >= 3 {
			resolveApart = 0 // one goroutine a kind
		}
		t.Run(fmt.Sprintf("%s/apart=%v", table, i >= 3), func(t *testing.T) {
			h := newHarness(t, alice, bob, carol)
			h.mustApply()
			ahead := h.engine()
			ahead.aheadAlways = true
			repo := h.loadRepo()
			if p, err := ahead.Plan(context.Background(), repo, ""); err != nil || p.HasChanges() || ahead.aheadHits != 3 || ahead.aheadMisses != 0 {
				t.Fatalf("no-op plan: %v, changes %v, %d skipped ahead, %d misses; want 3 skipped, none missed", err, p != nil && p.HasChanges(), ahead.aheadHits, ahead.aheadMisses)
			}
			// behind the cache's back: the state version and the cache's token stay
			// (the emails referencing the row go first: the guard of migration 007 refuses
			// to delete a row an email still reads)
			if _, err := h.db.Exec(`PRAGMA foreign_keys = OFF; DELETE FROM outbox WHERE ref_id IS NOT NULL; DELETE FROM ` + table + ` WHERE id = (SELECT min(id) FROM ` + table + `)`); err != nil {
				t.Fatal(err)
			}
			full := h.engine()
			full.NoRenderCache = true
			want, err := full.Plan(context.Background(), repo, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := ahead.Plan(context.Background(), repo, "")
			if err != nil {
				t.Fatal(err)
			}
			if !got.HasChanges() || ahead.aheadMisses != 1 {
				t.Fatalf("after deleting a row of %s: changes %v, %d plans made again; want changes, 1", table, changes(got), ahead.aheadMisses)
			}
			if g, w := planAll(got), planAll(want); g != w {
				t.Fatalf("the plan made again differs from a full render's\n--- ahead\n%s\n--- full\n%s", g, w)
			}
		})
	}
}
