package reconcile

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/synctest"
	"github.com/roster-dev/roster/schema"
)

// syncPerson is a directory entry with a stable id apart from its key (uid), so a rename
// changes the key and keeps the id.
type syncPerson struct {
	id, uid, given, sn, mail, phone string
	disabled, out                   bool // out: no longer matched by the template's filter
}

func (p syncPerson) ldif() string {
	var b strings.Builder
	class := "inetOrgPerson"
	if p.out {
		class = "person"
	}
	fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: %s\nuid: %s\ncn: %s %s\ngivenName: %s\nsn: %s\n",
		p.uid, class, p.uid, p.given, p.sn, p.given, p.sn)
	if p.mail != "" {
		fmt.Fprintf(&b, "mail: %s\n", p.mail)
	}
	if p.phone != "" {
		fmt.Fprintf(&b, "telephoneNumber: %s\n", p.phone)
	}
	typ := "staff"
	if p.disabled {
		typ = "disabled"
	}
	fmt.Fprintf(&b, "employeeType: %s\nentryUUID: %s\n", typ, p.id)
	return b.String()
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
	for _, e := range p.Emails {
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
	incremental := 0
	for seed := int64(1); seed <= int64(seeds); seed++ {
		rng := rand.New(rand.NewSource(seed))
		next := 0
		var ps []syncPerson
		for range 24 {
			ps = mutate(rng, ps, &next)
		}
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
			want := s.planWith(s.full, "c1")
			got := s.planWith(s.inc, "c1")
			if g, w := planDigest(got), planDigest(want); g != w {
				t.Fatalf("seed %d cycle %d: incremental plan (%+v) differs from the full read's\n--- incremental\n%s\n--- full\n%s",
					seed, cycle, got.SyncReads(), g, w)
			}
			if r := got.SyncReads(); len(r) != 1 {
				t.Fatalf("seed %d cycle %d: sync reads %+v", seed, cycle, r)
			} else if r[0].Mode == ReadIncremental {
				incremental++
			} else if committed {
				t.Fatalf("seed %d cycle %d: read in full after a committed cycle: %+v", seed, cycle, r[0])
			}
			switch rng.Intn(6) {
			case 0: // killed before the commit: the changes come again
				s.restart()
				committed = false
				continue
			case 1:
				s.restart()
			}
			s.applyPlan(got)
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
}
