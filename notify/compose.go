// Package notify composes and delivers roster's emails. Reconcile writes each email to the
// outbox (state.Enqueue) in the transaction of the change that causes it; a Deliverer claims
// due rows, renders their snapshotted subject and body templates with the row's variables,
// builds a MIME message with github.com/emersion/go-message (text/plain, or
// multipart/alternative for HTML bodies, UTF-8, quoted-printable, RFC 2047 headers) and
// hands it to an SMTP server over a small pool of reused connections —
// or, with no SMTP server configured, writes one .eml file per message to mail_dir — and
// records the outcome: sent, retried with backoff, or failed after three tries.
package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/roster-dev/roster/state"
)

// Limits on a rendered email.
const (
	MaxSubject = 255     // characters, one line
	MaxBody    = 1 << 20 // bytes after rendering (the SPEC's 24,576 limit is on the template)
)

// Message is a composed email, ready for SMTP or mail_dir.
type Message struct {
	RowID     int64
	MessageID string // <roster.<rowid>.<hash>@<from-domain>>, the same on every attempt
	From      *mail.Address
	To        *mail.Address
	Subject   string
	Data      []byte // the whole RFC 5322 message, CRLF line ends

	buf *bytes.Buffer // holds Data; see Release
}

// UTF8Envelope reports whether the envelope addresses need SMTPUTF8.
func (m *Message) UTF8Envelope() bool {
	return !isASCII(m.From.Address) || !isASCII(m.To.Address)
}

// ComposeError is an email that can never be sent as it is (bad recipient, a subject that is
// not one line, a template that fails): recorded failed at once, never retried.
type ComposeError struct{ Reason string }

func (e *ComposeError) Error() string { return e.Reason }

func composeErr(format string, a ...any) error {
	return &ComposeError{Reason: fmt.Sprintf(format, a...)}
}

// Composer renders outbox rows into messages, compiling each email template once.
type Composer struct {
	cache templateCache
	froms sync.Map // from string → *mail.Address
}

func (c *Composer) parseFrom(from string) (*mail.Address, error) {
	if a, ok := c.froms.Load(from); ok {
		return a.(*mail.Address), nil
	}
	a, err := ParseRecipient(from)
	if err != nil {
		return nil, composeErr("bad from address %q: %v", from, err)
	}
	c.froms.Store(from, a)
	return a, nil
}

// NewComposer returns a Composer rendering with r.
func NewComposer(r Renderer) *Composer { return &Composer{cache: templateCache{r: r}} }

