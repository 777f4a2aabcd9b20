package directory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/directory/ldaptest"
)

// mirror is what a caller of the Syncer keeps: the entries of one request by UUID. With
// KeyAttribute entryUUID, an entry's Key is its UUID, so a full read gives the same map.
type mirror map[string]directory.Entry

func (m mirror) known() func(func(string) bool) {
	return func(yield func(string) bool) {
		for u := range m {
			if !yield(u) {
				return
			}
		}
	}
}

func (m mirror) apply(t testing.TB, changes []directory.Change) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range changes {
		if seen[c.UUID] {
			t.Errorf("uuid %s twice in one result", c.UUID)
		}
		seen[c.UUID] = true
		if c.Entry == nil {
			delete(m, c.UUID)
			continue
		}
		if c.Entry.Key != c.UUID {
			t.Errorf("change %s carries an entry keyed %q", c.UUID, c.Entry.Key)
		}
		m[c.UUID] = *c.Entry
	}
}

func fullRead(t testing.TB, d directory.Directory, req directory.Request) mirror {
	t.Helper()
	m := mirror{}
	err := d.Search(context.Background(), req, func(e directory.Entry) error { m[e.Key] = e; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func syncer(t testing.TB, d directory.Directory) directory.Syncer {
	t.Helper()
	s, ok := d.(directory.Syncer)
	if !ok {
		t.Fatalf("%T is not a Syncer", d)
	}
	return s
}

// ldapDo runs one write as the root DN.
func ldapDo(t testing.TB, s *ldaptest.Server, f func(c *ldap.Conn) error) {
	t.Helper()
	c := s.Conn()
	defer c.Close()
	if err := f(c); err != nil {
		t.Fatal(err)
	}
}

func modify(dn string, attr string, vals ...string) func(c *ldap.Conn) error {
	return func(c *ldap.Conn) error {
		m := ldap.NewModifyRequest(dn, nil)
		m.Replace(attr, vals)
		return c.Modify(m)
	}
}

func describe(changes []directory.Change) string {
	var b strings.Builder
	for _, c := range changes {
		if c.Entry == nil {
			fmt.Fprintf(&b, "[%s deleted] ", c.UUID)
		} else {
			fmt.Fprintf(&b, "[%s %s disabled=%v] ", c.UUID, c.Entry.DN, c.Entry.Disabled)
		}
	}
	return b.String()
}

// syncReq is syncReq with a filter an entry can leave by a modify.
var syncReq = func() directory.Request {
	r := peopleReq
	r.Filter = "(&(objectClass=inetOrgPerson)(!(description=left)))"
	return r
}()

// begin starts a slapd with syncprov, opens it as the root DN (or the reader), and takes a
// Baseline and then a full read of req, as a caller starting incremental reads does.
func begin(t testing.TB, opts ldaptest.Options, reader bool, req directory.Request) (*ldaptest.Server, directory.Directory, directory.Syncer, []byte, mirror) {
	t.Helper()
	opts.Syncprov = true
	s := ldaptest.Start(t, opts)
	cfg := adminConfig(s)
	if reader {
		cfg.BindDN, cfg.BindPassword = s.ReaderDN, s.ReaderPassword
	}
	d := newLDAP(t, cfg)
	sy := syncer(t, d)
	cookie, err := sy.Baseline(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return s, d, sy, cookie, fullRead(t, d, req)
}

const otherOU = `dn: ou=other,dc=example,dc=com
objectClass: organizationalUnit
ou: other
`

// TestSyncreplChanges follows a directory through add, modify, rename, delete, a move out of
// the search base, a disable, an entry changed twice and several changes at once, with and
// without a syncprov session log: after every refresh the caller's mirror equals a full read,
// and each result holds exactly the entries that changed.
func TestSyncreplChanges(t *testing.T) {
	for _, sl := range []int{0, 100} {
		t.Run(fmt.Sprintf("sessionlog=%d", sl), func(t *testing.T) {
			s, d, sy, cookie, m := begin(t, ldaptest.Options{LDIF: append(people(t, 30), "\n"+otherOU...), SessionLog: sl}, false, syncReq)
			ctx := context.Background()
			mode, err := sy.Mode(ctx)
			if err != nil || mode != directory.ModeSyncrepl {
				t.Fatalf("mode %q, %v", mode, err)
			}
			if len(m) != 30 {
				t.Fatalf("full read: %d entries", len(m))
			}
			uuidOf := func(uid string) string {
				for u, e := range m {
					if e.Attrs["uid"][0] == uid {
						return u
					}
				}
				t.Fatalf("no %s in the mirror", uid)
				return ""
			}
			step := func(name string, want map[string]bool, ops ...func(c *ldap.Conn) error) []directory.Change {
				t.Helper()
				for _, op := range ops {
					ldapDo(t, s, op)
				}
				res, err := sy.Changes(ctx, syncReq, cookie, m.known())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if res.Refresh || len(res.Cookie) == 0 {
					t.Fatalf("%s: refresh %v, cookie %q", name, res.Refresh, res.Cookie)
				}
				got := map[string]bool{}
				for _, c := range res.Changes {
					got[c.UUID] = c.Entry != nil
				}
				// A crash before the caller commits: the same cookie gives the same changes again.
				again, err := sy.Changes(ctx, syncReq, cookie, m.known())
				if err != nil || len(again.Changes) != len(res.Changes) {
					t.Fatalf("%s: read again from the same cookie: %s (first %s), %v", name, describe(again.Changes), describe(res.Changes), err)
				}
				for _, c := range again.Changes {
					if p, ok := got[c.UUID]; !ok || p != (c.Entry != nil) {
						t.Errorf("%s: read again: %s, first %s", name, describe(again.Changes), describe(res.Changes))
						break
					}
				}
				m.apply(t, res.Changes)
				if want != nil && !reflect.DeepEqual(got, want) {
					t.Errorf("%s: changes %s, want (uuid: present) %v", name, describe(res.Changes), want)
				}
				if full := fullRead(t, d, syncReq); !reflect.DeepEqual(m, full) {
					t.Fatalf("%s: the mirror (%d entries) differs from a full read (%d)", name, len(m), len(full))
				}
				cookie = res.Cookie
				return res.Changes
			}

			step("nothing", map[string]bool{})
			u3, u4, u5, u6, u7 := uuidOf("u3"), uuidOf("u4"), uuidOf("u5"), uuidOf("u6"), uuidOf("u7")
			step("modify", map[string]bool{u3: true}, modify("uid=u3,ou=people,dc=example,dc=com", "sn", "Changed"))
			if got := m[u3].Attrs["sn"]; !slices.Equal(got, []string{"Changed"}) {
				t.Errorf("sn after modify: %q", got)
			}
			ch := step("add", nil, func(c *ldap.Conn) error {
				a := ldap.NewAddRequest("uid=new,ou=people,dc=example,dc=com", nil)
				a.Attribute("objectClass", []string{"inetOrgPerson"})
				a.Attribute("uid", []string{"new"})
				a.Attribute("cn", []string{"New Person"})
				a.Attribute("sn", []string{"Person"})
				return c.Add(a)
			})
			if len(ch) != 1 || ch[0].Entry == nil || ch[0].Entry.DN != "uid=new,ou=people,dc=example,dc=com" {
				t.Errorf("add: %s", describe(ch))
			}
			ch = step("rename", map[string]bool{u4: true}, func(c *ldap.Conn) error {
				return c.ModifyDN(ldap.NewModifyDNRequest("uid=u4,ou=people,dc=example,dc=com", "uid=u4renamed", true, ""))
			})
			if len(ch) == 1 && ch[0].Entry != nil && ch[0].Entry.DN != "uid=u4renamed,ou=people,dc=example,dc=com" {
				t.Errorf("rename: dn %q", ch[0].Entry.DN)
			}
			step("delete", map[string]bool{u5: false}, func(c *ldap.Conn) error {
				return c.Del(ldap.NewDelRequest("uid=u5,ou=people,dc=example,dc=com", nil))
			})
			step("move out of the base", map[string]bool{u6: false}, func(c *ldap.Conn) error {
				return c.ModifyDN(ldap.NewModifyDNRequest("uid=u6,ou=people,dc=example,dc=com", "uid=u6", true, "ou=other,dc=example,dc=com"))
			})
			step("disable", map[string]bool{u7: true}, modify("uid=u7,ou=people,dc=example,dc=com", "employeeType", "disabled"))
			if !m[u7].Disabled {
				t.Error("u7 is not disabled after its employeeType became disabled")
			}
			step("leave the filter", map[string]bool{u3: false}, modify("uid=u3,ou=people,dc=example,dc=com", "description", "left"))
			ch = step("changed twice", nil, modify("uid=u8,ou=people,dc=example,dc=com", "sn", "First"),
				modify("uid=u8,ou=people,dc=example,dc=com", "sn", "Second"))
			if len(ch) != 1 || ch[0].Entry == nil || !slices.Equal(ch[0].Entry.Attrs["sn"], []string{"Second"}) {
				t.Errorf("changed twice: %s", describe(ch))
			}
			ch = step("several at once", nil,
				modify("uid=u9,ou=people,dc=example,dc=com", "mail", "nine@example.com"),
				func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest("uid=u10,ou=people,dc=example,dc=com", nil)) },
				modify("uid=u11,ou=people,dc=example,dc=com", "employeeType", "disabled"),
				func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest("uid=u9,ou=people,dc=example,dc=com", nil)) })
			if len(ch) != 3 {
				t.Errorf("several at once (u9 modified then deleted, u10 deleted, u11 disabled): %s", describe(ch))
			}

			s.Restart()
			step("after a restart", map[string]bool{})
			u12 := uuidOf("u12")
			step("a change after a restart", map[string]bool{u12: true}, modify("uid=u12,ou=people,dc=example,dc=com", "sn", "Restarted"))
			ldapDo(t, s, modify("uid=u13,ou=people,dc=example,dc=com", "sn", "BeforeKill"))
			s.Kill()
			s.Restart()
			step("after kill -9", map[string]bool{uuidOf("u13"): true})
		})
	}
}

