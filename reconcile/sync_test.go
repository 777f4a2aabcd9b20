package reconcile

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/synctest"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// syncPerson is a directory entry with a stable id apart from its key (uid), so a rename
// changes the key and keeps the id.
type syncPerson struct {
	id, uid, given, sn, mail, phone string
	disabled, out                   bool // out: no longer matched by the template's filter
}

// ldif is the harness's person record with this id, and out of the filter when out.
func (p syncPerson) ldif() string {
	rec := person{uid: p.uid, given: p.given, sn: p.sn, mail: p.mail, phone: p.phone, disabled: p.disabled}.ldif()
	rec = strings.Replace(rec, "entryUUID: uuid-"+p.uid, "entryUUID: "+p.id, 1)
	if p.out {
		rec = strings.Replace(rec, "objectClass: inetOrgPerson", "objectClass: person", 1)
	}
	return strings.TrimSuffix(rec, "\n")
}

func syncLDIF(ps []syncPerson) []byte {
	var b strings.Builder
	b.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	for _, p := range ps {
		b.WriteString(p.ldif())
		b.WriteString("\n")
	}
	return []byte(b.String())
}

// syncHarness is the harness with the staff template keyed by uid, over a synctest.Dir:
// inc plans incrementally, full reads everything as commands do.
type syncHarness struct {
	*harness
	dir       *synctest.Dir
	inc, full *Engine
	repo      *schema.Repo // loaded once: every cycle is at one commit
}

func newSyncHarness(t testing.TB, ps []syncPerson) *syncHarness {
	h := newHarness(t)
	h.write("templates/staff.yaml", strings.Replace(staffTemplate, "key_attribute: entryUUID", "key_attribute: uid", 1))
	h.cfg.Directories["corp"] = schema.DirConfig{LDIF: "directory.ldif", BaseDN: "dc=example,dc=com", PageSize: 1000,
		Sync: schema.SyncAuto, FullRead: schema.Duration{Duration: 24 * 3600e9}}
	s := &syncHarness{harness: h, dir: synctest.New("dc=example,dc=com", syncLDIF(ps))}
	open := func(string, schema.DirConfig, *schema.Repo) (directory.Directory, error) { return s.dir, nil }
	s.inc, s.full = h.engine(), h.engine()
	s.inc.Incremental, s.inc.OpenDirectory, s.full.OpenDirectory = true, open, open
	return s
}

// restart is a new daemon process: a new engine over the same database.
func (s *syncHarness) restart() {
	open := s.inc.OpenDirectory
	s.inc = s.harness.engine()
	s.inc.Incremental, s.inc.OpenDirectory = true, open
}

func (s *syncHarness) planWith(e *Engine, commit string) *Plan {
	s.t.Helper()
	if s.repo == nil {
		s.repo = s.loadRepo()
	}
	p, err := e.Plan(context.Background(), s.repo, commit)
	if err != nil {
		s.t.Fatalf("plan: %v", err)
	}
	return p
}

func (s *syncHarness) applyPlan(p *Plan) {
	s.t.Helper()
	if _, err := Apply(context.Background(), s.db, p, ApplyOptions{Actor: "test", Now: s.now}, true); err != nil {
		s.t.Fatalf("apply: %v", err)
	}
}

// planDigest is what a plan does, for comparing an incremental plan with a full one: its
// changes with their fields, its emails, the warnings that skip objects, its counts.
func planDigest(p *Plan) string {
	var lines []string
	for _, c := range p.All() {
		l := fmt.Sprintf("change %s %s %s %s", c.Action, c.Kind, c.Template, c.Key)
		for _, f := range c.Fields {
			l += fmt.Sprintf(" %s:%v→%v", f.Name, f.Old, f.New)
		}
		lines = append(lines, l)
	}
	for _, e := range p.Emails() {
		lines = append(lines, fmt.Sprintf("email %s %s %s %s", e.Kind, e.Action, e.To, e.Key))
	}
	for _, w := range p.Warnings {
		if w.Code != "no_email" { // an entry's own notice: shown by full reads only
			lines = append(lines, "warning "+w.Code+" "+w.Key+" "+w.Message)
		}
	}
	for _, e := range p.Errors {
		lines = append(lines, "error "+e.Message)
	}
	slices.Sort(lines)
	lines = append(lines, fmt.Sprintf("summary %+v safety %+v", p.Summary, p.Safety))
	return strings.Join(lines, "\n")
}