// Compose renders row into a message from the address from, dated date.
func (c *Composer) Compose(row *state.OutboxRow, from string, date time.Time) (*Message, error) {
	fromAddr, err := c.parseFrom(from)
	if err != nil {
		return nil, err
	}
	to, err := ParseRecipient(row.To)
	if err != nil {
		return nil, err
	}
	tmpl, err := c.cache.get(row.EmailTemplate, row.Subject, row.Body, row.BodyPath, row.HTML)
	if err != nil {
		return nil, composeErr("email template %s: %v", shortHash(row.EmailTemplate), err)
	}
	vars, err := row.DecodeVars()
	if err != nil {
		return nil, composeErr("%v", err)
	}
	subject, err := tmpl.subject.Render(vars)
	if err != nil {
		return nil, composeErr("render subject: %v", err)
	}
	subject, err = checkSubject(subject)
	if err != nil {
		return nil, err
	}
	body, err := tmpl.body.Render(vars)
	if err != nil {
		return nil, composeErr("render body: %v", err)
	}
	if len(body) > MaxBody {
		return nil, composeErr("body renders to %d bytes, more than %d", len(body), MaxBody)
	}
	if !utf8.ValidString(body) {
		return nil, composeErr("body is not valid UTF-8")
	}
	m := &Message{RowID: row.ID, From: fromAddr, To: to, Subject: subject}
	m.MessageID = MessageID(row, domainOf(fromAddr.Address))
	text := body
	if row.HTML {
		text = ""
		if tmpl.text != nil {
			if t, err := tmpl.text.Render(vars); err == nil {
				text = tidyText(t)
			}
		}
		if text == "" {
			text = HTMLToText(body)
		}
	}
	m.buf = bufPool.Get().(*bytes.Buffer)
	m.buf.Reset()
	m.Data, err = buildMIME(m.buf, m, date, text, body, row.HTML)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// MessageID is the deterministic Message-ID of an outbox row: a resend after a crash carries
// the same one, so receivers can recognise the duplicate.
func MessageID(row *state.OutboxRow, domain string) string {
	h := sha256.New()
	var n [20]byte
	for _, s := range []string{row.EmailTemplate, row.To, row.Vars, row.CreatedAt, row.ObjectKey} {
		h.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	return "<roster." + strconv.FormatInt(row.ID, 10) + "." + hex.EncodeToString(h.Sum(nil))[:16] + "@" + domain + ">"
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		return addr[i+1:]
	}
	return "localhost"
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// ParseRecipient accepts exactly one valid address: no line breaks or other control
// characters, no list, no group. Anything else is a ComposeError — never a header.
func ParseRecipient(s string) (*mail.Address, error) {
	if isSimpleAddress(s) {
		return &mail.Address{Address: s}, nil
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return nil, composeErr("recipient %q contains a control character", s)
		}
	}
	if strings.ContainsAny(s, ":;") {
		return nil, composeErr("recipient %q is not a single address (group syntax)", s)
	}
	list, err := mail.ParseAddressList(s)
	if err != nil {
		return nil, composeErr("recipient %q is not a valid address: %v", s, err)
	}
	if len(list) != 1 {
		return nil, composeErr("recipient %q is %d addresses, want exactly one", s, len(list))
	}
	a := list[0]
	if strings.ContainsAny(a.Address, " <>\"") || !strings.Contains(a.Address, "@") {
		return nil, composeErr("recipient %q is not a valid address", s)
	}
	return a, nil
}

// isSimpleAddress reports whether s is a plain dot-atom address, local@domain, in ASCII:
// the common case, accepted without the full RFC 5322 parser.
func isSimpleAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") ||
		domain[0] == '.' || domain[0] == '-' || domain[len(domain)-1] == '.' || strings.Contains(domain, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0) {
			return false
		}
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkSubject trims the rendered subject and refuses one that is not a single line of at
// most MaxSubject characters.
func checkSubject(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", composeErr("subject is not valid UTF-8")
	}
	for _, r := range s {
		if r == '\r' || r == '\n' || r == '\u2028' || r == '\u2029' || r == 0x85 {
			// The text is left out of the reason: it may hold a PIN or a password.
			return "", composeErr("subject renders to more than one line")
		}
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return "", composeErr("subject contains a control character (%U)", r)
		}
	}
	if n := utf8.RuneCountInString(s); n > MaxSubject {
		return "", composeErr("subject renders to %d characters, more than %d", n, MaxSubject)
	}
	if s == "" {
		return "", composeErr("subject renders empty")
	}
	return s, nil
}

// bufPool recycles message buffers: a deliverer releases a message once it is sent.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Release returns the message's buffer for reuse; Data must not be used afterwards.
func (m *Message) Release() {
	if m.buf != nil && m.buf.Cap() <= 64<<10 {
		bufPool.Put(m.buf)
	}
	m.buf, m.Data = nil, nil
}

