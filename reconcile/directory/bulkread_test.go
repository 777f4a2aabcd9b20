package directory_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
)

// assembleBER builds bytes from the notation of testdata/ldapstream: hex octets ("02 01 01"),
// Go-quoted strings ("uid=a"), and elements written as an identifier octet followed by
// { contents } or by a string (04 "uid"), whose length is computed: minimal, or in long
// form of k octets when the identifier is suffixed with Lk ("30L4 { ... }" is 0x30 0x84 and
// four length octets, as Active Directory sends). "#" starts a comment.
func assembleBER(src string) ([]byte, error) {
	var toks []string
	for _, line := range strings.Split(src, "\n") {
		for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimSpace(rest) {
			switch {
			case rest[0] == '#':
				rest = ""
				continue
			case rest[0] == '"':
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return nil, fmt.Errorf("bad string in %q: %w", line, err)
				}
				toks = append(toks, q)
				rest = rest[len(q):]
				continue
			case rest[0] == '{' || rest[0] == '}':
				toks = append(toks, rest[:1])
				rest = rest[1:]
				continue
			}
			n := strings.IndexAny(rest, " \t{}\"#")
			if n < 0 {
				n = len(rest)
			}
			toks = append(toks, rest[:n])
			rest = rest[n:]
		}
	}
	out, next, err := assembleSeq(toks, 0)
	if err == nil && next < len(toks) {
		err = fmt.Errorf("unbalanced }")
	}
	return out, err
}

// assembleSeq assembles toks from i up to an unmatched "}" (or the end) and returns the
// index of that "}".
func assembleSeq(toks []string, i int) (out []byte, next int, err error) {
	for ; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t == "}":
			return out, i, nil
		case t == "{":
			return nil, 0, fmt.Errorf("{ without an identifier before it")
		case t[0] == '"':
			s, err := strconv.Unquote(t)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, s...)
			continue
		}
		hex, long, _ := strings.Cut(t, "L")
		b, err := strconv.ParseUint(hex, 16, 8)
		if err != nil || len(hex) != 2 {
			return nil, 0, fmt.Errorf("bad octet %q", t)
		}
		out = append(out, byte(b))
		var inner []byte
		end := i + 1
		switch {
		case i+1 < len(toks) && toks[i+1] == "{":
			if inner, end, err = assembleSeq(toks, i+2); err != nil {
				return nil, 0, err
			}
			if end >= len(toks) {
				return nil, 0, fmt.Errorf("{ without }")
			}
		case i+1 < len(toks) && toks[i+1][0] == '"':
			s, err := strconv.Unquote(toks[i+1])
			if err != nil {
				return nil, 0, err
			}
			inner = []byte(s)
		default:
			continue
		}
		if long != "" {
			k, _ := strconv.Atoi(long)
			out = append(out, 0x80|byte(k))
			for j := k - 1; j >= 0; j-- {
				out = append(out, byte(len(inner)>>(8*j)))
			}
		} else {
			out = append(out, lengthOctets(len(inner))...)
		}
		out = append(out, inner...)
		i = end
	}
	return out, i, nil
}

func lengthOctets(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	case n < 0x10000:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
	return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
}

// goLDAPPages decodes a stream of pages with go-ldap, the oracle: a go-ldap Conn searches
// over an in-memory pipe whose other end answers its k-th request with pages[k] and
// closes after the last.
func goLDAPPages(pages [][]byte) []directory.BulkPage {
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		for _, p := range pages {
			if _, err := ber.ReadPacket(srv); err != nil {
				return
			}
			if _, err := srv.Write(p); err != nil {
				return
			}
		}
	}()
	conn := ldap.NewConn(cli, false)
	conn.Start()
	conn.SetTimeout(10 * time.Second)
	defer conn.Close()
	var out []directory.BulkPage
	for range pages {
		var p directory.BulkPage
		req := ldap.NewSearchRequest("dc=example,dc=com", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil)
		res := conn.SearchAsync(context.Background(), req, 0)
		for res.Next() {
			if e := res.Entry(); e != nil {
				p.Entries = append(p.Entries, e)
			} else if r := res.Referral(); r != "" {
				p.Refs = append(p.Refs, r)
			} else if c := res.Controls(); len(c) > 0 {
				p.Controls = c
			}
		}
		p.Err = res.Err()
		out = append(out, p)
		if p.Err != nil {
			break
		}
	}
	return out
}