// mutate applies a random change to the people: add, modify, rename (key change), delete,
// disable / enable, move out of the filter and back. Names, phones and emails come from
// small pools so that clashes, duplicates and their resolution happen.
func mutate(rng *rand.Rand, ps []syncPerson, next *int) []syncPerson {
	given := []string{"Ann", "Bo", "Cy", "Di", "Ed"}
	sn := []string{"Lee", "Kim", "Roe", "Fox"}
	phone := func() string {
		if rng.Intn(4) == 0 {
			return ""
		}
		return fmt.Sprintf("+44 20 7946 %04d", rng.Intn(12))
	}
	mail := func(uid string) string {
		switch rng.Intn(10) {
		case 0:
			return ""
		case 1:
			return fmt.Sprintf("shared%d@example.com", rng.Intn(2))
		}
		return uid + "@example.com"
	}
	newPerson := func() syncPerson {
		*next++
		uid := fmt.Sprintf("u%03d", *next)
		return syncPerson{id: fmt.Sprintf("0000%04d-0000-4000-8000-000000000000", *next), uid: uid,
			given: given[rng.Intn(len(given))], sn: sn[rng.Intn(len(sn))], mail: mail(uid), phone: phone()}
	}
	if len(ps) == 0 || rng.Intn(6) == 0 {
		return append(ps, newPerson())
	}
	i := rng.Intn(len(ps))
	p := &ps[i]
	switch rng.Intn(8) {
	case 0:
		return slices.Delete(ps, i, i+1)
	case 1:
		*next++
		p.uid = fmt.Sprintf("r%03d", *next) // rename: the key changes, the id stays
	case 2:
		p.disabled = !p.disabled
	case 3:
		p.out = !p.out
	case 4:
		p.sn = sn[rng.Intn(len(sn))]
	case 5:
		p.phone = phone()
	case 6:
		p.mail = mail(p.uid)
	default:
		p.given = given[rng.Intn(len(given))]
	}
	return ps
}

// randomPeople is n random changes from no one, and the counter mutate goes on with.
func randomPeople(rng *rand.Rand, n int) ([]syncPerson, int) {
	next := 0
	var ps []syncPerson
	for range n {
		ps = mutate(rng, ps, &next)
	}
	return ps, next
}

// TestPropertyIncrementalEqualsFull: over random change histories — several changes per
// cycle, an entry changed twice in one cycle, clashes that resolve later, restarts and
// cycles that never commit (a crash between receiving changes and committing) — the
// plan of every incremental cycle equals the plan of a full read of the same directory
// and state, and applying it leaves nothing for a full read to do.
func TestPropertyIncrementalEqualsFull(t *testing.T) {
	seeds, cycles := 6, 12
	if testing.Short() {
		seeds = 2
	}
	incremental, refreshed := 0, 0
	for seed := int64(1); seed <= int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		ps, next := randomPeople(rng, 24)
		s := newSyncHarness(t, ps)
		committed := false // the last cycle committed, with a cookie the directory still accepts
		for cycle := range cycles {
			for range 1 + rng.Intn(4) {
				ps = mutate(rng, ps, &next)
			}
			if rng.Intn(3) == 0 { // a second change of the same entries within the cycle
				s.dir.Update(syncLDIF(ps))
				for range 1 + rng.Intn(2) {
					ps = mutate(rng, ps, &next)
				}
			}
			s.dir.Update(syncLDIF(ps))
			got := s.cycle(fmt.Sprintf("seed %d cycle %d", seed, cycle), committed, &incremental)
			planner := s.inc
			switch rng.Intn(6) {
			case 0: // killed before the commit: the changes come again
				s.restart()
				committed = false
				continue
			case 1:
				s.restart()
			}
			s.applyPlan(got)
			if got.HasChanges() && checkRefreshedIndex(t, planner) {
				refreshed++
			}
			checkSyncCache(t, planner)
			committed = true
			if rng.Intn(10) == 0 {
				s.dir.Expire() // the server forgets the session: the next cycle reads in full
				committed = false
			}
		}
		// Quiet cycles settle what the last changes left (a clash freed by a deletion);
		// then a full read finds nothing to do.
		for range 4 {
			want, got := s.planWith(s.full, "c1"), s.planWith(s.inc, "c1")
			if g, w := planDigest(got), planDigest(want); g != w {
				t.Fatalf("seed %d, settling: incremental plan differs from the full read's\n--- incremental\n%s\n--- full\n%s", seed, g, w)
			}
			if !got.HasChanges() {
				break
			}
			s.applyPlan(got)
		}
		if p := s.planWith(s.full, "c1"); p.HasChanges() {
			t.Fatalf("seed %d: a full read after the incremental cycles still changes: %v", seed, changes(p))
		}
	}
	if incremental < seeds*cycles/2 {
		t.Errorf("only %d of %d cycles were incremental", incremental, seeds*cycles)
	}
	if refreshed < seeds*cycles/4 {
		t.Errorf("only %d applied cycles left a refreshed index", refreshed)
	}
}

