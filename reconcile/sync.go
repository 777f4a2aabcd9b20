package reconcile

// Incremental directory reads (SPEC §7). A template whose directory can say what changed
// since a cookie (directory.Syncer) is planned from those changes alone:
//
//   - the changed entries (and the pending ones, see below) are searched and rendered as a
//     full read renders them;
//   - every other entry of the search is known to render exactly what its objects already
//     are, so its objects are marked unchanged in the index without being read (premark);
//     this is what a full read would find by rendering and comparing digests;
//   - the objects of deleted entries (found by their stable id in sync_entries) are not
//     marked, so the diff deletes them through the same guards as a full read's.
//
// An entry whose objects do not end up exactly as it renders — skipped for a clash or a
// duplicate, invalid, a render error, a disabled user a CSV row would take — is pending:
// every incremental cycle searches and renders it again, as a full read would, until it
// settles. The plan of an incremental cycle so equals a full read's (the property test
// checks it); warnings of settled entries (no_email) appear only in full reads.
//
// The cookie, the ids and the pending flags are written in the apply's transaction
// (Plan.syncWrites), never before: a cycle that does not commit is given the same changes
// again. A full read runs when there is no cookie, the commit changed, full_read elapsed,
// or the directory rejected the cookie; it takes a baseline cookie just before it reads.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// Read modes of a template's search, as the status page shows them.
const (
	ReadFull        = "full"
	ReadIncremental = "incremental"
)

// SyncRead is how one template's directory was read in a plan.
type SyncRead struct {
	Directory string    `json:"directory"`
	Template  string    `json:"template"`
	Mode      string    `json:"mode"`             // full | incremental
	Protocol  string    `json:"protocol"`         // syncrepl | dirsync | usn | "" (full reads only)
	Reason    string    `json:"reason,omitempty"` // why a full read: "no cookie", "commit changed", …
	Changes   int       `json:"changes"`          // entries changed or deleted (incremental)
	Pending   int       `json:"pending"`          // pending entries read again (incremental)
	FullRead  time.Time `json:"last_full_read"`   // zero: never
}

// uuidAttribute is the attribute that carries an entry's stable id.
func uuidAttribute(protocol string) string {
	if directory.ObjectGUIDMode(protocol) {
		return "objectGUID"
	}
	return "entryUUID"
}

// entryUUID is an entry's stable id as the Syncer gives it: entryUUID as is (lower
// case), objectGUID as hex.
func entryUUID(protocol string, attrs map[string][]string) string {
	name := uuidAttribute(protocol)
	v := attrs[name]
	if len(v) == 0 {
		for k, vs := range attrs {
			if strings.EqualFold(k, name) {
				v = vs
				break
			}
		}
	}
	if len(v) == 0 || v[0] == "" {
		return ""
	}
	if directory.ObjectGUIDMode(protocol) {
		return hex.EncodeToString([]byte(v[0]))
	}
	return strings.ToLower(v[0])
}

// uuidFilter is a filter matching the entries with the given ids.
func uuidFilter(protocol string, uuids []string) string {
	var b strings.Builder
	b.WriteString("(|")
	for _, u := range uuids {
		b.WriteString("(" + uuidAttribute(protocol) + "=")
		if directory.ObjectGUIDMode(protocol) {
			raw, _ := hex.DecodeString(u)
			for _, c := range raw {
				fmt.Fprintf(&b, "\\%02x", c)
			}
		} else {
			b.WriteString(u)
		}
		b.WriteString(")")
	}
	b.WriteString(")")
	return b.String()
}

// syncReq identifies a template's search on a directory: a changed request (filter,
// attributes, key) is a new search, read in full.
func syncReq(dir, template string, req directory.Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q", req.SearchDN, req.Filter, req.DisabledFilter, req.KeyAttribute, req.Attributes)
	return dir + "/" + template + "/" + hex.EncodeToString(h.Sum(nil)[:8])
}