type plainAttr struct {
	Name   string
	Values []string
}

func plainEntry(e *ldap.Entry) (string, []plainAttr) {
	var attrs []plainAttr
	for _, a := range e.Attributes {
		attrs = append(attrs, plainAttr{a.Name, append([]string{}, a.Values...)})
	}
	return e.DN, attrs
}

func controlStrings(cs []ldap.Control) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

// agree checks the bulk reader against go-ldap on the same pages: whatever the bulk reader
// passed on, go-ldap passed on too, identically; a page the bulk reader accepted, go-ldap
// accepted with the same entries, references and controls; a result code the bulk reader
// reports, go-ldap reports. (The bulk reader may refuse what go-ldap accepts: it is strict.)
func agree(bulk, oracle []directory.BulkPage) error {
	for k, m := range bulk {
		if k >= len(oracle) {
			return fmt.Errorf("page %d: bulk reader read it, go-ldap stopped before", k)
		}
		o := oracle[k]
		if len(m.Entries) > len(o.Entries) {
			return fmt.Errorf("page %d: bulk reader passed on %d entries, go-ldap %d (err %v)", k, len(m.Entries), len(o.Entries), o.Err)
		}
		for i := range m.Entries {
			mdn, ma := plainEntry(m.Entries[i])
			odn, oa := plainEntry(o.Entries[i])
			if mdn != odn || !reflect.DeepEqual(ma, oa) {
				return fmt.Errorf("page %d entry %d:\nbulk   %q %q\ngo-ldap %q %q", k, i, mdn, ma, odn, oa)
			}
		}
		if len(m.Refs) > len(o.Refs) || !slices.Equal(m.Refs, o.Refs[:len(m.Refs)]) {
			return fmt.Errorf("page %d: references %q, go-ldap %q", k, m.Refs, o.Refs)
		}
		var me, oe *ldap.Error
		switch {
		case m.Err == nil && o.Err != nil:
			return fmt.Errorf("page %d: bulk reader accepted it, go-ldap failed: %v", k, o.Err)
		case m.Err == nil:
			if len(m.Entries) != len(o.Entries) || len(m.Refs) != len(o.Refs) {
				return fmt.Errorf("page %d: %d entries %d refs, go-ldap %d and %d", k, len(m.Entries), len(m.Refs), len(o.Entries), len(o.Refs))
			}
			if mc, oc := controlStrings(m.Controls), controlStrings(o.Controls); !slices.Equal(mc, oc) {
				return fmt.Errorf("page %d: done controls %q, go-ldap %q", k, mc, oc)
			}
		case errors.As(m.Err, &me) && me.ResultCode < ldap.ErrorNetwork:
			if !errors.As(o.Err, &oe) || oe.ResultCode != me.ResultCode || m.Err.Error() != o.Err.Error() {
				return fmt.Errorf("page %d: result %v, go-ldap %v", k, m.Err, o.Err)
			}
		}
	}
	return nil
}

// streamCase is a hand-built page in testdata/ldapstream with its expected outcome, from its
// "# want:" line: "ok entries=N refs=N cookie=C" or "error TEXT" (the bulk reader's error
// contains TEXT).
type streamCase struct {
	name, want string
	data       []byte
}

func streamCases(t testing.TB) []streamCase {
	files, err := filepath.Glob("testdata/ldapstream/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/ldapstream files: %v", err)
	}
	var out []streamCase
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := assembleBER(string(src))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		_, want, ok := strings.Cut(string(src), "# want: ")
		if !ok {
			t.Fatalf("%s has no # want: line", f)
		}
		want, _, _ = strings.Cut(want, "\n")
		out = append(out, streamCase{filepath.Base(f), strings.TrimSpace(want), data})
	}
	return out
}

