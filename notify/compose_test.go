package notify

import (
	"context"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/state"
)

// rowOf enqueues e and claims it back as the row a deliverer would see.
func rowOf(t *testing.T, e state.Email) state.OutboxRow {
	t.Helper()
	db := openDB(t)
	enqueue(t, db, e)
	rows, err := db.ClaimDue(context.Background(), time.Now().Add(time.Second), 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(rows))
	}
	return rows[0]
}

func TestComposeHTMLMultipart(t *testing.T) {
	row := rowOf(t, vmrEmail(1))
	date := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m, err := NewComposer(varRenderer{}).Compose(&row, "Équipe Roster <roster@example.org>", date)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(m.Data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes", len(line))
		}
	}
	if strings.Contains(strings.ReplaceAll(string(m.Data), "\r\n", ""), "\n") {
		t.Error("bare LF in message")
	}
	p := parseMessage(t, m.Data)
	if p.Subject != "Your meeting room Zoë Ångström 1 VMR" {
		t.Errorf("subject = %q", p.Subject)
	}
	from, err := p.Header.AddressList("From")
	if err != nil || from[0].Name != "Équipe Roster" || from[0].Address != "roster@example.org" {
		t.Errorf("from = %v, %v", from, err)
	}
	if got := p.Header.Get("To"); got != "<user1@example.com>" {
		t.Errorf("to = %q", got)
	}
	wantID := "<roster." + strconv.FormatInt(row.ID, 10) + "."
	if id := p.Header.Get("Message-ID"); !strings.HasPrefix(id, wantID) || !strings.HasSuffix(id, "@example.org>") || id != m.MessageID {
		t.Errorf("message-id = %q (composer says %q)", id, m.MessageID)
	}
	if d, err := p.Header.Date(); err != nil || !d.Equal(date) {
		t.Errorf("date = %v, %v", d, err)
	}
	if p.Header.Get("MIME-Version") != "1.0" {
		t.Error("no MIME-Version")
	}
	if !strings.Contains(p.HTML, "<b>Zoë Ångström 1 VMR</b>") || !strings.Contains(p.HTML, "PIN: 123456") {
		t.Errorf("html part = %q", p.HTML)
	}
	wantText := "Hello,\n\nYour meeting room Zoë Ångström 1 VMR was created.\nAliases: meet.zoe1@example.com, 44001\nPIN: 123456\n\n" +
		"Join <https://meet.example.com/meet.zoe1@example.com> & enjoy — «Personal room»\n"
	if p.Text = strings.ReplaceAll(p.Text, "\r\n", "\n"); p.Text != wantText {
		t.Errorf("text part =\n%q\nwant\n%q", p.Text, wantText)
	}
	// The same row composes to the same bytes (same Message-ID and boundary): a resend is recognisable.
	again, _ := NewComposer(varRenderer{}).Compose(&row, "Équipe Roster <roster@example.org>", date)
	if string(again.Data) != string(m.Data) {
		t.Error("composition is not deterministic")
	}
}

func TestComposePlain(t *testing.T) {
	row := rowOf(t, deviceEmail(7))
	m, err := NewComposer(varRenderer{}).Compose(&row, "roster@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, m.Data)
	if p.Subject != "Your video device dev7@example.com" {
		t.Errorf("subject = %q", p.Subject)
	}
	to, err := p.Header.AddressList("To")
	if err != nil || to[0].Name != "Dev Owner 7" || to[0].Address != "owner7@example.com" || m.To.Address != "owner7@example.com" {
		t.Errorf("to = %v, %v", to, err)
	}
	want := "Alias: dev7@example.com\r\nUsername: zoe\r\nPassword: s3cret=ok\r\n"
	if p.Text != want {
		t.Errorf("body = %q, want %q", p.Text, want)
	}
	if p.HTML != "" {
		t.Error("plain email has an HTML part")
	}
}

func TestComposeRefuses(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name   string
		edit   func(e *state.Email)
		reason string
	}{
		{"CRLF in subject variable", func(e *state.Email) { e.Vars["name"] = "Room\r\nBcc: evil@example.net" }, "more than one line"},
		{"LF in subject variable", func(e *state.Email) { e.Vars["name"] = "Room\nX-Evil: 1" }, "more than one line"},
		{"subject too long", func(e *state.Email) { e.Vars["name"] = long }, "more than 255"},
		{"subject empty", func(e *state.Email) { e.Subject = "{{ nothing }}" }, "empty"},
		{"CRLF in To", func(e *state.Email) { e.To = "a@example.com\r\nBcc: evil@example.net" }, "control character"},
		{"two recipients", func(e *state.Email) { e.To = "a@example.com, b@example.com" }, "want exactly one"},
		{"group", func(e *state.Email) { e.To = "team: a@example.com;" }, "group"},
		{"not an address", func(e *state.Email) { e.To = "alice" }, "not a valid address"},
		{"empty To", func(e *state.Email) { e.To = "" }, "not a valid address"},
		{"body too big", func(e *state.Email) { e.Vars["pin"] = strings.Repeat("9", MaxBody) }, "more than"},
		{"template does not compile", func(e *state.Email) { e.Body = "{{ broken" }, "compile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := vmrEmail(1)
			tt.edit(&e)
			row := rowOf(t, e)
			m, err := NewComposer(varRenderer{}).Compose(&row, "roster@example.org", time.Now())
			if err == nil {
				t.Fatalf("composed:\n%s", m.Data)
			}
			if !IsComposeError(err) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %v, want a ComposeError with %q", err, tt.reason)
			}
		})
	}
}

