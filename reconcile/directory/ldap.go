package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config says how to reach an LDAP server. The caller reads BindPassword from the
// environment variable the configuration names; it is never logged.
type Config struct {
	URL          string // ldap://host[:port] or ldaps://host[:port]
	BaseDN       string
	BindDN       string // "" = anonymous
	BindPassword string
	StartTLS     bool   // upgrade ldap:// with StartTLS (refused with ldaps://)
	CAFile       string // PEM bundle to verify the server with; "" = the system roots
	PageSize     int    // simple paged results page size (RFC 2696); 0 = 1000
	// Timeout bounds connecting (TCP and TLS), binding, and each page of a search
	// (client side: with go-ldap the whole page, with the bulk reader each wait for the
	// server's next bytes; and the server-side time limit); 0 = 30s.
	Timeout time.Duration
	Logger  *slog.Logger // nil = slog.Default()
	// GoLDAPReader reads searches with go-ldap alone, not the bulk reader (for comparisons;
	// the bulk reader falls back to go-ldap by itself when it meets what it cannot decode).
	GoLDAPReader bool
}

// ldapDirectory is a Directory over LDAP. Searches read through the bulk reader over a
// connection each (bulkconn.go); the go-ldap path uses one connection shared by all
// searches, made on first use and remade after a failure.
type ldapDirectory struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	safeURL string

	// searchMu serialises searches: OpenLDAP keeps one paged-results state per connection,
	// so interleaved paged searches on one connection invalidate each other's cookies.
	searchMu sync.Mutex

	bulkOff atomic.Bool // the server sent what the bulk reader does not decode: use go-ldap

	mu        sync.Mutex // guards conn, bulk, syncConns and closed
	conn      *ldap.Conn
	bulk      *bulkConn               // of the Search running through the bulk reader, if any
	syncConns map[*ldap.Conn]struct{} // of the incremental reads running (sync.go)
	closed    bool

	syncMode       atomic.Pointer[string] // what Mode detected
	dirsyncAllowed atomic.Pointer[bool]   // what the DirSync probe found (usn.go)
}

// NewLDAP checks the configuration and returns a Directory for it. It does not connect:
// the first Search does (and any Search after a failed one reconnects), so a directory that
// is down fails its templates' searches, not the construction.
func NewLDAP(cfg Config) (Directory, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ldap directory: parse url: %w", err)
	}
	safe := scrubURL(u)
	switch u.Scheme {
	case "ldap", "ldaps":
	default:
		return nil, fmt.Errorf("ldap directory %s: scheme must be ldap or ldaps", safe)
	}
	if u.Scheme == "ldaps" && cfg.StartTLS {
		return nil, fmt.Errorf("ldap directory %s: start_tls is for ldap:// urls, not ldaps://", safe)
	}
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		// An empty password would be an unauthenticated bind that "succeeds" with no rights.
		return nil, fmt.Errorf("ldap directory %s: bind dn %q has an empty password", safe, cfg.BindDN)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	d := &ldapDirectory{cfg: cfg, log: cfg.Logger, safeURL: safe}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap directory %s: read ca file: %w", safe, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap directory %s: ca file %s holds no PEM certificate", safe, cfg.CAFile)
		}
		d.tls.RootCAs = pool
	}
	return d, nil
}

// scrubURL returns scheme://host[:port] with any user information dropped.
func scrubURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

func (d *ldapDirectory) fail(op string, err error) error {
	return fmt.Errorf("%w: %s: %s: %w", ErrFailClosed, d.safeURL, op, err)
}

// connection returns the shared connection, dialling and binding when there is none.
func (d *ldapDirectory) connection() (*ldap.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, d.fail("connect", errors.New("directory is closed"))
	}
	if d.conn != nil && !d.conn.IsClosing() {
		return d.conn, nil
	}
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	c, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.conn = c
	return c, nil
}

