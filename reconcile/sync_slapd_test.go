package reconcile

import (
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
	"github.com/roster-dev/roster/schema"
)

// slapdDN is where a person lives in the slapd of TestPropertyIncrementalEqualsFullSlapd:
// under ou=people (the template's search base), or under ou=gone when moved out of it.
func slapdDN(p syncPerson) string {
	ou := "people"
	if p.out {
		ou = "gone"
	}
	return fmt.Sprintf("uid=%s,ou=%s,dc=example,dc=com", p.uid, ou)
}

// slapdAttrs are the person's attributes as the harness's LDIF has them (entryUUID is
// slapd's own).
func slapdAttrs(p syncPerson) map[string][]string {
	typ := "staff"
	if p.disabled {
		typ = "disabled"
	}
	a := map[string][]string{"cn": {p.given + " " + p.sn}, "givenName": {p.given}, "sn": {p.sn}, "employeeType": {typ},
		"mail": nil, "telephoneNumber": nil}
	if p.mail != "" {
		a["mail"] = []string{p.mail}
	}
	if p.phone != "" {
		a["telephoneNumber"] = []string{p.phone}
	}
	return a
}

// writeSlapd makes slapd hold want instead of had, by LDAP writes as an administrator
// would make them: add, delete, modrdn (a rename, or a move out of the search base and
// back with newSuperior), modify of the changed attributes (a disable is employeeType).
func writeSlapd(t *testing.T, c *ldap.Conn, had, want []syncPerson) {
	t.Helper()
	old := map[string]syncPerson{}
	for _, p := range had {
		old[p.id] = p
	}
	for _, p := range want {
		o, ok := old[p.id]
		delete(old, p.id)
		if !ok {
			req := ldap.NewAddRequest(slapdDN(p), nil)
			req.Attribute("objectClass", []string{"inetOrgPerson"})
			req.Attribute("uid", []string{p.uid})
			for name, vals := range slapdAttrs(p) {
				if len(vals) > 0 {
					req.Attribute(name, vals)
				}
			}
			if err := c.Add(req); err != nil {
				t.Fatalf("add %s: %v", slapdDN(p), err)
			}
			continue
		}
		if o.uid != p.uid || o.out != p.out {
			sup := ""
			if o.out != p.out {
				sup = strings.SplitN(slapdDN(p), ",", 2)[1]
			}
			if err := c.ModifyDN(ldap.NewModifyDNRequest(slapdDN(o), "uid="+p.uid, true, sup)); err != nil {
				t.Fatalf("modrdn %s → %s: %v", slapdDN(o), slapdDN(p), err)
			}
		}
		req := ldap.NewModifyRequest(slapdDN(p), nil)
		oa := slapdAttrs(o)
		for name, vals := range slapdAttrs(p) {
			if strings.Join(vals, "\n") == strings.Join(oa[name], "\n") {
				continue
			}
			if len(vals) == 0 {
				req.Delete(name, nil)
			} else {
				req.Replace(name, vals)
			}
		}
		if len(req.Changes) > 0 {
			if err := c.Modify(req); err != nil {
				t.Fatalf("modify %s: %v", slapdDN(p), err)
			}
		}
	}
	for _, o := range old {
		if err := c.Del(ldap.NewDelRequest(slapdDN(o), nil)); err != nil {
			t.Fatalf("delete %s: %v", slapdDN(o), err)
		}
	}
}

