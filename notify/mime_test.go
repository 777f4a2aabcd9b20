package notify

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roster-dev/roster/state"
)

// deliverAll sends emails through a real in-process go-smtp server and returns what the
// server received, by envelope recipient.
func deliverAll(t *testing.T, emails ...state.Email) map[string][]byte {
	t.Helper()
	be := &backend{}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	enqueue(t, db, emails...)
	rep, err := newDeliverer(db, smtpConfig(srv, "none")).DeliverDue(context.Background())
	if err != nil || rep.Sent != len(emails) {
		t.Fatalf("deliver: %+v, %v", rep, err)
	}
	got := map[string][]byte{}
	for _, m := range be.messages() {
		got[m.To[0]] = m.Data
	}
	return got
}

// rawHeaderLines returns the header of a message as its physical lines (no unfolding).
func rawHeaderLines(t *testing.T, data []byte) []string {
	t.Helper()
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no end of header in\n%s", data)
	}
	return strings.Split(string(data[:end]), "\r\n")
}

func TestSubjectOverSMTP(t *testing.T) {
	accented := "Réunion d'équipe : salle Zoë Ångström, numéro ¹²³ — à bientôt"
	cjk := "会議室のお知らせ：新しいダイヤルプラン"
	tests := []struct {
		name, subject string
		longWord      bool // one word longer than a line: kept whole on a line of at most 998
	}{
		{"ASCII", "Your meeting room Alice Parkes VMR", false},
		{"accented", accented, false},
		{"CJK", cjk, false},
		{"mixed scripts", "Room 42: " + cjk + " / " + accented, false},
		{"200 ASCII characters", strings.TrimSpace(strings.Repeat("Maintenance window ", 11))[:200], false},
		{"200 accented characters", string([]rune(strings.Repeat(accented+" ", 4))[:200]), false},
		{"200 CJK characters", strings.Repeat(cjk, 11)[:len(string([]rune(strings.Repeat(cjk, 11))[:200]))], false},
		{"200 characters without a space", strings.Repeat("x", 200), true},
		{"looks like an encoded word", "Not =?utf-8?q?encoded?= at all", false},
		{"specials", `Quotes "x", tabs	and under_scores = ?`, false},
	}
	var emails []state.Email
	for i, tt := range tests {
		if n := utf8.RuneCountInString(tt.subject); strings.HasPrefix(tt.name, "200") && n != 200 {
			t.Fatalf("%s: subject has %d characters", tt.name, n)
		}
		plain, html := deviceEmail(i), vmrEmail(i)
		plain.To = "plain" + strconv.Itoa(i) + "@example.com"
		html.To = "html" + strconv.Itoa(i) + "@example.com"
		plain.Subject, html.Subject = tt.subject, tt.subject
		emails = append(emails, plain, html)
	}
	got := deliverAll(t, emails...)
	dec := new(mime.WordDecoder)
	for i, tt := range tests {
		for _, kind := range []string{"plain", "html"} {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				data, ok := got[kind+strconv.Itoa(i)+"@example.com"]
				if !ok {
					t.Fatal("not received")
				}
				m, err := mail.ReadMessage(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
				if err != nil {
					t.Fatalf("decode %q: %v", m.Header.Get("Subject"), err)
				}
				if subject != tt.subject {
					t.Errorf("decoded subject\n%q\nwant\n%q", subject, tt.subject)
				}
				if strings.TrimSpace(subject) != subject {
					t.Errorf("decoded subject %q has a leading or trailing space", subject)
				}
				for j, l := range rawHeaderLines(t, data) {
					if strings.HasPrefix(l, "Subject:") && !strings.HasPrefix(l, "Subject: ") || strings.TrimSpace(strings.TrimPrefix(l, "Subject:")) == "" {
						t.Errorf("header line %d %q: the subject does not start on the Subject line", j+1, l)
					}
					limit := 78
					if tt.longWord {
						limit = 998
					}
					if len(l) > limit {
						t.Errorf("header line %d has %d characters, more than %d: %q", j+1, len(l), limit, l)
					}
					if strings.Contains(l, "=?") && len(l) > 76 {
						t.Errorf("header line %d with encoded words has %d characters, more than 76 (RFC 2047): %q", j+1, len(l), l)
					}
				}
			})
		}
	}
}

func TestHTMLIsMultipartAlternative(t *testing.T) {
	got := deliverAll(t, vmrEmail(1), deviceEmail(2))
	m, err := mail.ReadMessage(bytes.NewReader(got["user1@example.com"]))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("content type %q, %v: want multipart/alternative with a boundary", m.Header.Get("Content-Type"), err)
	}
	if m.Header.Get("MIME-Version") != "1.0" || m.Header.Get("Content-Transfer-Encoding") != "" {
		t.Errorf("top-level MIME headers: %v", m.Header)
	}
	// Alternatives in increasing order of preference (RFC 2046 §5.1.4): text, then HTML.
	mr := multipart.NewReader(m.Body, params["boundary"])
	want := []struct{ typ, contains string }{
		{"text/plain", "Your meeting room Zoë Ångström 1 VMR was created."},
		{"text/html", "<b>Zoë Ångström 1 VMR</b>"},
	}
	for i := 0; ; i++ {
		part, err := mr.NextRawPart() // raw: the transfer encoding is checked here, then decoded
		if err == io.EOF {
			if i != len(want) {
				t.Errorf("%d parts, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(want) {
			t.Fatalf("unexpected part %d: %v", i+1, part.Header)
		}
		pt, pp, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil || pt != want[i].typ || pp["charset"] != "utf-8" {
			t.Errorf("part %d: content type %q, %v; want %s; charset=utf-8", i+1, part.Header.Get("Content-Type"), err, want[i].typ)
		}
		if cte := part.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d: transfer encoding %q", i+1, cte)
		}
		raw, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(raw), "\r\n") {
			if len(l) > 76 {
				t.Errorf("part %d: quoted-printable line of %d characters", i+1, len(l))
			}
		}
		body, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(body) || !strings.Contains(string(body), want[i].contains) {
			t.Errorf("part %d = %q, want it to contain %q", i+1, body, want[i].contains)
		}
	}

	m, err = mail.ReadMessage(bytes.NewReader(got["owner2@example.com"]))
	if err != nil {
		t.Fatal(err)
	}
	if mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mt != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("plain email content type %q, want text/plain; charset=utf-8", m.Header.Get("Content-Type"))
	}
}
