package directory

import (
	"bytes"
	"context"
	"io"
	"net"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// BulkPage is one page of a search as a reader decoded it, for the differential tests.
type BulkPage struct {
	Entries  []*ldap.Entry
	Refs     []string       // first URI of each continuation reference
	Controls []ldap.Control // of the SearchResultDone
	Err      error
}

// ReadBulkPages decodes a stream of pages with the bulk reader, page k answering message id
// k+1, up to n pages or the first error.
func ReadBulkPages(stream []byte, n int) []BulkPage {
	r := newBulkReader(bytes.NewReader(stream))
	var out []BulkPage
	for k := 0; k < n; k++ {
		var p BulkPage
		p.Controls, p.Err = r.page(int64(k+1), func(rec *Record) error {
			p.Entries = append(p.Entries, ldapEntryOf(rec))
			return nil
		}, func(uri string) {
			if uri != "" {
				p.Refs = append(p.Refs, uri)
			}
		})
		out = append(out, p)
		if p.Err != nil {
			break
		}
	}
	return out
}

// ldapEntryOf copies a record into go-ldap's form (names and values, not byte values).
func ldapEntryOf(r *Record) *ldap.Entry {
	e := &ldap.Entry{DN: string([]byte(r.DN))}
	for _, a := range r.Attrs {
		vals := make([]string, len(a.Values))
		for i, v := range a.Values {
			vals[i] = string([]byte(v))
		}
		e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: a.Name, Values: vals})
	}
	return e
}

// CapturePages runs an anonymous paged subtree search on the server at addr (host:port,
// plain LDAP) and returns the bytes of each page's responses as the server sent them.
func CapturePages(addr, base, filter string, attrs []string, pageSize int) ([][]byte, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &bulkConn{nc: nc, timeout: 10 * time.Second, stop: func() bool { return true }}
	defer c.close()
	var got bytes.Buffer
	c.rd = newBulkReader(io.TeeReader(deadlineReader{c}, &got))
	paging := ldap.NewControlPaging(uint32(pageSize))
	var pages [][]byte
	for {
		got.Reset()
		if err := c.search(base, filter, attrs, 10, paging); err != nil {
			return nil, err
		}
		done, err := c.rd.page(c.id, func(*Record) error { return nil }, func(string) {})
		if err != nil {
			return nil, err
		}
		if c.rd.br.Buffered() > c.rd.pending {
			return nil, io.ErrShortBuffer // the server sent more than the page
		}
		pages = append(pages, bytes.Clone(got.Bytes()))
		if !nextPage(paging, done) {
			return pages, nil
		}
	}
}

// CountBulkPages decodes a stream of n pages as ReadBulkPages does, but only counts the
// entries: the bulk reader's own cost, for benchmarks.
func CountBulkPages(stream []byte, n int) (int, error) {
	r := newBulkReader(bytes.NewReader(stream))
	entries := 0
	count := func(*Record) error { entries++; return nil }
	for k := 0; k < n; k++ {
		if _, err := r.page(int64(k+1), count, func(string) {}); err != nil {
			return entries, err
		}
	}
	return entries, nil
}

// RefreshBaseline is Baseline's fallback for syncprov (a refreshOnly sync search from no
// cookie, UUIDs only), for BenchmarkSync's comparison with the contextCSN cookie.
func RefreshBaseline(ctx context.Context, d Directory, req Request) ([]byte, error) {
	l := d.(*ldapDirectory)
	c, done, err := l.syncConn(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	raw, err := l.refreshBaseline(ctx, c, req)
	return tagCookie(syncreplTag, raw), err
}
