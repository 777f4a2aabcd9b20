package directory

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Active Directory without DirSync rights (SPEC §7): every object carries uSNChanged, the
// update sequence number of its last change on the domain controller that answers, and the
// root DSE carries that DC's highestCommittedUSN. A search of (&filter(uSNChanged>=n+1))
// returns what changed since n. USNs are per DC, and a DC restored from a backup reuses
// them: the pair is only meaningful with the DC's invocationId (on its nTDSDSA object,
// named by the root DSE's dsServiceName), which changes on a restore. The cookie records
// both; another invocationId means a full read.
//
// A USN search cannot see what left the search: a deleted object becomes a tombstone under
// CN=Deleted Objects, a moved one is outside the base, one that stopped matching the filter
// no longer matches. Two ways to find them:
//   - the Deleted Objects container read with the Show Deleted control: it needs a right
//     ordinary accounts lack (List Contents on that container is for administrators and
//     SYSTEM by default), and it sees only deletions, not moves out of the base nor
//     objects leaving the filter, nor anything once the tombstone lifetime has passed;
//   - a present phase: a paged search of the base with the filter asking for objectGUID
//     alone, every known id it does not list being gone, as RFC 4533's present phase.
//
// The present phase is the one used: it needs only the read right the full read already
// needs and catches every way of leaving. It costs one id-only search of the base, and only
// in a cycle where the DC's highestCommittedUSN moved: a quiet DC costs one root DSE read.

// usnTag tags the cookies of the uSNChanged mode: "roster-usn:<invocationId hex>;<usn>".
var usnTag = []byte("roster-usn:")

// usnMark is where a domain controller stands: which database (invocationId) and how far
// (highestCommittedUSN).
type usnMark struct {
	invocation string // invocationId, 32 hex digits
	usn        int64
}

func (m usnMark) cookie() []byte {
	return tagCookie(usnTag, []byte(m.invocation+";"+strconv.FormatInt(m.usn, 10)))
}

func parseUSNCookie(raw []byte) (usnMark, bool) {
	inv, n, ok := strings.Cut(string(raw), ";")
	usn, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || usn < 0 || len(inv) != 32 {
		return usnMark{}, false
	}
	if _, err := hex.DecodeString(inv); err != nil {
		return usnMark{}, false
	}
	return usnMark{invocation: inv, usn: usn}, true
}

// readUSNMark reads the root DSE's highestCommittedUSN and the invocationId of the DC's
// nTDSDSA object. highestCommittedUSN is read first: a change committed while the rest runs
// has a greater USN and comes again in the next read.
func (d *ldapDirectory) readUSNMark(c *ldap.Conn, dse rootDSE) (usnMark, error) {
	usn, err := strconv.ParseInt(dse.highestUSN, 10, 64)
	if err != nil {
		return usnMark{}, fmt.Errorf("root dse highestCommittedUSN %q: %w", dse.highestUSN, err)
	}
	if dse.dsService == "" {
		return usnMark{}, errors.New("the root dse has no dsServiceName")
	}
	res, err := searchWithin(c, d.cfg.Timeout, ldap.NewSearchRequest(dse.dsService, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"invocationId"}, nil))
	if err != nil {
		return usnMark{}, fmt.Errorf("read invocationId of %q: %w", dse.dsService, err)
	}
	for _, e := range res.Entries {
		if id := e.GetRawAttributeValue("invocationId"); len(id) == 16 {
			return usnMark{invocation: hex.EncodeToString(id), usn: usn}, nil
		}
	}
	return usnMark{}, fmt.Errorf("%q has no readable 16-byte invocationId", dse.dsService)
}

// currentUSNMark reads the root DSE and the mark.
func (d *ldapDirectory) currentUSNMark(c *ldap.Conn) (usnMark, error) {
	dse, err := d.readRootDSE(c)
	if err != nil {
		return usnMark{}, err
	}
	return d.readUSNMark(c, dse)
}

// probeDirSync says whether the bind account may use DirSync: one DirSync search of the
// naming context holding the base from no cookie, limited to one object. AD and Samba check
// the right (Replicating Directory Changes) before reading and answer insufficientAccessRights
// without it; unwillingToPerform and unavailableCriticalExtension also mean DirSync cannot be
// used here. The answer is kept for the Directory's life (a plan's), so the probe runs once.
func (d *ldapDirectory) probeDirSync(c *ldap.Conn, dse rootDSE) (bool, error) {
	if v := d.dirsyncAllowed.Load(); v != nil {
		return *v, nil
	}
	nc := dse.namingContext(d.cfg.BaseDN)
	if nc == "" {
		return false, fmt.Errorf("no naming context holds %q", d.cfg.BaseDN)
	}
	sr := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"objectGUID"}, nil)
	w := newWatchdog(c, d.cfg.Timeout)
	_, err := c.DirSync(sr, 0, 0, nil)
	err = w.err(err)
	allowed := false
	switch {
	case err == nil, ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		allowed = true
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultUnavailableCriticalExtension):
		level := slog.LevelDebug
		if _, seen := dirsyncRefused.LoadOrStore(d.safeURL+" "+d.cfg.BindDN, true); !seen {
			level = slog.LevelInfo // once per process: every plan opens the directory anew
		}
		d.log.Log(context.Background(), level, "ldap sync: the bind account may not use DirSync (it needs Replicating Directory Changes); reading changes by uSNChanged",
			"directory", d.safeURL, "error", err)
	default:
		return false, fmt.Errorf("dirsync probe of %q: %w", nc, err)
	}
	d.dirsyncAllowed.Store(&allowed)
	return allowed, nil
}

