package schema

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// UserColumns are the WebEx Meetings Server CSV columns, all required, in export order.
var UserColumns = []string{"USERID", "ACTIVE", "FIRSTNAME", "LASTNAME", "EMAIL", "LANGUAGE",
	"HOSTPRIVILEGE", "TIMEZONE", "DIVISION", "DEPARTMENT", "PROJECT", "OTHER",
	"CUSTOM5", "CUSTOM6", "CUSTOM7", "CUSTOM8", "CUSTOM9", "CUSTOM10"}

const (
	colUserID = iota
	colActive
	colFirst
	colLast
	colEmail
	colLanguage
	colHostPriv
	colTimeZone
	colTracking // first of the ten tracking columns
)

// fileErrs collects one file's errors and stops recording after maxErrorsPerFile.
type fileErrs struct {
	l       *loader
	display string
	n       int
}

func (f *fileErrs) add(line, col int, format string, args ...any) {
	f.n++
	if f.n <= maxErrorsPerFile {
		f.l.errs = append(f.l.errs, &Error{Path: f.display, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
	}
}

func (f *fileErrs) done() {
	if f.n > maxErrorsPerFile {
		f.l.errs = append(f.l.errs, &Error{Path: f.display, Msg: fmt.Sprintf("%d more errors not shown", f.n-maxErrorsPerFile)})
	}
}

// next reads r's next record and the line it starts on, reporting and skipping malformed
// records; ok is false at the end of the file or when the file cannot be read further.
func (f *fileErrs) next(r *csv.Reader) (rec []string, line int, ok bool) {
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil, 0, false
		}
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			f.add(pe.Line, pe.Column, "%s", csvMsg(err))
		case err != nil:
			f.add(0, 0, "cannot read: %v", err)
			return nil, 0, false
		default:
			line, _ = r.FieldPos(0)
			return rec, line, true
		}
	}
}