// buildMIME writes the message with go-message's mail and textproto packages: text alone,
// or text and body (HTML) as multipart/alternative parts; UTF-8, quoted-printable, header
// fields folded by go-message. (message.CreateWriter would do the same with a copy of every
// header and a random boundary drawn per message, which the deliverer does not need.)
func buildMIME(b *bytes.Buffer, m *Message, date time.Time, text, body string, html bool) ([]byte, error) {
	b.Grow(len(body)*2 + 1024)
	var h gomail.Header
	// go-message writes the field added last first: add them bottom-up.
	boundary := ""
	if html {
		// A boundary derived from the Message-ID: the same row gives the same bytes. It cannot
		// occur in quoted-printable text (which never holds "=_" unencoded).
		sum := sha256.Sum256([]byte(m.MessageID))
		boundary = "=_roster_" + hex.EncodeToString(sum[:12])
		h.SetContentType("multipart/alternative", map[string]string{"boundary": boundary})
	} else {
		h.Add("Content-Transfer-Encoding", "quoted-printable")
		h.Add("Content-Type", "text/plain; charset=utf-8")
	}
	h.Add("MIME-Version", "1.0")
	h.Add("Auto-Submitted", "auto-generated")
	h.Add("Message-ID", m.MessageID)
	h.SetDate(date)
	h.Add("Subject", encodeText(m.Subject, subjectFirstWord))
	h.SetAddressList("To", []*gomail.Address{m.To})
	h.SetAddressList("From", []*gomail.Address{m.From})
	if err := textproto.WriteHeader(b, h.Header.Header); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if !html {
		if err := writeText(b, text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := textproto.NewMultipartWriter(b)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("multipart boundary: %w", err)
	}
	for _, typ := range []string{"text/plain", "text/html"} {
		var ph textproto.Header
		ph.Add("Content-Transfer-Encoding", "quoted-printable")
		ph.Add("Content-Type", typ+"; charset=utf-8")
		pw, err := mw.CreatePart(ph)
		if err != nil {
			return nil, fmt.Errorf("write %s part: %w", typ, err)
		}
		part := text
		if typ == "text/html" {
			part = body
		}
		if err := writeText(pw, part); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("end multipart: %w", err)
	}
	return b.Bytes(), nil
}

// writeText writes s to w quoted-printable (line ends as CRLF), ending with a line break.
func writeText(w io.Writer, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return fmt.Errorf("encode body: %w", err)
	}
	if !strings.HasSuffix(s, "\n") {
		if _, err := io.WriteString(qp, "\n"); err != nil {
			return fmt.Errorf("encode body: %w", err)
		}
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("encode body: %w", err)
	}
	return nil
}

// Encoded-word sizes (RFC 2047 §2: a line holding encoded words is at most 76 characters).
// The first word shares its line with "Subject: ", so it is shorter: an encoded subject
// starts on the Subject line itself, never on a continuation line (which some parsers read
// as a leading space).
const (
	maxEncodedWord   = 75
	subjectFirstWord = 76 - len("Subject: ")
)

// encodeText returns s as an unstructured header value (RFC 2047): as it is when it is
// printable ASCII and holds nothing a decoder would take for an encoded word, otherwise as
// UTF-8 Q-encoded words of at most first, then maxEncodedWord, characters, separated by
// spaces where go-message folds the field. The words split at character boundaries and
// hold the spaces themselves (as "_"), so a decoder, which drops the space between
// adjacent encoded words, gives back s exactly.
//
// mime.QEncoding cannot do this: its words are up to 75 characters and do not fit after
// "Subject: " within 76, so go-message would leave the whole value on one long line.
func encodeText(s string, first int) string {
	if isPrintableASCII(s) && !strings.Contains(s, "=?") {
		return s
	}
	const open, end = "=?utf-8?q?", "?="
	var b strings.Builder
	b.Grow(len(s)*3 + len(s)/16*(len(open)+len(end)+1))
	budget := first - len(open) - len(end)
	b.WriteString(open)
	n := 0
	var enc [utf8.UTFMax * 3]byte
	for _, r := range s {
		e := qRune(enc[:0], r)
		if n+len(e) > budget && n > 0 {
			b.WriteString(end + " " + open)
			n, budget = 0, maxEncodedWord-len(open)-len(end)
		}
		b.Write(e)
		n += len(e)
	}
	b.WriteString(end)
	return b.String()
}

// qRune appends r in RFC 2047 Q encoding to dst: printable ASCII as itself except "=", "?"
// and "_", a space as "_", every other byte of its UTF-8 as =XX.
func qRune(dst []byte, r rune) []byte {
	switch {
	case r == ' ':
		return append(dst, '_')
	case r > ' ' && r <= '~' && r != '=' && r != '?' && r != '_':
		return append(dst, byte(r))
	}
	const hexDigits = "0123456789ABCDEF"
	var u [utf8.UTFMax]byte
	for _, c := range u[:utf8.EncodeRune(u[:], r)] {
		dst = append(dst, '=', hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// IsComposeError reports whether err means the email can never be sent as it is.
func IsComposeError(err error) bool {
	var ce *ComposeError
	return errors.As(err, &ce)
}
