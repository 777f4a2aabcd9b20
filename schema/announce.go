package schema

// Announcements (SPEC §9, WebEx Meetings Server's Users > Email Users): announcements/*.yaml
// or .cue, one message per file, sent once per id. Loading checks what the repository alone
// can tell — the recipients resolve, the body is there and inside the repository, ids are
// unique; that a sent announcement is unchanged needs the state and is checked at plan time
// (reconcile/announce.go) against the digests FieldDigests gives.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"cuelang.org/go/cue"
)

// Announcement is one announcements/ file.
type Announcement struct {
	ID         string     `json:"id"`
	To         Recipients `json:"to"`
	Bcc        Recipients `json:"bcc"`
	Subject    string     `json:"subject"`
	BodyFile   string     `json:"body_file"`
	Body       string     `json:"body"` // after loading: the body, from body or from body_file
	SMTPServer string     `json:"smtp_server"`
	// HTML is set when the body comes from a .html/.htm file.
	HTML bool `json:"-"`
	// Targets are To resolved to what they name, in To's order.
	Targets []Target `json:"-"`
	Pos     Pos      `json:"-"` // the id's value
	// FieldPos holds the positions of id, to, bcc, subject and body (body or body_file).
	FieldPos map[string]Pos `json:"-"`
}

// Recipients is a list of recipient entries, written as a list or as one string.
type Recipients []string

// UnmarshalJSON accepts "x" as well as ["x", "y"].
func (r *Recipients) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*r = Recipients{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*r = many
	return nil
}

// The kinds of Target.
const (
	TargetAllActiveUsers = "all_active_users" // every active user account
	TargetTemplate       = "template"         // a sync template's active users and the owners of its VMRs and devices
	TargetCSV            = "csv"              // the active users of one users/*.csv file
	TargetAddress        = "address"          // one address
)

// Target is one resolved `to` entry: Value is the template name, the CSV file's path as
// UserRow.Pos.Path gives it, or the address.
type Target struct {
	Kind, Value string
}

// FieldDigests are the SHA-256 digests of what an announcement says, per field a sender
// may not change after sending: to and bcc (entries in any order and letter case), subject
// and body (its text and whether it is HTML; not where it came from).
func (a *Announcement) FieldDigests() map[string]string {
	list := func(rs Recipients) string {
		xs := make([]string, len(rs))
		for i, r := range rs {
			xs[i] = strings.ToLower(strings.TrimSpace(r))
		}
		slices.Sort(xs)
		xs = slices.Compact(xs)
		return strings.Join(xs, "\n")
	}
	html := "text"
	if a.HTML {
		html = "html"
	}
	out := map[string]string{}
	for k, v := range map[string]string{"to": list(a.To), "bcc": list(a.Bcc), "subject": a.Subject, "body": html + "\n" + a.Body} {
		sum := sha256.Sum256([]byte(v))
		out[k] = hex.EncodeToString(sum[:])
	}
	return out
}

// AnnouncementFields are the fields FieldDigests covers, in the order errors name them.
var AnnouncementFields = []string{"to", "bcc", "subject", "body"}

var announcementID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

const recipientForms = "all_active_users, template:NAME, csv:users/FILE.csv or an email address"

func (l *loader) loadAnnouncements() {
	files := l.listDir("announcements", isDataFile, "one announcement per .yaml, .yml or .cue file")
	ids := map[string]Pos{}
	for _, rel := range files {
		display := l.display(rel)
		v, data, ok := l.parseFile(rel, "#Announcement")
		if !ok {
			continue
		}
		a := &Announcement{}
		if !l.decode(v, display, a) {
			continue
		}
		a.Pos = l.valAt(data, display, "id")
		a.FieldPos = map[string]Pos{"id": a.Pos}
		for _, f := range []string{"to", "bcc", "subject", "body", "body_file"} {
			a.FieldPos[f] = l.valAt(data, display, f)
		}
		if ok := l.checkAnnouncement(a, data, display); !ok {
			continue
		}
		if prev, dup := ids[a.ID]; dup {
			l.errorf(a.Pos, "id: %q is already the id of the announcement at %s:%d:%d; give this one an id of its own", a.ID, prev.Path, prev.Line, prev.Col)
			continue
		}
		ids[a.ID] = a.Pos
		l.repo.Announcements = append(l.repo.Announcements, a)
	}
	slices.SortFunc(l.repo.Announcements, func(x, y *Announcement) int { return strings.Compare(x.ID, y.ID) })
}