// openCSV opens a CSV file, skips a UTF-8 BOM, and returns a reader, the first line and
// the file's error collector (which has recorded why when br is nil). done closes the
// file and finishes the collector: defer it.
func (l *loader) openCSV(rel string) (br *bufio.Reader, first []byte, fe *fileErrs, done func()) {
	fe = &fileErrs{l: l, display: l.display(rel)}
	f, err := l.fsys.Open(rel)
	if err != nil {
		fe.add(0, 0, "cannot read: %v", err)
		return nil, nil, fe, fe.done
	}
	br = bufio.NewReaderSize(f, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	first, _ = br.Peek(br.Size())
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	return br, first, fe, func() { _ = f.Close(); fe.done() }
}

// userChunk is how many UserRows are allocated at once: rows live in slabs, not one
// allocation each.
const userChunk = 4096

type emailSeen struct {
	pos Pos
}

func (l *loader) loadUsers() {
	files := l.listDir("users", func(n string) bool { return strings.HasSuffix(strings.ToLower(n), ".csv") }, "WebEx user lists in .csv files (comma- or tab-delimited)")
	// Size the email index and the row list from the files' sizes (a row is rarely
	// shorter than 64 bytes), so 400,000 rows do not rehash and copy over and over.
	var total int64
	for _, rel := range files {
		if fi, err := fs.Stat(l.fsys, rel); err == nil {
			total += fi.Size()
		}
	}
	hint := int(min(total/64, 1<<20))
	seen := make(map[string]Pos, hint)
	if l.repo.Users == nil {
		l.repo.Users = make([]*UserRow, 0, hint)
	}
	var slab []UserRow
	for _, rel := range files {
		slab = l.loadUserFile(rel, seen, slab)
	}
}

func (l *loader) loadUserFile(rel string, seen map[string]Pos, slab []UserRow) []UserRow {
	br, first, fe, done := l.openCSV(rel)
	defer done()
	if br == nil {
		return slab
	}
	display := fe.display
	r := csv.NewReader(br)
	if bytes.Count(first, []byte{'\t'}) > bytes.Count(first, []byte{','}) {
		r.Comma = '\t'
	}
	r.FieldsPerRecord = -1
	r.ReuseRecord = true

	header, err := r.Read()
	if err != nil && !errors.Is(err, io.EOF) {
		fe.add(1, 0, "Incorrect file format. %v", csvMsg(err))
		return slab
	}
	idx := make([]int, len(UserColumns))
	for i := range idx {
		idx[i] = -1
	}
	for i, h := range header {
		name := strings.ToUpper(strings.TrimSpace(h))
		for c, want := range UserColumns {
			if name == want {
				if idx[c] >= 0 {
					_, col := r.FieldPos(i)
					fe.add(1, col, "Incorrect file format. %s appears twice.", want)
				}
				idx[c] = i
			}
		}
	}
	missing := false
	for c, want := range UserColumns {
		if idx[c] < 0 {
			fe.add(1, 0, "Incorrect file format. %s is required.", want)
			missing = true
		}
	}
	if missing {
		return slab
	}
	maxIdx := 0
	for _, i := range idx {
		maxIdx = max(maxIdx, i)
	}
	groups := l.trackingBySlot()
	for {
		rec, line, ok := fe.next(r)
		if !ok {
			break
		}
		if len(rec) <= maxIdx {
			fe.add(line, 0, "row has %d fields; the header has %d", len(rec), len(header))
			continue
		}
		if len(slab) == cap(slab) {
			slab = make([]UserRow, 0, userChunk)
		}
		slab = append(slab, UserRow{})
		u := &slab[len(slab)-1]
		if l.userRow(r, rec, idx, groups, u, fe, display, line) {
			u.Pos = Pos{Path: display, Line: line}
			key := strings.ToLower(u.Email)
			if prev, dup := seen[key]; dup {
				_, col := r.FieldPos(idx[colEmail])
				fe.add(line, col, "EMAIL %s is already used at %s:%d; an email may appear once across all user files", u.Email, prev.Path, prev.Line)
				slab = slab[:len(slab)-1]
				continue
			}
			seen[key] = u.Pos
			l.repo.Users = append(l.repo.Users, u)
		} else {
			slab = slab[:len(slab)-1]
		}
	}
	return slab
}

func csvMsg(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// userRow validates one row into u; false when it has errors (they are recorded).
func (l *loader) userRow(r *csv.Reader, rec []string, idx []int, groups *[10]*trackRule, u *UserRow, fe *fileErrs, display string, line int) bool {
	ok := true
	bad := func(c int, format string, args ...any) {
		_, col := r.FieldPos(idx[c])
		fe.add(line, col, UserColumns[c]+": "+format, args...)
		ok = false
	}
	get := func(c int) string {
		v := rec[idx[c]]
		if !utf8.ValidString(v) {
			bad(c, "not valid UTF-8 (save the file as UTF-8)")
			return ""
		}
		return strings.TrimSpace(v)
	}
	if v := get(colUserID); v != "" {
		if len(v) > 19 || !alnum(v) {
			bad(colUserID, "%q: want 1 to 19 letters and digits (or leave it blank: roster generates it)", v)
		}
		u.UserID = v
	}
	switch v := get(colActive); v {
	case "", "Y", "y":
		u.Active = true
	case "N", "n":
	default:
		bad(colActive, "%q: want Y or N", v)
	}
	name := func(c int) string {
		v := get(c)
		if n := utf8.RuneCountInString(v); n < 1 || n > 32 {
			if n == 0 {
				bad(c, "required (1 to 32 characters)")
			} else {
				bad(c, "%d characters; at most 32", n)
			}
		}
		return v
	}
	u.FirstName = name(colFirst)
	u.LastName = name(colLast)
	email := get(colEmail)
	switch {
	case email == "":
		bad(colEmail, "required")
	case len(email) > 192:
		bad(colEmail, "%d characters; at most 192", len(email))
	case !validEmail(email):
		bad(colEmail, "%q is not a valid email address", email)
	}
	u.Email = email
	if v := get(colLanguage); v == "" {
		u.Language = "en-us"
	} else if c, ok := languageOf(v); ok {
		u.Language = c
	} else {
		bad(colLanguage, "%q is not a WebEx language; use one of %s", v, strings.Join(Languages, ", "))
	}
	switch v := get(colHostPriv); v {
	case "", "HOST", "host", "Host":
		u.HostPrivilege = "HOST"
	case "ADMN", "admn", "Admn":
		u.HostPrivilege = "ADMN"
	default:
		bad(colHostPriv, "%q: want ADMN or HOST", v)
	}
	if v := get(colTimeZone); v != "" && !timeZoneSet[v] {
		bad(colTimeZone, "%q is not a WebEx time zone (e.g. London, New York, Berlin, Tokyo)", v)
	} else {
		u.TimeZone = v
	}
	for i := range TrackingSlots {
		c := colTracking + i
		v := get(c)
		if n := utf8.RuneCountInString(v); n > 128 {
			bad(c, "%d characters; at most 128", n)
			continue
		}
		g := groups[i]
		if g == nil || g.g.Usage == "not_used" {
			u.Tracking[i] = v // no rules: free text (a not_used group's value is kept, unused)
			continue
		}
		if v == "" {
			if g.g.InputMode == "dropdown" && g.def != "" {
				v = g.def
			} else if g.g.Usage == "required" {
				bad(c, "required by tracking code group %q", g.g.Name)
				continue
			}
		} else if g.g.InputMode == "dropdown" && !g.active[v] {
			bad(c, "%q is not an active code of tracking code group %q", v, g.g.Name)
			continue
		}
		u.Tracking[i] = v
	}
	return ok
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