// dial connects and binds as the configuration says, with the Timeout on each request.
func (d *ldapDirectory) dial() (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	c, err := ldap.DialURL(d.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return nil, d.fail("connect", err)
	}
	c.SetTimeout(d.cfg.Timeout)
	if d.cfg.StartTLS {
		if err := c.StartTLS(d.tls); err != nil {
			c.Close()
			return nil, d.fail("starttls", err)
		}
	}
	if d.cfg.BindDN != "" {
		if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
			c.Close()
			return nil, d.fail(fmt.Sprintf("bind as %q", d.cfg.BindDN), err)
		}
	}
	return c, nil
}

// drop closes c if it is still the shared connection, so the next search reconnects.
func (d *ldapDirectory) drop(c *ldap.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == c {
		d.conn.Close()
		d.conn = nil
	}
}

func (d *ldapDirectory) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.bulk != nil {
		d.bulk.close() // the running Search fails closed
		d.bulk = nil
	}
	for c := range d.syncConns {
		c.Close() // the running incremental read fails
	}
	if d.conn != nil {
		err := d.conn.Close()
		d.conn = nil
		return err
	}
	return nil
}

// Search runs one paged subtree search. Entries are passed to fn page by page in the
// server's order; if anything fails after some entries were passed, Search still returns
// an error and the caller must discard what it got.
//
// Pages are read by the bulk reader (bulkread.go) over a connection of the Search's own,
// unless the configuration asks for go-ldap (GoLDAPReader) or the server sent something the
// bulk reader does not decode, after which this Directory reads with go-ldap.
//
// DisabledFilter is evaluated client-side with the same evaluator as LDIF files (the
// attributes it references are fetched too), which costs no second search. When it uses
// LDAP_MATCHING_RULE_IN_CHAIN (nested groups), or a matching rule the evaluator does not
// know, only the server can evaluate it: a second paged search for (&filter disabled),
// returning DNs only, runs first.
//
// Searches on one Directory run one at a time (concurrent calls wait); fn must not call
// Search on the same Directory.
func (d *ldapDirectory) Search(ctx context.Context, req Request, fn func(Entry) error) error {
	d.searchMu.Lock()
	defer d.searchMu.Unlock()
	base := searchBase(req.SearchDN, d.cfg.BaseDN)
	filter := strings.TrimSpace(req.Filter)
	if filter == "" {
		filter = "(objectClass=*)"
	}
	if _, err := ldap.CompileFilter(filter); err != nil {
		return d.fail(fmt.Sprintf("search %q", base), fmt.Errorf("filter %q: %w", filter, err))
	}
	m, err := newEntryMaker(req)
	if err != nil {
		return d.fail(fmt.Sprintf("search %q", base), err)
	}
	var bulk *bulkSearch
	if !d.cfg.GoLDAPReader && !d.bulkOff.Load() {
		bulk = &bulkSearch{d: d}
		defer bulk.drop()
	}
	var disabledDNs map[string]bool
	if m.serverDisabled != "" {
		disabledDNs = map[string]bool{}
		err := d.paged(ctx, bulk, base, "(&"+filter+m.serverDisabled+")", []string{"1.1"}, func(r *Record) error {
			disabledDNs[strings.Clone(normalizeDN(r.DN))] = true // r.DN may be in a read buffer
			return nil
		})
		if err != nil {
			return err
		}
	}
	return d.paged(ctx, bulk, base, filter, m.attrs, func(r *Record) error {
		e, err := m.entry(r)
		if err != nil {
			return d.fail(fmt.Sprintf("search %q", base), err)
		}
		if disabledDNs != nil {
			e.Disabled = disabledDNs[normalizeDN(r.DN)]
		}
		return fn(e)
	})
}