// TestSyncreplSessionLogOverflow: more deletions than the session log holds still reach the
// caller (syncprov falls back to its present phase, which the known UUIDs resolve).
func TestSyncreplSessionLogOverflow(t *testing.T) {
	s, d, sy, cookie, m := begin(t, ldaptest.Options{LDIF: people(t, 40), SessionLog: 5}, false, syncReq)
	ctx := context.Background()
	for i := range 12 {
		ldapDo(t, s, func(c *ldap.Conn) error {
			return c.Del(ldap.NewDelRequest(fmt.Sprintf("uid=u%d,ou=people,dc=example,dc=com", i), nil))
		})
	}
	res, err := sy.Changes(ctx, syncReq, cookie, m.known())
	if err != nil || res.Refresh {
		t.Fatalf("refresh %v, %v", res.Refresh, err)
	}
	deleted := 0
	for _, c := range res.Changes {
		if c.Entry == nil {
			deleted++
		}
	}
	m.apply(t, res.Changes)
	if deleted != 12 || len(res.Changes) != 12 {
		t.Errorf("%d changes, %d deletions; want 12 deletions", len(res.Changes), deleted)
	}
	if full := fullRead(t, d, syncReq); !reflect.DeepEqual(m, full) {
		t.Fatalf("mirror %d entries, full read %d", len(m), len(full))
	}
	// From the fresh cookie the session log covers the next deletion again: it comes as a
	// delete state, with no known UUIDs needed.
	ldapDo(t, s, func(c *ldap.Conn) error {
		return c.Del(ldap.NewDelRequest("uid=u20,ou=people,dc=example,dc=com", nil))
	})
	res2, err := sy.Changes(ctx, syncReq, res.Cookie, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Changes) != 1 || res2.Changes[0].Entry != nil || res2.Changes[0].UUID == "" {
		t.Errorf("deletion within the session log: %s", describe(res2.Changes))
	}
}