// syncRead is one template's read in a plan: how it is read and what it saw.
type syncRead struct {
	info     SyncRead
	req      string
	token    string // incremental: the sync token of the search's entries when read
	syncer   directory.Syncer
	cookie   []byte // the cookie to store once applied
	noCookie bool   // an entry came without its id: do not store a cookie (read in full next time)
	// incremental: the entries to render (changed and pending), the ids of deleted ones
	// with the key they had, and the keys whose objects are not marked unchanged.
	entries  []directory.Entry
	gone     map[string]string
	affected map[string]bool
	// prev is what the search held of each id changed or pending (nil: new to it).
	prev map[string]*state.SyncEntry
	// records are the entries rendered (full: every entry), for sync_entries.
	records []syncRecord
	// known is how many entries the search had before this read; added, how many ids it
	// had not seen (the search's entry count is known+added-len(gone)).
	known, added int
}

// syncRecord is a rendered entry: its id and key, and what it rendered that was not
// unchanged (to find it among the plan's warnings).
type syncRecord struct {
	uuid, key          string
	vmr, device, email string
	pending            bool
}

// syncPlan is the incremental side of one plan.
type syncPlan struct {
	e      *Engine
	commit string
	now    time.Time
	reads  map[string]*syncRead // by template
	errs   map[string]error     // templates whose sync read failed
	csv    map[string]bool      // emails of users/*.csv rows
}