// TestBulkReaderHandBuilt decodes the hand-built pages (long-form lengths, multi-valued,
// empty and binary values, references, controls, result codes, what the reader refuses)
// with the bulk reader and go-ldap, and checks both against each file's expected outcome.
func TestBulkReaderHandBuilt(t *testing.T) {
	for _, c := range streamCases(t) {
		t.Run(c.name, func(t *testing.T) {
			bulk := directory.ReadBulkPages(c.data, 1)
			oracle := goLDAPPages([][]byte{c.data})
			if err := agree(bulk, oracle); err != nil {
				t.Fatal(err)
			}
			p := bulk[0]
			if text, isErr := strings.CutPrefix(c.want, "error "); isErr {
				if p.Err == nil || !strings.Contains(p.Err.Error(), text) {
					t.Fatalf("err = %v, want one containing %q", p.Err, text)
				}
				return
			}
			if p.Err != nil {
				t.Fatalf("bulk reader: %v (go-ldap: %v)", p.Err, oracle[0].Err)
			}
			cookie := ""
			if pc, ok := ldap.FindControl(p.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
				cookie = string(pc.Cookie)
			}
			got := fmt.Sprintf("ok entries=%d refs=%d cookie=%s", len(p.Entries), len(p.Refs), cookie)
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestBulkReaderPrefixes feeds every prefix of each accepted hand-built page, and the page
// with each single octet changed: the bulk reader must not panic and must agree with go-ldap.
func TestBulkReaderPrefixes(t *testing.T) {
	for _, c := range streamCases(t) {
		if !strings.HasPrefix(c.want, "ok") {
			continue
		}
		for n := 0; n < len(c.data); n += 1 + n/16 {
			b := c.data[:n]
			if err := agree(directory.ReadBulkPages(b, 1), goLDAPPages([][]byte{b})); err != nil {
				t.Fatalf("%s cut at %d: %v", c.name, n, err)
			}
			if p := directory.ReadBulkPages(b, 1); p[0].Err == nil {
				t.Fatalf("%s cut at %d of %d bytes: accepted", c.name, n, len(c.data))
			}
		}
		for i := 0; i < len(c.data); i += 1 + i/8 {
			b := append([]byte{}, c.data...)
			b[i] ^= 0x5a
			if err := agree(directory.ReadBulkPages(b, 1), goLDAPPages([][]byte{b})); err != nil {
				t.Fatalf("%s with octet %d changed: %v", c.name, i, err)
			}
		}
	}
}

// FuzzBulkReader feeds arbitrary bytes as one page to the bulk reader and to go-ldap: the
// bulk reader must never panic, and must agree with go-ldap on what both accept. The seeds
// are the hand-built pages; testdata/fuzz/FuzzBulkReader keeps the corpus.
func FuzzBulkReader(f *testing.F) {
	for _, c := range streamCases(f) {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bulk := directory.ReadBulkPages(data, 1)
		if err := agree(bulk, goLDAPPages([][]byte{data})); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBulkReaderLargeMessages reads entries larger than the read buffer (300 KiB) and than
// its growth step (1.5 MiB, in AD's long form), between small ones.
func TestBulkReaderLargeMessages(t *testing.T) {
	big := func(n int, c byte) string { return strconv.Quote(strings.Repeat(string(c), n)) }
	src := `30 { 02 01 01 64 { 04 "uid=a" 30 { 30 { 04 "uid" 31 { 04 "a" } } } } }
		30 { 02 01 01 64 { 04 "uid=b" 30 { 30 { 04 "jpegPhoto" 31 { 04 ` + big(300<<10, 'b') + ` 04 "" } } } } }
		30L4 { 02 01 01 64L4 { 04 "uid=c" 30L4 { 30L4 { 04 "jpegPhoto" 31L4 { 04L4 { ` + big(3<<19, 'c') + ` } } } } } }
		30 { 02 01 01 64 { 04 "uid=d" 30 { 30 { 04 "uid" 31 { 04 "d" } } } } }
		30 { 02 01 01 65 { 0a 01 00 04 00 04 00 } }`
	data, err := assembleBER(src)
	if err != nil {
		t.Fatal(err)
	}
	bulk := directory.ReadBulkPages(data, 1)
	if err := agree(bulk, goLDAPPages([][]byte{data})); err != nil {
		t.Fatal(err)
	}
	if p := bulk[0]; p.Err != nil || len(p.Entries) != 4 || len(p.Entries[2].Attributes[0].Values[0]) != 3<<19 {
		t.Fatalf("err %v, %d entries", p.Err, len(p.Entries))
	}
	// Cut inside the large entry: an error, not a hang or a short entry.
	if p := directory.ReadBulkPages(data[:len(data)/2], 1); p[0].Err == nil || len(p[0].Entries) > 2 {
		t.Fatalf("cut stream: err %v, %d entries", p[0].Err, len(p[0].Entries))
	}
}