// TestSyncreplCookieRejected: a cookie this package did not make, and a cookie newer than
// the server's state (another server's), mean a full read (Refresh), not an error.
func TestSyncreplCookieRejected(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 5), Syncprov: true})
	sy := syncer(t, newLDAP(t, adminConfig(s)))
	ctx := context.Background()
	good, err := sy.Baseline(ctx, syncReq)
	if err != nil {
		t.Fatal(err)
	}
	for name, cookie := range map[string][]byte{
		"garbage":      []byte("garbage"),
		"raw syncprov": []byte("rid=000,csn=20261202130116.101128Z#000000#000#000000"),
		"dirsync":      []byte("roster-dirsync:xyz"),
		"newer":        []byte("roster-syncrepl:rid=000,csn=20991202130116.101128Z#000000#000#000000"),
	} {
		res, err := sy.Changes(ctx, syncReq, cookie, nil)
		if name == "dirsync" {
			if err == nil && !res.Refresh {
				t.Errorf("%s: a dirsync cookie on an OpenLDAP server gave %d changes", name, len(res.Changes))
			}
			continue
		}
		if err != nil || !res.Refresh || len(res.Changes) != 0 {
			t.Errorf("%s: refresh %v, %d changes, err %v; want refresh", name, res.Refresh, len(res.Changes), err)
		}
		called := 0
		err = sy.Persist(ctx, syncReq, cookie, nil, func(r directory.SyncResult) error {
			called++
			if !r.Refresh {
				t.Errorf("%s: persist gave a batch of %d changes, want refresh", name, len(r.Changes))
			}
			return nil
		})
		if err != nil || called != 1 {
			t.Errorf("%s: persist: %d calls, %v", name, called, err)
		}
	}
	if res, err := sy.Changes(ctx, syncReq, good, nil); err != nil || res.Refresh {
		t.Errorf("good cookie: refresh %v, %v", res.Refresh, err)
	}
}