// dirsyncRefused holds the servers and bind accounts whose DirSync refusal was logged.
var dirsyncRefused sync.Map

// usnChanges reads what changed since raw ("<invocationId>;<usn>"): the entries of the
// request with uSNChanged above the cookie's USN (a paged search, as Search reads), and,
// with known, the deletions a present phase finds. The new cookie holds the
// highestCommittedUSN read before the searches, so nothing committed during them is lost.
func (d *ldapDirectory) usnChanges(ctx context.Context, c *ldap.Conn, req Request, raw []byte, known iter.Seq[string]) (SyncResult, error) {
	base := searchBase(req.SearchDN, d.cfg.BaseDN)
	op := fmt.Sprintf("usn changes under %q", base)
	from, ok := parseUSNCookie(raw)
	if !ok {
		d.log.Info("ldap usn: the cookie is not one this version made; a full read is needed", "directory", d.safeURL)
		return SyncResult{Refresh: true}, nil
	}
	now, err := d.currentUSNMark(c)
	if err != nil {
		return SyncResult{}, d.fail(op, err)
	}
	switch {
	case now.invocation != from.invocation:
		// Logged once: the full read takes a baseline of the new DC, so the next cycle agrees.
		d.log.Info("ldap usn: another domain controller (or a restored one) answers; its USNs are not comparable, a full read is needed",
			"directory", d.safeURL, "base", base, "invocation_id_was", from.invocation, "invocation_id_now", now.invocation)
		return SyncResult{Refresh: true}, nil
	case now.usn < from.usn:
		d.log.Info("ldap usn: the domain controller's highestCommittedUSN went back; a full read is needed",
			"directory", d.safeURL, "base", base, "usn_was", from.usn, "usn_now", now.usn)
		return SyncResult{Refresh: true}, nil
	case now.usn == from.usn:
		return SyncResult{Cookie: now.cookie()}, nil // nothing at all was written on this DC
	}
	start := time.Now()
	s := newSyncState(&entryMaker{}) // its entries are made by Search
	s.format = hexGUID
	if err := d.usnChanged(ctx, req, from.usn, s); err != nil {
		return SyncResult{}, err
	}
	if known != nil {
		if err := d.presentIDs(ctx, req, s); err != nil {
			return SyncResult{}, err
		}
		s.presentPhase = true
		s.resolve(known)
	}
	d.log.Debug("ldap usn read done", "directory", d.safeURL, "base", base, "from_usn", from.usn, "to_usn", now.usn,
		"changes", len(s.changes), "elapsed", time.Since(start))
	return SyncResult{Changes: s.changes, Cookie: now.cookie()}, nil
}

// usnChanged puts into s the entries of req whose uSNChanged is above usn, read by Search
// with objectGUID added to the attributes (and taken out again if req did not ask for it).
func (d *ldapDirectory) usnChanged(ctx context.Context, req Request, usn int64, s *syncState) error {
	q := req
	q.Filter = "(&" + orAllFilter(req.Filter) + "(uSNChanged>=" + strconv.FormatInt(usn+1, 10) + "))"
	asked := req.Attributes == nil
	for _, a := range req.Attributes {
		asked = asked || strings.EqualFold(baseName(a), "objectguid")
	}
	if !asked {
		q.Attributes = append(append([]string(nil), req.Attributes...), "objectGUID")
	}
	return d.Search(ctx, q, func(e Entry) error {
		var guid string
		for k, v := range e.Attrs {
			if strings.EqualFold(baseName(k), "objectguid") && len(v) > 0 {
				guid = v[0]
				if !asked {
					delete(e.Attrs, k)
				}
				break
			}
		}
		if len(guid) != 16 {
			return d.fail("usn changes", fmt.Errorf("object %q has no 16-byte objectGUID", e.DN))
		}
		s.put([16]byte([]byte(guid)), &e)
		return nil
	})
}

// presentIDs is the present phase: the objectGUIDs of every entry req finds, marked
// present in s.
func (d *ldapDirectory) presentIDs(ctx context.Context, req Request, s *syncState) error {
	base := searchBase(req.SearchDN, d.cfg.BaseDN)
	d.searchMu.Lock()
	defer d.searchMu.Unlock()
	var bulk *bulkSearch
	if !d.cfg.GoLDAPReader && !d.bulkOff.Load() {
		bulk = &bulkSearch{d: d}
		defer bulk.drop()
	}
	return d.paged(ctx, bulk, base, orAllFilter(req.Filter), []string{"objectGUID"}, func(r *Record) error {
		v := r.values("objectguid")
		if len(v) == 0 || len(v[0]) != 16 {
			return d.fail("usn present phase", fmt.Errorf("object %q has no 16-byte objectGUID", r.DN))
		}
		s.markPresent([16]byte([]byte(v[0])))
		return nil
	})
}

// orAllFilter is a request's filter in parentheses; "" matches everything.
func orAllFilter(f string) string {
	f = strings.TrimSpace(f)
	switch {
	case f == "":
		return "(objectClass=*)"
	case !strings.HasPrefix(f, "("):
		return "(" + f + ")"
	}
	return f
}