// prepareSync decides, for each template of repo, between a full and an incremental
// read, and fetches the changes of the incremental ones.
func (e *Engine) prepareSync(ctx context.Context, repo *schema.Repo, commit string, open func(string) (directory.Directory, error)) (*syncPlan, error) {
	sp := &syncPlan{e: e, commit: commit, now: e.now(), reads: map[string]*syncRead{}, errs: map[string]error{}, csv: map[string]bool{}}
	for _, r := range repo.Users {
		sp.csv[strings.ToLower(r.Email)] = true
	}
	cookies, err := e.DB.SyncCookies(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range repo.Templates {
		cfg, ok := e.Config.Directories[t.Source]
		if !ok || cfg.Sync == schema.SyncFull {
			continue
		}
		dir, err := open(t.Source)
		if err != nil {
			continue // Render fails the template with this error
		}
		syncer, ok := dir.(directory.Syncer)
		if !ok {
			continue
		}
		sr, err := e.syncTemplate(ctx, sp, t, cfg, syncer, cookies)
		if err != nil {
			sp.errs[t.Name] = fmt.Errorf("directory %s: incremental read: %w", t.Source, err)
			continue
		}
		if sr != nil {
			sp.reads[t.Name] = sr
		}
	}
	return sp, nil
}

// templateRequest is the search a template makes.
func templateRequest(t *schema.Template, attrs []string) directory.Request {
	return directory.Request{SearchDN: t.UserSearchDN, Filter: t.UserFilter, DisabledFilter: t.DisabledFilter,
		KeyAttribute: t.KeyAttribute, Attributes: attrs}
}

// SyncRequest is the search a template makes with incremental reads on: the request with
// its id attribute, and the id its cookie is stored under (serve's persistent search uses it).
func (e *Engine) SyncRequest(ctx context.Context, t *schema.Template, protocol string) (directory.Request, string, error) {
	env, err := e.Env(ctx)
	if err != nil {
		return directory.Request{}, "", err
	}
	_, srcs, err := compileTemplate(env, t)
	if err != nil {
		return directory.Request{}, "", err
	}
	req := templateRequest(t, attributesOf(srcs, t.KeyAttribute, uuidAttribute(protocol)))
	return req, syncReq(t.Source, t.Name, req), nil
}

func (e *Engine) syncTemplate(ctx context.Context, sp *syncPlan, t *schema.Template, cfg schema.DirConfig, syncer directory.Syncer, cookies map[string]state.SyncCookie) (*syncRead, error) {
	protocol, err := syncer.Mode(ctx)
	if err != nil || protocol == "" {
		return nil, err
	}
	env, err := e.Env(ctx)
	if err != nil {
		return nil, err
	}
	_, srcs, err := compileTemplate(env, t)
	if err != nil {
		return nil, nil // Render fails the template with the pattern's error
	}
	req := templateRequest(t, attributesOf(srcs, t.KeyAttribute, uuidAttribute(protocol)))
	sr := &syncRead{req: syncReq(t.Source, t.Name, req), syncer: syncer,
		info: SyncRead{Directory: t.Source, Template: t.Name, Mode: ReadFull, Protocol: protocol}}
	c, ok := cookies[sr.req]
	every := cfg.FullRead.Duration
	if every <= 0 {
		every = 24 * time.Hour
	}
	switch {
	case !ok:
		sr.info.Reason = "no cookie"
	case c.Mode != protocol:
		sr.info.Reason = "protocol changed"
	case c.Commit != sp.commit:
		sr.info.Reason = "commit changed"
	case sp.now.Sub(c.FullReadAt) >= every:
		sr.info.Reason = "full_read elapsed"
	}
	if ok {
		sr.info.FullRead = c.FullReadAt
	}
	if sr.info.Reason == "" {
		if sr.token, err = e.DB.SyncToken(ctx, sr.req); err != nil {
			return nil, err
		}
		var knownErr error
		res, err := syncer.Changes(ctx, req, c.Cookie, e.DB.KnownSyncIDs(ctx, sr.req, &knownErr))
		if err == nil {
			err = knownErr
		}
		if err != nil {
			return nil, err
		}
		if !res.Refresh {
			sr.info.Mode = ReadIncremental
			if sr.cookie = res.Cookie; sr.cookie == nil {
				sr.cookie = c.Cookie
			}
			return sr, e.loadChanges(ctx, sr, req, protocol, res.Changes)
		}
		sr.info.Reason = "cookie rejected"
		e.logger().Info("directory rejected the sync cookie; reading in full", "directory", t.Source, "template", t.Name)
	}
	// A full read: the baseline first, so a change made during the read comes again.
	if sr.cookie, err = syncer.Baseline(ctx, req); err != nil {
		return nil, err
	}
	sr.info.FullRead = sp.now
	return sr, nil
}

// loadChanges turns changes into the entries to render and the keys they affect.
func (e *Engine) loadChanges(ctx context.Context, sr *syncRead, req directory.Request, protocol string, changes []directory.Change) error {
	last := map[string]*directory.Entry{} // an entry changed twice: its last state counts
	var order []string
	for _, c := range changes {
		if _, ok := last[c.UUID]; !ok {
			order = append(order, c.UUID)
		}
		last[c.UUID] = c.Entry
	}
	sr.info.Changes = len(order)
	pending, err := e.syncPending(ctx, sr)
	if err != nil {
		return err
	}
	var again []string // pending and not changed: searched again
	for _, u := range pending {
		if _, ok := last[u]; !ok {
			again = append(again, u)
		}
	}
	sr.info.Pending = len(again)
	looked := append(slices.Clone(order), again...)
	held, err := e.DB.SyncEntries(ctx, sr.req, looked)
	if err != nil {
		return err
	}
	keys := make(map[string]string, len(held))
	sr.prev = make(map[string]*state.SyncEntry, len(looked))
	for _, u := range looked {
		sr.prev[u] = nil
		if en, ok := held[u]; ok {
			keys[u], sr.prev[u] = en.Key, &en
		}
	}
	sr.gone, sr.affected = map[string]string{}, map[string]bool{}
	for _, u := range order {
		if k, ok := keys[u]; ok {
			sr.affected[k] = true
		}
		en := last[u]
		if en == nil {
			if k, ok := keys[u]; ok {
				sr.gone[u] = k
			}
			continue
		}
		sr.affected[en.Key] = true
		if _, ok := keys[u]; !ok {
			sr.added++
		}
		if entryUUID(protocol, en.Attrs) == "" {
			en.Attrs = maps.Clone(en.Attrs)
			if en.Attrs == nil {
				en.Attrs = map[string][]string{}
			}
			en.Attrs[uuidAttribute(protocol)] = []string{uuidValue(protocol, u)}
		}
		sr.entries = append(sr.entries, *en)
	}
	if len(again) > 0 {
		dir, ok := sr.syncer.(directory.Directory)
		if !ok {
			return fmt.Errorf("pending entries: the directory cannot search")
		}
		found := map[string]bool{}
		for i := 0; i < len(again); i += 200 {
			q := req
			q.Filter = "(&" + orAll(req.Filter) + uuidFilter(protocol, again[i:min(i+200, len(again))]) + ")"
			if err := dir.Search(ctx, q, func(en directory.Entry) error {
				u := entryUUID(protocol, en.Attrs)
				found[u] = true
				sr.affected[en.Key] = true
				sr.entries = append(sr.entries, en)
				return nil
			}); err != nil {
				return fmt.Errorf("search pending entries: %w", err)
			}
		}
		for _, u := range again {
			k := keys[u]
			sr.affected[k] = true
			if !found[u] {
				sr.gone[u] = k // out of the search since: its objects go, as in a full read
			}
		}
	}
	return nil
}

// orAll is a filter in parentheses; "" matches everything.
func orAll(f string) string {
	if f == "" {
		return "(objectClass=*)"
	}
	if !strings.HasPrefix(f, "(") {
		return "(" + f + ")"
	}
	return f
}

// uuidValue is the attribute value of an id as entryUUID writes it (objectGUID raw).
func uuidValue(protocol, u string) string {
	if directory.ObjectGUIDMode(protocol) {
		raw, _ := hex.DecodeString(u)
		return string(raw)
	}
	return u
}

// search is how renderTemplate reads t: the directory's search, or the incremental
// entries. req gets the id attribute when t is synced.
func (sp *syncPlan) search(t *schema.Template, dir directory.Directory, req *directory.Request) (func(context.Context, func(directory.Entry) error) error, *syncRead, error) {
	plain := func(ctx context.Context, fn func(directory.Entry) error) error { return dir.Search(ctx, *req, fn) }
	if sp == nil {
		return plain, nil, nil
	}
	if err := sp.errs[t.Name]; err != nil {
		return nil, nil, err
	}
	sr := sp.reads[t.Name]
	if sr == nil {
		return plain, nil, nil
	}
	req.Attributes = attributesOf(nil, append(slices.Clone(req.Attributes), uuidAttribute(sr.info.Protocol))...)
	if sr.info.Mode == ReadFull {
		return plain, sr, nil
	}
	return func(ctx context.Context, fn func(directory.Entry) error) error {
		for _, en := range sr.entries {
			if err := fn(en); err != nil {
				return err
			}
		}
		return nil
	}, sr, nil
}

// record notes what an entry rendered (renderTemplate's collector, one goroutine).
func (sr *syncRead) record(sp *syncPlan, idx *refIndex, e *directory.Entry, r *entryOutput) {
	u := entryUUID(sr.info.Protocol, e.Attrs)
	if u == "" {
		sr.noCookie = true
		return
	}
	rec := syncRecord{uuid: strings.Clone(u), key: strings.Clone(e.Key), pending: len(r.keep) > 0}
	if r.vmr != nil {
		rec.vmr = r.vmr.Name
	}
	if r.device != nil {
		rec.device = r.device.Alias
	}
	if r.sameUser != 0 {
		rec.email = strings.Clone(idx.ix.Users[r.sameUser-1].Email())
	}
	if r.user != nil {
		rec.email = r.user.Email
		// A directory user not imported (disabled) still takes its email from a CSV row.
		if (r.user.Disabled || !r.user.Active) && sp.csv[r.user.Email] {
			rec.pending = true
		}
	}
	sr.records = append(sr.records, rec)
}

// entries is how many entries the search has after an incremental read.
func (sr *syncRead) entryCount() int { return sr.known + sr.added - len(sr.gone) }

// writes are what the plan p records of the sync reads once applied: for each template
// that did not fail, its cookie and entries, the pending ones found by p's warnings.
func (sp *syncPlan) writes(p *Plan, d *Desired) []state.SyncWrite {
	if sp == nil {
		return nil
	}
	failed := map[string]bool{}
	for _, t := range d.Templates {
		if t.Err != nil {
			failed[t.Name] = true
		}
	}
	warned := map[string]bool{}
	for _, w := range p.Warnings {
		switch w.Code {
		case "conflict", "duplicate_alias", "alias_clash", "duplicate_email", "invalid", "render_error":
			warned[w.Key] = true
		}
	}
	var out []state.SyncWrite
	for _, t := range d.Templates {
		sr := sp.reads[t.Name]
		if sr != nil && sr.noCookie {
			sp.e.logger().Warn("directory entries came without their id; this template is read in full until they have one",
				"template", t.Name, "directory", sr.info.Directory, "attribute", uuidAttribute(sr.info.Protocol))
		}
		if sr == nil || failed[t.Name] || sr.noCookie || sr.cookie == nil {
			continue
		}
		w := state.SyncWrite{Full: sr.info.Mode == ReadFull, Seen: sr.token, Cookie: state.SyncCookie{Req: sr.req, Directory: sr.info.Directory,
			Template: sr.info.Template, Mode: sr.info.Protocol, Cookie: sr.cookie, Commit: sp.commit, FullReadAt: sr.info.FullRead}}
		keys := map[string]int{} // entries by key: a key two entries share makes both pending
		for _, r := range sr.records {
			keys[r.key]++
		}
		for _, r := range sr.records {
			pending := r.pending || keys[r.key] > 1 || (r.vmr != "" && warned[r.vmr]) || (r.device != "" && warned[r.device]) || (r.email != "" && warned[r.email])
			w.Entries = append(w.Entries, state.SyncEntry{UUID: r.uuid, Key: r.key, Email: r.email, Pending: pending})
		}
		for u := range sr.gone {
			w.Entries = append(w.Entries, state.SyncEntry{UUID: u, Gone: true})
		}
		if w.Full || len(w.Entries) > 0 {
			w.Token = state.NewSyncToken(len(w.Entries))
		}
		out = append(out, w)
	}
	return out
}

// reads is the plan's sync reads, in template order.
func (sp *syncPlan) infos(d *Desired) []SyncRead {
	if sp == nil {
		return nil
	}
	var out []SyncRead
	for _, t := range d.Templates {
		if sr := sp.reads[t.Name]; sr != nil {
			out = append(out, sr.info)
		}
	}
	return out
}

// logger is the engine's logger, or a discarding one.
func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// remember keeps p for quiet cycles when it changes nothing and no template failed.
func (e *Engine) remember(p *Plan, d *Desired) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last = nil
	if p.HasChanges() || len(p.Errors) > 0 || len(p.syncReads) != len(d.Templates) {
		return
	}
	e.last = p
}