// TestSyncModeWithoutSyncprov: a plain slapd supports full reads only.
func TestSyncModeWithoutSyncprov(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 3)})
	sy := syncer(t, newLDAP(t, adminConfig(s)))
	mode, err := sy.Mode(context.Background())
	if err != nil || mode != "" {
		t.Fatalf("mode %q, %v; want \"\"", mode, err)
	}
	if _, err := sy.Baseline(context.Background(), syncReq); !errors.Is(err, directory.ErrNoSync) {
		t.Errorf("baseline: %v, want ErrNoSync", err)
	}
}

// TestSyncreplPersist: the persistent search delivers the refresh, then a change pushed by
// the server, with a cookie Changes accepts; and it returns an error when slapd is killed.
func TestSyncreplPersist(t *testing.T) {
	for _, sl := range []int{0, 100} {
		t.Run(fmt.Sprintf("sessionlog=%d", sl), func(t *testing.T) {
			s, d, sy, cookie, m := begin(t, ldaptest.Options{LDIF: people(t, 20), SessionLog: sl}, false, syncReq)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// A deletion before Persist starts comes in the refresh.
			ldapDo(t, s, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest("uid=u1,ou=people,dc=example,dc=com", nil)) })
			batches := make(chan directory.SyncResult, 16)
			done := make(chan error, 1)
			go func() {
				done <- sy.Persist(ctx, syncReq, cookie, m.known(), func(r directory.SyncResult) error { batches <- r; return nil })
			}()
			next := func(what string) directory.SyncResult {
				t.Helper()
				select {
				case r := <-batches:
					return r
				case err := <-done:
					t.Fatalf("%s: persist ended: %v", what, err)
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: no batch within 10s", what)
				}
				return directory.SyncResult{}
			}
			r := next("refresh")
			if len(r.Changes) != 1 || r.Changes[0].Entry != nil {
				t.Fatalf("refresh: %s, want u1 deleted", describe(r.Changes))
			}
			m.apply(t, r.Changes)
			ldapDo(t, s, modify("uid=u2,ou=people,dc=example,dc=com", "sn", "Pushed"))
			r = next("modify")
			if len(r.Changes) != 1 || r.Changes[0].Entry == nil || r.Changes[0].Entry.Attrs["sn"][0] != "Pushed" {
				t.Fatalf("pushed: %s", describe(r.Changes))
			}
			m.apply(t, r.Changes)
			ldapDo(t, s, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest("uid=u3,ou=people,dc=example,dc=com", nil)) })
			r = next("delete")
			m.apply(t, r.Changes)
			if len(r.Changes) != 1 || r.Changes[0].Entry != nil {
				t.Fatalf("pushed delete: %s", describe(r.Changes))
			}
			if full := fullRead(t, d, syncReq); !reflect.DeepEqual(m, full) {
				t.Fatalf("mirror %d entries, full read %d", len(m), len(full))
			}
			// The last batch's cookie is current: Changes from it finds nothing.
			res, err := sy.Changes(ctx, syncReq, r.Cookie, m.known())
			if err != nil || res.Refresh || len(res.Changes) != 0 {
				t.Fatalf("changes after persist: %s refresh %v, %v", describe(res.Changes), res.Refresh, err)
			}
			s.Kill()
			select {
			case err := <-done:
				if err == nil || errors.Is(err, context.Canceled) {
					t.Fatalf("persist returned %v after slapd was killed", err)
				}
				t.Logf("persist after kill: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("persist still running 10s after slapd was killed")
			}
		})
	}
}

// TestSyncreplPersistCancel: Persist returns ctx.Err() when its context ends.
func TestSyncreplPersistCancel(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 3), Syncprov: true})
	sy := syncer(t, newLDAP(t, adminConfig(s)))
	ctx, cancel := context.WithCancel(context.Background())
	cookie, err := sy.Baseline(ctx, syncReq)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- sy.Persist(ctx, syncReq, cookie, nil, func(directory.SyncResult) error { cancel(); return nil })
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("persist returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("persist still running 10s after its context was cancelled")
	}
}

