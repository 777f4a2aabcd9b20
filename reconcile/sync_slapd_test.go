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

// ldapLayout is where and how a directory holds the harness's people: slapd's (uid=x
// under ou=people, cn "given sn") or Active Directory's (CN=x, cn being the RDN).
type ldapLayout struct {
	dn    func(syncPerson) string
	rdn   func(syncPerson) string
	attrs func(syncPerson) map[string][]string // besides objectClass and the RDN
}

var slapdLayout = ldapLayout{dn: slapdDN, rdn: func(p syncPerson) string { return "uid=" + p.uid },
	attrs: func(p syncPerson) map[string][]string { a := slapdAttrs(p); a["uid"] = []string{p.uid}; return a }}

// writeLDAP makes the directory hold want instead of had, by LDAP writes as an
// administrator would make them: add, delete, modrdn (a rename, or a move out of the
// search base and back with newSuperior), modify of the changed attributes (a disable is
// employeeType).
func writeLDAP(t *testing.T, c *ldap.Conn, l ldapLayout, had, want []syncPerson) {
	t.Helper()
	old := map[string]syncPerson{}
	for _, p := range had {
		old[p.id] = p
	}
	for _, p := range want {
		o, ok := old[p.id]
		delete(old, p.id)
		if !ok {
			req := ldap.NewAddRequest(l.dn(p), nil)
			req.Attribute("objectClass", []string{"inetOrgPerson"})
			for name, vals := range l.attrs(p) {
				if len(vals) > 0 {
					req.Attribute(name, vals)
				}
			}
			if err := c.Add(req); err != nil {
				t.Fatalf("add %s: %v", l.dn(p), err)
			}
			continue
		}
		if o.uid != p.uid || o.out != p.out {
			sup := ""
			if o.out != p.out {
				sup = strings.SplitN(l.dn(p), ",", 2)[1]
			}
			if err := c.ModifyDN(ldap.NewModifyDNRequest(l.dn(o), l.rdn(p), true, sup)); err != nil {
				t.Fatalf("modrdn %s → %s: %v", l.dn(o), l.dn(p), err)
			}
		}
		req := ldap.NewModifyRequest(l.dn(p), nil)
		oa := l.attrs(o)
		for name, vals := range l.attrs(p) {
			if strings.Join(vals, "\n") == strings.Join(oa[name], "\n") || len(vals) > 0 && strings.EqualFold(name+"="+vals[0], l.rdn(p)) {
				continue // unchanged, or the RDN the modrdn set
			}
			if len(vals) == 0 {
				req.Delete(name, nil)
			} else {
				req.Replace(name, vals)
			}
		}
		if len(req.Changes) > 0 {
			if err := c.Modify(req); err != nil {
				t.Fatalf("modify %s: %v", l.dn(p), err)
			}
		}
	}
	for _, o := range old {
		if err := c.Del(ldap.NewDelRequest(l.dn(o), nil)); err != nil {
			t.Fatalf("delete %s: %v", l.dn(o), err)
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
	srv := ldaptest.Start(t, ldaptest.Options{Syncprov: true, SessionLog: sessionLog,
		LDIF: []byte("dn: ou=gone,dc=example,dc=com\nobjectClass: organizationalUnit\nou: gone\n")})
	return ldapHistory(t, seed, cycles, historyDirectory{
		conn: srv.Conn, restart: srv.Restart, layout: slapdLayout, searchDN: "ou=people",
		cfg: schema.DirConfig{URL: srv.URL, BaseDN: srv.BaseDN, BindDN: srv.AdminDN}, password: srv.AdminPassword})
}

// historyDirectory is the server an ldapHistory writes to and reads.
type historyDirectory struct {
	conn     func() *ldap.Conn // an administrator's connection
	restart  func()            // restarts the server keeping its data; nil: not done
	layout   ldapLayout
	searchDN string // the template's user_search_dn
	protocol string // the incremental protocol every cycle must use; "" = not checked
	cfg      schema.DirConfig
	password string
}

// ldapHistory runs one random history of cycles against a directory and returns how many
// cycles read incrementally.
func ldapHistory(t *testing.T, seed int64, cycles int, dir historyDirectory) int {
	rng := rand.New(rand.NewSource(seed))
	conn := dir.conn()
	defer func() { conn.Close() }()
	next := 0
	var ps []syncPerson
	for range 24 {
		ps = mutate(rng, ps, &next)
	}
	writeLDAP(t, conn, dir.layout, nil, ps)

	h := newHarness(t)
	tpl := strings.Replace(staffTemplate, "key_attribute: entryUUID", "key_attribute: uid", 1)
	h.write("templates/staff.yaml", strings.Replace(tpl, "user_search_dn: ou=people", "user_search_dn: "+dir.searchDN, 1))
	cfg := dir.cfg
	cfg.BindPasswordEnv, cfg.PageSize, cfg.Sync, cfg.FullRead = "BIND_PW", 1000, schema.SyncAuto, schema.Duration{Duration: 24 * 3600e9}
	h.cfg.Directories["corp"] = cfg
	engine := func(incremental bool) *Engine {
		e := h.engine()
		e.Getenv = func(k string) string {
			if k == "BIND_PW" {
				return dir.password
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
			writeLDAP(t, conn, dir.layout, had, ps)
			had = slices.Clone(ps)
			for range 1 + rng.Intn(2) {
				ps = mutate(rng, ps, &next)
			}
		}
		writeLDAP(t, conn, dir.layout, had, ps)
		got := s.cycle(fmt.Sprintf("seed %d cycle %d", seed, cycle), committed, &incremental)
		if r := got.SyncReads(); dir.protocol != "" && r[0].Protocol != dir.protocol {
			t.Fatalf("seed %d cycle %d: read with %q, want %q", seed, cycle, r[0].Protocol, dir.protocol)
		}
		planner := s.inc
		switch rng.Intn(8) {
		case 0: // killed before the commit: the changes come again
			s.inc = engine(true)
			committed = false
			continue
		case 1: // a new daemon process
			s.inc = engine(true)
		case 2: // the server restarted: the stored cookie still holds
			if dir.restart != nil {
				dir.restart()
				conn.Close()
				conn = dir.conn()
			}
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