// entryMaker makes a request's Entries out of records: the attributes to ask the server
// for, the projection, the key, and the disabled filter when it can be evaluated client-side
// (with the same evaluator as LDIF files). A disabled filter that uses
// LDAP_MATCHING_RULE_IN_CHAIN (nested groups), or a matching rule the evaluator does not
// know, only the server can evaluate: it is left in serverDisabled for the caller.
type entryMaker struct {
	projs          []projection
	all            bool
	key            string // lower-case base name of the key attribute; "" = the DN
	keyAttr        string // as the request writes it
	disabled       *Filter
	serverDisabled string
	attrs          []string // what to ask the server for; ["1.1"] when nothing
	// sl holds the strings the entries return: the record's strings may point into a read
	// buffer, so they are copied into slabs shared by consecutive entries.
	sl slab
}

func newEntryMaker(req Request) (*entryMaker, error) {
	m := &entryMaker{keyAttr: req.KeyAttribute}
	if df := strings.TrimSpace(req.DisabledFilter); df != "" {
		f, err := CompileFilter(df)
		if err == nil && !f.inChain {
			m.disabled = f
		} else {
			if _, err := ldap.CompileFilter(df); err != nil {
				return nil, fmt.Errorf("disabled filter %q: %w", df, err)
			}
			m.serverDisabled = df
		}
	}
	m.projs, m.all, m.key = projections(req)
	seen := map[string]bool{}
	addAttr := func(a string) {
		if l := strings.ToLower(a); !seen[l] {
			seen[l] = true
			m.attrs = append(m.attrs, a)
		}
	}
	if m.all {
		addAttr("*")
	}
	for _, p := range m.projs {
		addAttr(p.name)
	}
	if m.key != "" {
		addAttr(req.KeyAttribute)
	}
	if m.disabled != nil {
		for _, a := range m.disabled.Attributes() {
			addAttr(a)
		}
	}
	if len(m.attrs) == 0 {
		m.attrs = []string{"1.1"} // no attributes, DNs only
	}
	return m, nil
}

// entry makes the Entry of a record whose Attrs hold lower-case base names. Disabled is set
// only by a client-side disabled filter.
func (m *entryMaker) entry(r *Record) (Entry, error) {
	e := entryOf(r, m.projs, m.all, &m.sl)
	if m.key != "" {
		v := r.values(m.key)
		if len(v) == 0 {
			return Entry{}, fmt.Errorf("entry %q has no key attribute %q", r.DN, m.keyAttr)
		}
		e.Key = m.sl.keep(v[0])
	}
	if m.disabled != nil {
		e.Disabled = m.disabled.Match(r)
	}
	return e, nil
}

// recordOf fills rec with a go-ldap entry (the strings are shared, not copied).
func recordOf(le *ldap.Entry, rec *Record, names *attrNames) {
	rec.DN = le.DN
	rec.Attrs = rec.Attrs[:0]
	for i, a := range le.Attributes {
		rec.Attrs = append(rec.Attrs, Attribute{Name: a.Name, Values: a.Values, lower: intern(names, i, a.Name).lower})
	}
}

// paged runs a subtree search with simple paged results (RFC 2696) and calls each for every
// entry, with a record valid only during the call whose Attrs hold lower-case base names.
// It reads with bulk when there is one, else with go-ldap.
func (d *ldapDirectory) paged(ctx context.Context, bulk *bulkSearch, base, filter string, attrs []string, each func(*Record) error) error {
	d.log.Debug("ldap search", "directory", d.safeURL, "ldapsearch", d.ldapsearchCommand(base, filter, attrs))
	start := time.Now()
	var entries, pages int
	var err error
	if bulk != nil && !d.bulkOff.Load() {
		entries, pages, err = bulk.paged(ctx, base, filter, attrs, each)
		if errors.Is(err, errUnsupported) && entries == 0 {
			// Nothing was passed on yet: read this search again with go-ldap.
			entries, pages, err = d.goLDAPPaged(ctx, base, filter, attrs, each)
		}
	} else {
		entries, pages, err = d.goLDAPPaged(ctx, base, filter, attrs, each)
	}
	if err != nil {
		return err
	}
	d.log.Debug("ldap search done", "directory", d.safeURL, "base", base, "entries", entries, "pages", pages, "elapsed", time.Since(start))
	return nil
}