// quiet returns the plan of a quiet cycle, or nil: when every template is read
// incrementally with no change and nothing pending, at the commit and state version of
// the last plan, which changed nothing, and no invitation has expired since, planning
// again would give that plan: it is reused, with the new cookies to store.
func (e *Engine) quiet(ctx context.Context, repo *schema.Repo, commit string, sp *syncPlan) (*Plan, error) {
	e.mu.Lock()
	last := e.last
	e.mu.Unlock()
	if last == nil || last.Commit != commit || len(sp.errs) > 0 || len(sp.reads) != len(repo.Templates) {
		return nil, nil
	}
	for _, sr := range sp.reads {
		if sr.info.Mode != ReadIncremental || len(sr.entries) > 0 || len(sr.gone) > 0 || sr.info.Changes > 0 || sr.info.Pending > 0 {
			return nil, nil
		}
	}
	v, err := e.DB.StateVersion(ctx)
	if err != nil || v != last.StateVersion {
		return nil, err
	}
	if due, err := e.DB.InviteDue(ctx, sp.now); err != nil || due {
		return nil, err
	}
	p := *last
	p.syncWrites, p.syncReads, p.applied = nil, nil, nil // last's apply hook followed last's writes
	for _, t := range repo.Templates {
		sr := sp.reads[t.Name]
		p.syncWrites = append(p.syncWrites, state.SyncWrite{Cookie: state.SyncCookie{Req: sr.req, Directory: sr.info.Directory,
			Template: sr.info.Template, Mode: sr.info.Protocol, Cookie: sr.cookie, Commit: commit, FullReadAt: sr.info.FullRead}})
		p.syncReads = append(p.syncReads, sr.info)
	}
	return &p, nil
}