// TestPropertyIncrementalEqualsFullSlapd is TestPropertyIncrementalEqualsFull against a
// real slapd with the syncprov overlay, with a session log (deletions come as delete
// states) and without (deletions come through the present phase): random change histories
// written over LDAP — add, modify, rename (modrdn), delete, disable / enable, a move out of
// the search base and back, an entry changed twice within one cycle, daemon restarts,
// cycles killed before their commit, slapd restarted (the cookie kept) — and the plan of
// every incremental cycle equals the plan of a full read of the same directory and state.
// make test runs a few short histories; ROSTER_BENCH (make bench) more and longer ones.
func TestPropertyIncrementalEqualsFullSlapd(t *testing.T) {
	seeds, cycles := 2, 8
	if os.Getenv("ROSTER_BENCH") != "" {
		seeds, cycles = 6, 25
	}
	for _, sessionLog := range []int{0, 100} {
		t.Run(fmt.Sprintf("sessionlog=%d", sessionLog), func(t *testing.T) {
			incremental := 0
			for seed := int64(1); seed <= int64(seeds); seed++ {
				incremental += slapdHistory(t, seed, cycles, sessionLog)
			}
			t.Logf("%d of %d cycles incremental", incremental, seeds*cycles)
			if incremental < seeds*cycles/2 {
				t.Errorf("only %d of %d cycles were incremental", incremental, seeds*cycles)
			}
		})
	}
}

// slapdHistory runs one random history of cycles against a fresh slapd and returns how
// many cycles read incrementally.
func slapdHistory(t *testing.T, seed int64, cycles, sessionLog int) int {
	rng := rand.New(rand.NewSource(seed))
	srv := ldaptest.Start(t, ldaptest.Options{Syncprov: true, SessionLog: sessionLog,
		LDIF: []byte("dn: ou=gone,dc=example,dc=com\nobjectClass: organizationalUnit\nou: gone\n")})
	conn := srv.Conn()
	defer conn.Close()
	next := 0
	var ps []syncPerson
	for range 24 {
		ps = mutate(rng, ps, &next)
	}
	writeSlapd(t, conn, nil, ps)

	h := newHarness(t)
	h.write("templates/staff.yaml", strings.Replace(staffTemplate, "key_attribute: entryUUID", "key_attribute: uid", 1))
	h.cfg.Directories["corp"] = schema.DirConfig{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.AdminDN, BindPasswordEnv: "BIND_PW",
		PageSize: 1000, Sync: schema.SyncAuto, FullRead: schema.Duration{Duration: 24 * 3600e9}}
	engine := func(incremental bool) *Engine {
		e := h.engine()
		e.Getenv = func(k string) string {
			if k == "BIND_PW" {
				return srv.AdminPassword
			}
			return "test-secret-key"
		}
		e.Incremental = incremental
		if os.Getenv("ROSTER_TEST_DEBUG") != "" && incremental {
			e.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		return e
	}
	s := &syncHarness{harness: h, inc: engine(true), full: engine(false)}
	incremental := 0
	committed := false // the last cycle committed
	for cycle := range cycles {
		had := slices.Clone(ps)
		for range 1 + rng.Intn(4) {
			ps = mutate(rng, ps, &next)
		}
		if rng.Intn(3) == 0 { // the same entries changed again within the cycle
			writeSlapd(t, conn, had, ps)
			had = slices.Clone(ps)
			for range 1 + rng.Intn(2) {
				ps = mutate(rng, ps, &next)
			}
		}
		writeSlapd(t, conn, had, ps)
		got := s.cycle(fmt.Sprintf("seed %d cycle %d", seed, cycle), committed, &incremental)
		planner := s.inc
		switch rng.Intn(8) {
		case 0: // killed before the commit: the changes come again
			s.inc = engine(true)
			committed = false
			continue
		case 1: // a new daemon process
			s.inc = engine(true)
		case 2: // slapd restarted: the stored cookie still holds
			srv.Restart()
			conn.Close()
			conn = srv.Conn()
		}
		s.applyPlan(got)
		if got.HasChanges() && !checkRefreshedIndex(t, planner) {
			t.Fatalf("seed %d cycle %d: no refreshed index after the apply", seed, cycle)
		}
		checkSyncCache(t, planner)
		committed = true
	}
	for range 4 {
		got := s.cycle(fmt.Sprintf("seed %d, settling", seed), false, new(int))
		if !got.HasChanges() {
			break
		}
		s.applyPlan(got)
	}
	if p := s.planWith(s.full, "c1"); p.HasChanges() {
		t.Fatalf("seed %d: a full read after the incremental cycles still changes: %v", seed, changes(p))
	}
	return incremental
}
