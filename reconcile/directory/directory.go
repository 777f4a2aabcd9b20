// Package directory reads people from a directory for sync templates: LDAP / Active
// Directory (search results decoded by a reader of its own, bulkread.go, everything else
// through go-ldap), or an LDIF file for offline demos and tests. Every
// implementation fails closed: any error means the caller must change nothing for the
// templates that search failed for.
//
// The LDAP Directory is also a Syncer (sync.go): incremental reads of what changed since a
// cookie, by RFC 4533 content synchronization against OpenLDAP's syncprov (refreshOnly each
// cycle, refreshAndPersist while serving), or by Active Directory's DirSync (dirsync.go).
package directory

import "context"

// Entry is one directory entry. Attribute names keep the case the template uses
// (lookups are case-insensitive at search time, but the map is keyed by the name
// requested in Request.Attributes). Binary values (objectGUID) are raw bytes in the string.
type Entry struct {
	DN       string
	Key      string // value of Request.KeyAttribute (first value), or the DN when that is ""
	Disabled bool   // the entry matches Request.DisabledFilter
	Attrs    map[string][]string
}

// Request is one template's search.
type Request struct {
	SearchDN       string   // relative to the directory's base DN; "" = the base DN
	Filter         string   // RFC 4515 filter; "" = (objectClass=*)
	DisabledFilter string   // entries matching it get Disabled = true; "" = none
	KeyAttribute   string   // "" = the DN
	Attributes     []string // attributes the templates use; nil = all
}

// Directory is a source of entries. Search calls fn for each entry in a deterministic
// order; it returns an error (and the caller must treat the whole result as unusable)
// on any failure: refused connection, bind failure, timeout, size or time limit,
// a referral it cannot follow, a page cut short. An error returned by fn stops the search
// and is returned. fn may keep the entries it is given: an Entry shares no buffer that a
// later entry reuses (an LDIF Directory copies what an entry returns out of its read
// buffer).
type Directory interface {
	Search(ctx context.Context, req Request, fn func(Entry) error) error
	Close() error
}