// indexCache is the index of the state an incremental plan loaded, with the digester
// (its seed) it was made with: the next plan at the same commit and state version uses it
// instead of reading 1.2 million rows again.
type indexCache struct {
	commit string
	dg     *digester
	ix     *state.Index
	tables *refTables // built at the first plan that uses ix
}

// refTables returns the cached lookup tables of ix, building them once; nil when ix is
// not the cached index.
func (e *Engine) refTables(ix *state.Index) *refTables {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.index
	if c == nil || c.ix != ix {
		return nil
	}
	if c.tables == nil {
		c.tables = buildRefTables(ix, c.dg)
	}
	return c.tables
}

// cachedIndex returns the digester and index to plan with when the cache holds them for
// commit and the state version has not moved; a digester alone (no index) when only the
// commit matches, so cached keys stay valid; nil, nil otherwise.
func (e *Engine) cachedIndex(ctx context.Context, sp *syncPlan, commit string) (*digester, *state.Index) {
	if sp == nil {
		return nil, nil
	}
	e.mu.Lock()
	c := e.index
	e.mu.Unlock()
	if c == nil || c.commit != commit {
		return nil, nil
	}
	v, err := e.DB.StateVersion(ctx)
	if err != nil || v != c.ix.Small.StateVersion {
		return c.dg, nil
	}
	return c.dg, c.ix
}

