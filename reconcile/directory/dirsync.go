package directory

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Active Directory's DirSync (MS-ADTS 3.1.1.3.4.1.3): a search of a whole naming context
// with the DirSync control returns the objects changed since the cookie, each with its
// objectGUID and only the attributes that changed; deleted objects come as tombstones
// (isDeleted TRUE). The cookie is a watermark of the naming context, not of the search, and
// other domain controllers of the domain accept it.

// dirsyncAttrs is the attribute list of a DirSync search for a request: the request's
// attributes and those of its filters (so that an object leaving the filter is reported),
// objectGUID, isDeleted (tombstones) and name, which AD changes on a rename and on a move.
func dirsyncAttrs(req Request, m *entryMaker) []string {
	var attrs []string
	seen := map[string]bool{}
	add := func(a string) {
		if l := strings.ToLower(a); l != "1.1" && !seen[l] {
			seen[l] = true
			attrs = append(attrs, a)
		}
	}
	for _, a := range m.attrs {
		add(a)
	}
	if f, err := CompileFilter(req.Filter); err == nil {
		for _, a := range f.Attributes() {
			add(a)
		}
	}
	for _, a := range []string{"objectGUID", "isDeleted", "name"} {
		add(a)
	}
	return attrs
}

// dirsync runs DirSync searches of the naming context nc from cookie (nil = from nothing)
// until the server says there is no more, calling each with every object, and returns the
// last cookie. Each search is a fresh request: go-ldap ignores the cookie argument of a
// request that already carries the control.
func (d *ldapDirectory) dirsync(ctx context.Context, c *ldap.Conn, nc string, attrs []string, cookie []byte, each func(*ldap.Entry) error) ([]byte, error) {
	timeLimit := int((d.cfg.Timeout + time.Second - 1) / time.Second)
	for pass := 1; ; pass++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sr := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, timeLimit, false,
			"(objectClass=*)", attrs, nil)
		w := newWatchdog(c, d.cfg.Timeout)
		res, err := c.DirSync(sr, 0, 0, cookie)
		if err = w.err(err); err != nil {
			return nil, fmt.Errorf("dirsync pass %d: %w", pass, err)
		}
		for _, e := range res.Entries {
			if err := each(e); err != nil {
				return nil, err
			}
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if ctrl == nil {
			return nil, fmt.Errorf("dirsync pass %d: the answer carries no dirsync control", pass)
		}
		if len(ctrl.Cookie) > 0 {
			cookie = ctrl.Cookie
		}
		if ctrl.Flags == 0 { // non-zero: more data
			return cookie, nil
		}
	}
}

// dirsyncChanges reads what changed since raw. Each changed object that is not a tombstone
// is read again, by its GUID (<GUID=hex> base search) with the request's filter and
// attributes: DirSync returns only the attributes that changed, and only the filter says
// whether the object is still in scope. An object that no longer matches, lies outside the
// search base, or is gone, is a deletion.
func (d *ldapDirectory) dirsyncChanges(ctx context.Context, c *ldap.Conn, req Request, raw []byte) (SyncResult, error) {
	base := searchBase(req.SearchDN, d.cfg.BaseDN)
	op := fmt.Sprintf("dirsync changes under %q", base)
	sr, m, err := syncRequest(req, d.cfg.BaseDN)
	if err != nil {
		return SyncResult{}, d.fail(op, err)
	}
	dse, err := d.readRootDSE(c)
	if err != nil {
		return SyncResult{}, d.fail(op, err)
	}
	nc := dse.namingContext(base)
	if nc == "" {
		return SyncResult{}, d.fail(op, fmt.Errorf("no naming context holds %q", base))
	}
	s := newSyncState(m)
	s.format = hexGUID
	var reread [][16]byte
	start := time.Now()
	cookie, err := d.dirsync(ctx, c, nc, dirsyncAttrs(req, m), raw, func(e *ldap.Entry) error {
		guid := e.GetRawAttributeValue("objectGUID")
		if len(guid) != 16 {
			return fmt.Errorf("object %q has no 16-byte objectGUID", e.DN)
		}
		id := [16]byte(guid)
		if strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE") {
			s.put(id, nil)
			return nil
		}
		if _, ok := s.at[id]; !ok {
			reread = append(reread, id)
		}
		s.put(id, nil) // until read again
		return nil
	})
	if err != nil {
		if rejected(err, ModeDirSync, raw) {
			d.log.Info("ldap dirsync: the server refused the incremental read; a full read is needed", "directory", d.safeURL, "base", base, "error", err)
			return SyncResult{Refresh: true}, nil
		}
		return SyncResult{}, d.fail(op, err)
	}
	timeLimit := int((d.cfg.Timeout + time.Second - 1) / time.Second)
	for _, id := range reread {
		hexID := hex.EncodeToString(id[:])
		res, err := searchWithin(c, d.cfg.Timeout, ldap.NewSearchRequest("<GUID="+hexID+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, timeLimit, false,
			sr.Filter, sr.Attributes, nil))
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				continue // gone since: a deletion
			}
			return SyncResult{}, d.fail(op, fmt.Errorf("read object %s: %w", hexID, err))
		}
		if len(res.Entries) == 0 || !under(res.Entries[0].DN, base) {
			continue // out of the filter or the search base: a deletion
		}
		recordOf(res.Entries[0], &s.rec, &s.names)
		e, err := m.entry(&s.rec)
		if err != nil {
			return SyncResult{}, d.fail(op, err)
		}
		s.put(id, &e)
	}
	if err := d.markDisabled(c, req, s.changes); err != nil {
		return SyncResult{}, d.fail(op, err)
	}
	d.log.Debug("ldap dirsync done", "directory", d.safeURL, "base", base, "changes", len(s.changes), "elapsed", time.Since(start))
	return SyncResult{Changes: s.changes, Cookie: tagCookie(dirsyncTag, cookie)}, nil
}

// hexGUID is the UUID of an AD object: objectGUID's bytes in hex.
func hexGUID(id [16]byte) string { return hex.EncodeToString(id[:]) }