// checkAnnouncement checks one announcement's id, recipients, subject and body; it reports
// whether it is good.
func (l *loader) checkAnnouncement(a *Announcement, data cue.Value, display string) bool {
	n := len(l.errs)
	if !announcementID.MatchString(a.ID) {
		l.errorf(a.Pos, "id: %q: use letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. 2026-12-maintenance)", a.ID)
	}
	if len(a.To) == 0 {
		l.errorf(a.FieldPos["to"], "to: no recipients; name %s", recipientForms)
	}
	entryPos := func(field string, i int) Pos {
		if data.LookupPath(cue.ParsePath(field)).IncompleteKind() == cue.ListKind {
			return l.valAt(data, display, fmt.Sprintf("%s[%d]", field, i))
		}
		return a.FieldPos[field]
	}
	for i, r := range a.To {
		t, err := l.target(strings.TrimSpace(r))
		if err != nil {
			l.errorf(entryPos("to", i), "to: %v", err)
			continue
		}
		a.Targets = append(a.Targets, t)
	}
	for i, r := range a.Bcc {
		if !validEmail(strings.TrimSpace(r)) {
			l.errorf(entryPos("bcc", i), "bcc: %q is not a valid email address (bcc takes addresses only; each gets one copy)", r)
		}
	}
	if strings.ContainsAny(a.Subject, "\r\n") {
		l.errorf(a.FieldPos["subject"], "subject: must be one line")
	}
	l.pattern(display, "subject", data.LookupPath(cue.ParsePath("subject")), a.Subject)
	l.checkSMTP(data, display, "smtp_server", a.SMTPServer)
	switch {
	case a.BodyFile != "" && a.Body != "":
		l.errorf(a.FieldPos["body"], "body and body_file are both set; keep one")
	case a.BodyFile != "":
		a.FieldPos["body"] = a.FieldPos["body_file"]
		e := &EmailPattern{BodyFile: a.BodyFile}
		if l.bodyFile(a.FieldPos["body_file"], "body_file", e) {
			a.BodyFile, a.Body, a.HTML = e.BodyFile, l.repo.EmailBodies[e.BodyFile], isHTMLFile(e.BodyFile)
		}
	case strings.TrimSpace(a.Body) == "":
		l.errorf(a.Pos, "announcement %q has no body: add body_file: emails/FILE.html (or .txt), or body: \"…\"", a.ID)
	case len(a.Body) > MaxEmailBody:
		l.errorf(a.FieldPos["body"], "body: %d bytes; an email body may be at most %d bytes (use body_file for long texts)", len(a.Body), MaxEmailBody)
	default:
		l.pattern(display, "body", data.LookupPath(cue.ParsePath("body")), a.Body)
	}
	return len(l.errs) == n
}

// target resolves one `to` entry.
func (l *loader) target(r string) (Target, error) {
	switch {
	case r == TargetAllActiveUsers:
		return Target{Kind: TargetAllActiveUsers}, nil
	case strings.HasPrefix(r, "template:"):
		name := strings.TrimSpace(strings.TrimPrefix(r, "template:"))
		if !l.templateNames[name] {
			known := "no templates are defined"
			if names := sortedKeys(l.templateNames); len(names) > 0 {
				known = "templates: " + strings.Join(names, ", ")
			}
			return Target{}, fmt.Errorf("%q: unknown template %q (%s)", r, name, known)
		}
		return Target{Kind: TargetTemplate, Value: name}, nil
	case strings.HasPrefix(r, "csv:"):
		p := strings.TrimSpace(strings.TrimPrefix(r, "csv:"))
		clean := path.Clean(p)
		if hasDotDot(p) || strings.HasPrefix(p, "/") || path.Dir(clean) != "users" || !strings.HasSuffix(strings.ToLower(clean), ".csv") {
			return Target{}, fmt.Errorf("%q: name a user file of the repository as csv:users/FILE.csv", r)
		}
		if st, err := fs.Stat(l.fsys, clean); err != nil || st.IsDir() {
			var have []string
			for _, u := range l.listCSV() {
				have = append(have, "csv:"+u)
			}
			known := "there are no users/*.csv files"
			if len(have) > 0 {
				known = "have: " + strings.Join(have, ", ")
			}
			return Target{}, fmt.Errorf("%q: %s does not exist (%s)", r, l.display(clean), known)
		}
		return Target{Kind: TargetCSV, Value: l.display(clean)}, nil
	case validEmail(r):
		return Target{Kind: TargetAddress, Value: r}, nil
	}
	return Target{}, fmt.Errorf("%q is not a recipient; use %s", r, recipientForms)
}

// listCSV lists users/*.csv without reporting other files (loadUsers does).
func (l *loader) listCSV() []string {
	ents, _ := fs.ReadDir(l.fsys, "users")
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".csv") {
			out = append(out, "users/"+e.Name())
		}
	}
	return out
}

func isHTMLFile(p string) bool {
	p = strings.ToLower(p)
	return strings.HasSuffix(p, ".html") || strings.HasSuffix(p, ".htm")
}