// cachedTables returns the lookup tables the cache holds for ix, without building them.
func (e *Engine) cachedTables(ix *state.Index) *refTables {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.index == nil || e.index.ix != ix {
		return nil
	}
	return e.index.tables
}

func (e *Engine) keepIndex(commit string, dg *digester, ix *state.Index) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.index == nil || e.index.dg != dg {
		e.sets = nil // hashed with another seed
	}
	e.index = &indexCache{commit: commit, dg: dg, ix: ix}
}

// refreshIndex follows the engine's own apply of p, planned with ix, which made state
// version: when ix is the cached index, the cache takes ix with the rows p touched and
// created read again (a handful instead of the whole state), so the next cycle does not
// reload the index. Any failure, or another write since (the state is no longer at
// version), drops the cache instead: the next cycle loads the index in full. It returns
// the refreshed index and its lookup tables (nil when there is no refreshed index, or
// the plan built none for ix).
func (e *Engine) refreshIndex(ctx context.Context, commit string, dg *digester, ix *state.Index, p *Plan, version int64) (*state.Index, *refTables) {
	e.mu.Lock()
	c := e.index
	e.mu.Unlock()
	if c == nil || c.ix != ix || c.dg != dg || c.commit != commit {
		return nil, nil
	}
	if p.Len() > 10000 { // a first apply, say: loading the index in full costs no more
		return nil, nil
	}
	var t state.Touched
	for _, ch := range p.All() {
		switch o := ch.oldObj.(type) {
		case *account.VMR:
			t.VMRs = append(t.VMRs, state.TouchedRow{ID: o.ID, SyncTag: o.SyncTag})
		case *account.Device:
			t.Devices = append(t.Devices, state.TouchedRow{ID: o.ID, SyncTag: o.SyncTag})
		case *account.User:
			t.Users = append(t.Users, state.TouchedUser{ID: o.ID, SyncTag: o.SyncTag, Active: o.Active, Paid: o.License == "paid"})
		}
	}
	start := time.Now()
	fresh, err := e.DB.RefreshIndex(ctx, ix, dg.spec, t)
	e.logger().Debug("index refreshed after the apply", "vmrs", len(t.VMRs), "devices", len(t.Devices), "users", len(t.Users),
		"took", time.Since(start), "err", err)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.index != c {
		return nil, nil
	}
	if err == nil && fresh.Small.StateVersion != version {
		err = fmt.Errorf("refresh index: the state moved to version %d after the apply's %d", fresh.Small.StateVersion, version)
	}
	if err != nil {
		e.logger().Debug("index refresh failed; the next cycle loads it in full", "err", err)
		e.index = nil
		return nil, nil
	}
	e.index = &indexCache{commit: commit, dg: dg, ix: fresh}
	if c.tables != nil {
		e.index.tables = movedTables(c.tables, ix, fresh, dg)
	}
	return fresh, e.index.tables
}