// TestSyncreplServerDisabledFilter: a disabled filter only the server can evaluate (a
// matching rule the client-side evaluator does not know) is asked of the server for each
// changed entry, with the same answer as a full read.
func TestSyncreplServerDisabledFilter(t *testing.T) {
	req := syncReq
	req.DisabledFilter = "(employeeType:caseExactMatch:=disabled)"
	s, d, sy, cookie, m := begin(t, ldaptest.Options{LDIF: people(t, 10)}, false, req)
	ctx := context.Background()
	ldapDo(t, s, modify("uid=u2,ou=people,dc=example,dc=com", "employeeType", "disabled"))
	ldapDo(t, s, modify("uid=u3,ou=people,dc=example,dc=com", "employeeType", "DISABLED")) // not caseExact
	res, err := sy.Changes(ctx, req, cookie, m.known())
	if err != nil {
		t.Fatal(err)
	}
	m.apply(t, res.Changes)
	disabled := 0
	for _, c := range res.Changes {
		if c.Entry != nil && c.Entry.Disabled {
			disabled++
			if c.Entry.Attrs["uid"][0] != "u2" {
				t.Errorf("%s disabled", c.Entry.DN)
			}
		}
	}
	if len(res.Changes) != 2 || disabled != 1 {
		t.Errorf("changes %s, want u2 disabled and u3 not", describe(res.Changes))
	}
	if full := fullRead(t, d, req); !reflect.DeepEqual(m, full) {
		t.Fatal("the mirror differs from a full read")
	}
	// The same through Persist.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan directory.SyncResult, 4)
	go func() {
		_ = sy.Persist(pctx, req, res.Cookie, m.known(), func(r directory.SyncResult) error { batches <- r; return nil })
	}()
	<-batches
	ldapDo(t, s, modify("uid=u4,ou=people,dc=example,dc=com", "employeeType", "disabled"))
	select {
	case r := <-batches:
		if len(r.Changes) != 1 || r.Changes[0].Entry == nil || !r.Changes[0].Entry.Disabled {
			t.Errorf("persist: %s, want u4 disabled", describe(r.Changes))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no batch")
	}
}

// TestSyncreplPersistQuiet: a persistent search quiet for longer than the configured
// Timeout is not cut (the timeout bounds the refresh's waits, not the persist phase).
func TestSyncreplPersistQuiet(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{LDIF: people(t, 5), Syncprov: true})
	cfg := adminConfig(s)
	cfg.Timeout = 300 * time.Millisecond
	sy := syncer(t, newLDAP(t, cfg))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cookie, err := sy.Baseline(ctx, syncReq)
	if err != nil {
		t.Fatal(err)
	}
	batches := make(chan directory.SyncResult, 4)
	done := make(chan error, 1)
	go func() {
		done <- sy.Persist(ctx, syncReq, cookie, nil, func(r directory.SyncResult) error { batches <- r; return nil })
	}()
	<-batches // the refresh
	time.Sleep(1200 * time.Millisecond)
	ldapDo(t, s, modify("uid=u1,ou=people,dc=example,dc=com", "sn", "Later"))
	select {
	case r := <-batches:
		if len(r.Changes) != 1 {
			t.Errorf("%s", describe(r.Changes))
		}
	case err := <-done:
		t.Fatalf("persist ended while quiet: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no batch")
	}
}

// TestSyncreplReaderSizeLimit: as an ordinary reader, a refresh with more changed entries than
// the server's size limit means a full read (paged, which this server does not limit), not an
// error; a refresh within the limit works, present phase included.
func TestSyncreplReaderSizeLimit(t *testing.T) {
	s, _, sy, cookie, m := begin(t, ldaptest.Options{LDIF: people(t, 40), SizeLimit: 10, PagedUnlimited: true}, true, syncReq)
	ctx := context.Background()
	if len(m) != 40 {
		t.Fatalf("full read as reader: %d", len(m))
	}
	ldapDo(t, s, modify("uid=u1,ou=people,dc=example,dc=com", "sn", "One"))
	ldapDo(t, s, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest("uid=u2,ou=people,dc=example,dc=com", nil)) })
	res, err := sy.Changes(ctx, syncReq, cookie, m.known())
	if err != nil || res.Refresh || len(res.Changes) != 2 {
		t.Fatalf("within the limit: %s refresh %v, %v", describe(res.Changes), res.Refresh, err)
	}
	m.apply(t, res.Changes)
	for i := 10; i < 22; i++ {
		ldapDo(t, s, modify(fmt.Sprintf("uid=u%d,ou=people,dc=example,dc=com", i), "sn", "Many"))
	}
	res, err = sy.Changes(ctx, syncReq, res.Cookie, m.known())
	if err != nil || !res.Refresh {
		t.Fatalf("12 changes over a limit of 10: %d changes, refresh %v, %v", len(res.Changes), res.Refresh, err)
	}
}