// pageError is the error of a page, saying how far the search got.
func pageError(entries, pages int, err error) error {
	if entries > 0 || pages > 0 {
		return fmt.Errorf("after %d entries in %d pages: %w", entries, pages, err)
	}
	return err
}

// nextPage sets the paging control's cookie from a page's SearchResultDone controls and
// says whether there is another page to ask for.
func nextPage(paging *ldap.ControlPaging, done []ldap.Control) bool {
	ctrl, _ := ldap.FindControl(done, ldap.ControlTypePaging).(*ldap.ControlPaging)
	if ctrl == nil || len(ctrl.Cookie) == 0 {
		return false
	}
	paging.SetCookie(ctrl.Cookie)
	return true
}

// logReference logs a continuation reference: AD's DomainDnsZones and the like point to
// other naming contexts this client does not chase (a referral *result* is an error).
func (d *ldapDirectory) logReference(base, ref string) {
	d.log.Debug("ldap search: continuation reference not followed", "directory", d.safeURL, "base", base, "reference", ref)
}

// bulkSearch reads one Search's pages with the bulk reader, over a connection dialled for
// the Search and closed at its end (or after a failure).
type bulkSearch struct {
	d    *ldapDirectory
	conn *bulkConn
}

func (s *bulkSearch) drop() {
	if s.conn == nil {
		return
	}
	s.d.mu.Lock()
	if s.d.bulk == s.conn {
		s.d.bulk = nil
	}
	s.d.mu.Unlock()
	s.conn.close()
	s.conn = nil
}

// paged is goLDAPPaged through the bulk reader. When the server sends what the bulk reader
// does not decode, later Searches use go-ldap, and the error wraps errUnsupported (not yet
// ErrFailClosed) if no entry was passed to each, so that paged reads the search again.
func (s *bulkSearch) paged(ctx context.Context, base, filter string, attrs []string, each func(*Record) error) (entries, pages int, err error) {
	d := s.d
	op := fmt.Sprintf("search %q %s", base, filter)
	if s.conn == nil {
		if s.conn, err = d.dialBulk(ctx); err != nil {
			return 0, 0, err
		}
	}
	c := s.conn
	timeLimit := int((d.cfg.Timeout + time.Second - 1) / time.Second)
	paging := ldap.NewControlPaging(uint32(d.cfg.PageSize))
	var stopped error // each failed
	cancelled := ctx.Done()
	entry := func(r *Record) error {
		entries++
		if err := each(r); err != nil {
			stopped = err
			return err
		}
		select {
		case <-cancelled:
			return ctx.Err()
		default:
			return nil
		}
	}
	ref := func(uri string) { d.logReference(base, uri) }
	for {
		if err := ctx.Err(); err != nil {
			s.drop() // closing the connection is what makes the server forget the search
			return entries, pages, d.fail(op, err)
		}
		var done []ldap.Control
		err := c.search(base, filter, attrs, timeLimit, paging)
		if err == nil {
			done, err = c.rd.page(c.id, entry, ref)
		}
		if stopped != nil {
			s.drop() // stopped inside a page: the server is still sending it
			return entries, pages, stopped
		}
		if err != nil {
			s.drop()
			err = c.readErr(ctx, err)
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return entries, pages, d.fail(op, err)
			}
			if errors.Is(err, errUnsupported) {
				d.bulkOff.Store(true)
				d.log.Warn("ldap search: the server sent what the bulk reader does not decode; reading with go-ldap from now on",
					"directory", d.safeURL, "base", base, "error", err)
				if entries == 0 {
					return 0, 0, err
				}
			}
			return entries, pages, d.fail(op, pageError(entries, pages, err))
		}
		pages++
		if !nextPage(paging, done) {
			return entries, pages, nil
		}
	}
}