// TestIncrementalKilledBeforeCommit: a process that received a directory change and was
// killed (SIGKILL) inside the apply's transaction, before its commit, stored neither the
// change nor the cookie: the next cycle gets the change again and applies it, and a full
// read then finds nothing to do.
func TestIncrementalKilledBeforeCommit(t *testing.T) {
	if os.Getenv("ROSTER_SYNC_CRASH_CHILD") != "" {
		crashChild(t)
		return
	}
	dir := t.TempDir()
	ps := []syncPerson{
		{id: "00000001-0000-4000-8000-000000000000", uid: "ann", given: "Ann", sn: "Lee", mail: "ann@example.com", phone: "+44 20 7946 0001"},
		{id: "00000002-0000-4000-8000-000000000000", uid: "bo", given: "Bo", sn: "Kim", mail: "bo@example.com", phone: "+44 20 7946 0002"},
	}
	v1 := syncLDIF(ps)
	ann := ps[0]
	ann.sn = "Fox"
	v2 := syncLDIF([]syncPerson{ann}) // ann's surname changed, bo deleted
	for name, data := range map[string][]byte{"v1.ldif": v1, "v2.ldif": v2} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newCrashHarness(t, dir, v1)
	s.applyPlan(s.planWith(s.inc, "c1")) // the full read at v1, cookie stored
	cookie := func() string {
		cs, err := s.db.SyncCookies(context.Background())
		if err != nil || len(cs) != 1 {
			t.Fatalf("cookies %v: %v", cs, err)
		}
		for _, c := range cs {
			return string(c.Cookie)
		}
		return ""
	}
	before, version := cookie(), s.count(`SELECT CAST(value AS INTEGER) FROM meta WHERE key='state_version'`)

	cmd := exec.Command(os.Args[0], "-test.run=^TestIncrementalKilledBeforeCommit$", "-test.v=false")
	cmd.Env = append(os.Environ(), "ROSTER_SYNC_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		buf := make([]byte, 64)
		var got []byte
		for {
			n, err := out.Read(buf)
			got = append(got, buf[:n]...)
			if strings.Contains(string(got), "IN-TX") {
				ready <- true
				return
			}
			if err != nil {
				ready <- false
				return
			}
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatal("the child ended before its apply's commit")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child did not reach its commit")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if got := cookie(); got != before {
		t.Fatalf("the cookie moved to %q though the apply never committed", got)
	}
	if v := s.count(`SELECT CAST(value AS INTEGER) FROM meta WHERE key='state_version'`); v != version {
		t.Fatalf("state version %d → %d without a commit", version, v)
	}
	// The next cycle (a new process) gets the change again.
	s.dir.Update(v2)
	s.restart()
	p := s.planWith(s.inc, "c1")
	if r := p.SyncReads(); len(r) != 1 || r[0].Mode != ReadIncremental || r[0].Changes != 2 {
		t.Fatalf("after the crash: reads %+v", r)
	}
	if !contains(changes(p), "delete vmr Bo Kim VMR") || !contains(changes(p), "update vmr Ann Fox VMR") {
		t.Fatalf("after the crash the changes are not planned again: %v", changes(p))
	}
	s.applyPlan(p)
	if p := s.planWith(s.full, "c1"); p.HasChanges() {
		t.Fatalf("a full read still changes: %v", changes(p))
	}
}

// newCrashHarness is a syncHarness over a database file in dir (shared with the child).
func newCrashHarness(t *testing.T, dir string, ldif []byte) *syncHarness {
	db, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := newSyncHarness(t, nil)
	s.db.Close()
	s.db = db
	t.Cleanup(func() { db.Close() })
	s.dir = synctest.New("dc=example,dc=com", ldif)
	open := func(string, schema.DirConfig, *schema.Repo) (directory.Directory, error) { return s.dir, nil }
	s.inc, s.full = s.engine(), s.engine()
	s.inc.Incremental, s.inc.OpenDirectory, s.full.OpenDirectory = true, open, open
	return s
}

// crashChild plans the change from v1 to v2 and stops inside the apply's transaction.
func crashChild(t *testing.T) {
	dir := os.Getenv("ROSTER_SYNC_CRASH_CHILD")
	v1, err := os.ReadFile(filepath.Join(dir, "v1.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := os.ReadFile(filepath.Join(dir, "v2.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	s := newCrashHarness(t, dir, v1)
	s.dir.Update(v2)
	p := s.planWith(s.inc, "c1")
	if !p.HasChanges() {
		t.Fatal("child: no change planned")
	}
	beforeCommit = func() {
		fmt.Println("IN-TX")
		os.Stdout.Sync()
		time.Sleep(time.Hour)
	}
	s.applyPlan(p)
}

// cycle plans incrementally and in full, fails unless the plans are the same, counts an
// incremental read in *incremental, fails on a full read after a committed cycle, and
// returns the incremental plan.
func (s *syncHarness) cycle(what string, committed bool, incremental *int) *Plan {
	s.t.Helper()
	want := s.planWith(s.full, "c1")
	got := s.planWith(s.inc, "c1")
	if g, w := planDigest(got), planDigest(want); g != w {
		s.t.Fatalf("%s: incremental plan (%+v) differs from the full read's\n--- incremental\n%s\n--- full\n%s", what, got.SyncReads(), g, w)
	}
	if r := got.SyncReads(); len(r) != 1 {
		s.t.Fatalf("%s: sync reads %+v", what, r)
	} else if r[0].Mode == ReadIncremental {
		*incremental++
	} else if committed {
		s.t.Fatalf("%s: read in full after a committed cycle: %+v", what, r[0])
	}
	return got
}

// checkRefreshedIndex: when the engine holds an index of the current state version (one
// refreshed after its own apply), it equals the index a full load gives with the same
// digester. Returns whether there was one to check.
func checkRefreshedIndex(t testing.TB, e *Engine) bool {
	t.Helper()
	e.mu.Lock()
	c := e.index
	e.mu.Unlock()
	ctx := context.Background()
	if c == nil {
		return false
	}
	if v, err := e.DB.StateVersion(ctx); err != nil || v != c.ix.Small.StateVersion {
		return false
	}
	want, err := e.DB.LoadIndex(ctx, c.dg.spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ix.VMRs, want.VMRs) || !slices.Equal(c.ix.Devices, want.Devices) ||
		!slices.Equal(c.ix.Users, want.Users) || !reflect.DeepEqual(c.ix.Totals, want.Totals) ||
		c.ix.Small.MaxUserSeq != want.Small.MaxUserSeq || c.ix.Small.StateVersion != want.Small.StateVersion {
		t.Fatalf("the refreshed index differs from a full load: max user seq %d, want %d; totals %+v, want %+v; objects\n%+v\n%+v\n%+v\nwant\n%+v\n%+v\n%+v",
			c.ix.Small.MaxUserSeq, want.Small.MaxUserSeq, c.ix.Totals, want.Totals, c.ix.VMRs, c.ix.Devices, c.ix.Users, want.VMRs, want.Devices, want.Users)
	}
	if c.tables != nil { // moved from the index before the apply (movedTables)
		checkTables(t, c.tables, c.ix, c.dg)
	}
	return true
}

// checkTables: the lookup tables of ix hold every position of ix once, each found by
// its hash, and nothing else.
func checkTables(t testing.TB, tables *refTables, ix *state.Index, dg *digester) {
	t.Helper()
	for _, k := range []struct {
		name string
		t    posTable
		n    int
		hash func(int) uint64
	}{
		{"vmr", tables.vmrs, len(ix.VMRs), func(i int) uint64 { return ix.VMRs[i].Owner }},
		{"device", tables.devices, len(ix.Devices), func(i int) uint64 { return ix.Devices[i].Owner }},
		{"user", tables.users, len(ix.Users), func(i int) uint64 { return dg.email(ix.Users[i].Email()) }},
	} {
		held := 0
		for _, p := range k.t.slots {
			if p.pos != 0 {
				held++
			}
		}
		if held != k.n {
			t.Fatalf("the %s table holds %d positions for %d objects", k.name, held, k.n)
		}
		for i := range k.n {
			if _, ok := k.t.find(k.hash(i), func(p int32) bool { return p == int32(i) }); !ok {
				t.Fatalf("the %s table does not find position %d by its hash", k.name, i)
			}
		}
	}
}