func TestSubjectFoldingAndEncoding(t *testing.T) {
	e := deviceEmail(1)
	e.Subject = strings.Repeat("Ünïcödé wörds ", 15) + "end"
	row := rowOf(t, e)
	m, err := NewComposer(varRenderer{}).Compose(&row, "roster@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	head := string(m.Data[:strings.Index(string(m.Data), "\r\n\r\n")])
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) > 78 {
			t.Errorf("header line of %d chars: %q", len(l), l)
		}
	}
	if p := parseMessage(t, m.Data); p.Subject != strings.TrimSpace(e.Subject) {
		t.Errorf("subject = %q", p.Subject)
	}
}

func TestTextTemplate(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"<p>Hi {{ name }}</p>{% if pin %}<p>PIN {{ pin }}</p>{% endif %}", "Hi {{ name }}\n\n{% if pin %}\n\nPIN {{ pin }}\n\n{% endif %}\n", true},
		{`<a href="https://x/{{ alias }}">Join</a>`, "Join <https://x/{{ alias }}>\n", true},
		{`<img alt="{{ name }}">`, "", false},             // a tag inside markup
		{"{% if a<b %}x{% endif %}", "", false},           // '<b' would be read as markup
		{"<p>{{ name|default('a   b') }}</p>", "", false}, // whitespace inside a tag's string is kept
		{"<p>{# a comment #}{{ x }}</p>", "", false},
	}
	for _, tt := range tests {
		got, ok := textTemplate(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("textTemplate(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello<br>World", "Hello\nWorld\n"},
		{"<p>One</p><p>Two</p>", "One\n\nTwo\n"},
		{"a &lt;b&gt; &amp; &eacute; &#x263A;", "a <b> & é ☺\n"},
		{"  lots   of\n\n  space  ", "lots of space\n"},
		{"<ul><li>one</li><li>two</li></ul>", "- one\n- two\n"},
		{"<script>alert(1)</script><style>x{}</style>visible", "visible\n"},
		{`<a href="https://x.example/">site</a>`, "site <https://x.example/>\n"},
		{`<a href="mailto:a@example.com">a@example.com</a>`, "a@example.com\n"},
		{"<pre>  keep\n   this</pre>", "  keep\n   this\n"},
		{"<table><tr><td>PIN</td><td>1234</td></tr><tr><td>Guest</td><td>5678</td></tr></table>", "PIN\t1234\nGuest\t5678\n"},
		{"<h1>Title</h1>text<!-- comment -->", "Title\n\ntext\n"},
		{"<b>bold</b>text and <i>it</i> <b>x</b>", "boldtext and it x\n"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := HTMLToText(tt.in); got != tt.want {
			t.Errorf("HTMLToText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseRecipientFastPathAgreesWithNetMail(t *testing.T) {
	for _, s := range []string{"a@example.com", "first.last+tag@sub.example.org", "o'neil@example.ie", "a..b@example.com",
		".a@example.com", "a@-example.com", "a@example..com", "a@", "@example.com", "a b@example.com", "ü@example.com", "a@b"} {
		fast := isSimpleAddress(s)
		_, err := mail.ParseAddress(s)
		if fast && err != nil {
			t.Errorf("%q: fast path accepts what net/mail refuses (%v)", s, err)
		}
	}
}