// goLDAPPaged runs the search through go-ldap on the shared connection. Each page is read
// with SearchAsync, so entries reach each (and the caller's fn) while the rest of the page
// is still being received and decoded.
func (d *ldapDirectory) goLDAPPaged(ctx context.Context, base, filter string, attrs []string, each func(*Record) error) (entries, pages int, err error) {
	op := fmt.Sprintf("search %q %s", base, filter)
	conn, err := d.connection()
	if err != nil {
		return 0, 0, err
	}
	timeLimit := int((d.cfg.Timeout + time.Second - 1) / time.Second)
	paging := ldap.NewControlPaging(uint32(d.cfg.PageSize))
	var (
		rec   Record
		names attrNames
	)
	for {
		if err := ctx.Err(); err != nil {
			d.abandon(conn, base, filter, paging)
			return entries, pages, d.fail(op, err)
		}
		sr := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, timeLimit, false,
			filter, attrs, []ldap.Control{paging})
		pctx, cancel := context.WithCancel(ctx)
		res := conn.SearchAsync(pctx, sr, min(d.cfg.PageSize, 1024))
		var (
			done    []ldap.Control // controls of the SearchResultDone
			stopped error          // each failed
		)
		for res.Next() {
			if le := res.Entry(); le != nil {
				entries++
				recordOf(le, &rec, &names)
				if err := each(&rec); err != nil {
					stopped = err
					break
				}
				continue
			}
			if ref := res.Referral(); ref != "" {
				d.logReference(base, ref)
				continue
			}
			if c := res.Controls(); len(c) > 0 {
				done = c
			}
		}
		cancel()
		if stopped != nil || ctx.Err() != nil {
			// Stopped inside a page: the server is still sending it. Closing the connection
			// is what makes it forget the search; the next Search reconnects.
			for res.Next() {
			}
			d.drop(conn)
			if stopped != nil {
				return entries, pages, stopped
			}
			return entries, pages, d.fail(op, ctx.Err())
		}
		err := res.Err()
		if err == nil && done == nil && conn.IsClosing() {
			// SearchAsync ends silently, sending nothing, when the connection is already
			// closing; a SearchResultDone without controls ends silently too, so tell the
			// two apart by the connection: a closing one cannot have answered this page.
			err = errors.New("connection closed before the search completed")
		}
		if err != nil {
			d.drop(conn)
			return entries, pages, d.fail(op, pageError(entries, pages, err))
		}
		pages++
		if !nextPage(paging, done) {
			return entries, pages, nil
		}
	}
}

// abandon tells the server to release a paged search stopped early (RFC 2696: page size 0
// with the cookie). Best effort: errors are ignored.
func (d *ldapDirectory) abandon(conn *ldap.Conn, base, filter string, paging *ldap.ControlPaging) {
	if len(paging.Cookie) == 0 {
		return
	}
	stop := ldap.NewControlPaging(0)
	stop.SetCookie(paging.Cookie)
	_, _ = conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"1.1"}, []ldap.Control{stop}))
}

// ldapsearchCommand is the same search as an OpenLDAP ldapsearch command line, for
// operators to reproduce it. The password is never included (-W prompts for it).
func (d *ldapDirectory) ldapsearchCommand(base, filter string, attrs []string) string {
	var b strings.Builder
	if d.cfg.CAFile != "" {
		b.WriteString("LDAPTLS_CACERT=" + shellQuote(d.cfg.CAFile) + " ")
	}
	b.WriteString("ldapsearch -H " + shellQuote(d.safeURL) + " -x")
	if d.cfg.StartTLS {
		b.WriteString(" -ZZ")
	}
	if d.cfg.BindDN != "" {
		b.WriteString(" -D " + shellQuote(d.cfg.BindDN) + " -W")
	}
	b.WriteString(" -b " + shellQuote(base) + " -s sub")
	b.WriteString(" -E pr=" + strconv.Itoa(d.cfg.PageSize) + "/noprompt")
	b.WriteString(" -l " + strconv.Itoa(int((d.cfg.Timeout+time.Second-1)/time.Second)))
	b.WriteString(" " + shellQuote(filter))
	for _, a := range attrs {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/=@+%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
