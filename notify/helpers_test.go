package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// varRenderer is a tiny stand-in for the pattern language: {{ name }} is replaced by the
// variable's value; an unclosed "{{" is a compile error.
type varRenderer struct{}

var varRef = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

type varTemplate string

func (varRenderer) Compile(name, src string) (Template, error) {
	if strings.Count(src, "{{") != strings.Count(src, "}}") {
		return nil, fmt.Errorf("%s: unclosed {{", name)
	}
	return varTemplate(src), nil
}

func (t varTemplate) Render(vars map[string]any) (string, error) {
	return varRef.ReplaceAllStringFunc(string(t), func(m string) string {
		v, ok := vars[varRef.FindStringSubmatch(m)[1]]
		if !ok {
			return ""
		}
		return fmt.Sprint(v)
	}), nil
}

// received is one message the test server accepted.
type received struct {
	From string
	To   []string
	Data []byte
}

// backend is an in-process SMTP server's storage, and the failures it is told to make.
type backend struct {
	mu        sync.Mutex
	msgs      []received
	sessions  int
	tempFails int  // answer 451 to the next N DATA
	permFail  bool // answer 550 to every DATA
	dropEvery int  // close the connection at the MAIL after K messages on it
	drops     int
	user, pwd string // AUTH PLAIN required when set
	discard   bool   // count messages, keep nothing (benchmarks)
	maxConns  int    // refuse connections beyond this many at once
	active    int
	accepted  int
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.maxConns > 0 && b.active >= b.maxConns {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections"}
	}
	b.active++
	b.sessions++
	return &session{b: b, conn: c}, nil
}

func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

func (b *backend) acceptedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

func (b *backend) sessionCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions
}

type session struct {
	b      *backend
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
	count  int
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.b.user || password != s.b.pwd {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.b.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	if s.b.dropEvery > 0 && s.count == s.b.dropEvery {
		s.b.mu.Lock()
		s.b.drops++
		s.b.mu.Unlock()
		s.conn.Conn().Close()
		return errors.New("dropped")
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.tempFails > 0 {
		s.b.tempFails--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	if s.b.permFail {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.b.accepted++
	if !s.b.discard {
		s.b.msgs = append(s.b.msgs, received{From: s.from, To: s.to, Data: data})
	}
	s.count++
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }
func (s *session) Logout() error {
	s.b.mu.Lock()
	s.b.active--
	s.b.mu.Unlock()
	return nil
}

// testServer is a running go-smtp server on 127.0.0.1.
type testServer struct {
	*backend
	srv  *smtp.Server
	addr string
	port int
}

// certs makes a self-signed certificate for 127.0.0.1 and a pool that trusts it.
func certs(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roster test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// startServer runs an SMTP server with security "none", "starttls" or "tls" on addr
// ("127.0.0.1:0" for any port). It fails the test if the server cannot start.
func startServer(t testing.TB, be *backend, security, addr string, cert *tls.Certificate) *testServer {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 2 << 20
	srv.AllowInsecureAuth = false
	srv.ErrorLog = nopLogger{}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("SMTP test server cannot listen: %v", err)
	}
	if security != "none" {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	if security == "tls" {
		l = tls.NewListener(l, srv.TLSConfig)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &testServer{backend: be, srv: srv, addr: l.Addr().String(), port: l.Addr().(*net.TCPAddr).Port}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func openDB(t testing.TB) *state.DB {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "roster.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func enqueue(t testing.TB, db *state.DB, emails ...state.Email) {
	t.Helper()
	err := db.InTx(context.Background(), func(tx *sqlx.Tx) error {
		return state.Enqueue(context.Background(), tx, time.Now(), emails)
	})
	if err != nil {
		t.Fatal(err)
	}
}

const vmrHTML = `<html><head><title>x</title><style>p{}</style></head><body>
<p>Hello,</p><p>Your meeting room <b>{{ name }}</b> was {{ action }}.<br>Aliases: {{ aliases }}<br>PIN: {{ pin }}</p>
<p><a href="https://meet.example.com/{{ uri_alias }}">Join</a> &amp; enjoy &mdash; «{{ description }}»</p></body></html>`

func vmrEmail(i int) state.Email {
	return state.Email{
		Kind: "vmr", Action: "created", ObjectKey: fmt.Sprintf("Zoë Ångström %d VMR", i), Template: "staff",
		To: fmt.Sprintf("user%d@example.com", i), Commit: "c0ffee",
		Subject: "Your meeting room {{ name }}", Body: vmrHTML, BodyPath: "emails/vmr.html", HTML: true,
		Vars: map[string]any{
			"name": fmt.Sprintf("Zoë Ångström %d VMR", i), "action": "created", "pin": "123456",
			"aliases": fmt.Sprintf("meet.zoe%d@example.com, 4400%d", i, i), "uri_alias": fmt.Sprintf("meet.zoe%d@example.com", i),
			"description": "Personal room", "max_callrate_in": 4128,
		},
	}
}

func deviceEmail(i int) state.Email {
	return state.Email{
		Kind: "device", Action: "updated", ObjectKey: fmt.Sprintf("dev%d@example.com", i), Template: "staff",
		To:      fmt.Sprintf("Dev Owner %d <owner%d@example.com>", i, i),
		Subject: "Your video device {{ device_alias }}", Body: "Alias: {{ device_alias }}\nUsername: {{ device_username }}\nPassword: {{ device_password }}\n",
		BodyPath: "emails/device.txt",
		Vars:     map[string]any{"device_alias": fmt.Sprintf("dev%d@example.com", i), "device_username": "zoe", "device_password": "s3cret=ok"},
	}
}

func newDeliverer(db *state.DB, servers map[string]schema.SMTPConfig) *Deliverer {
	return &Deliverer{
		DB: db, Servers: servers, Renderer: varRenderer{},
		Backoff:   func(int) time.Duration { return 20 * time.Millisecond },
		DownDelay: 50 * time.Millisecond,
		HeloName:  "roster.test",
		Password:  func(string) string { return "" },
	}
}

func smtpConfig(s *testServer, security string) map[string]schema.SMTPConfig {
	return map[string]schema.SMTPConfig{"default": {Host: "127.0.0.1", Port: s.port, Security: security, From: "Roster Provisioning <roster@example.org>"}}
}

// parsed is a received message as an independent parser sees it.
type parsed struct {
	Header  mail.Header
	Subject string
	Text    string
	HTML    string
}

func parseMessage(t testing.TB, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	var p parsed
	p.Header = m.Header
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	switch mt {
	case "text/plain":
		if m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || params["charset"] != "utf-8" {
			t.Errorf("plain headers: %v", m.Header)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		p.Text = string(b)
	case "multipart/alternative":
		mr := multipart.NewReader(m.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(part) // NextPart decodes quoted-printable
			if err != nil {
				t.Fatal(err)
			}
			pt, pp, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
			if pp["charset"] != "utf-8" {
				t.Errorf("part %s charset %q", pt, pp["charset"])
			}
			switch pt {
			case "text/plain":
				p.Text = string(b)
			case "text/html":
				p.HTML = string(b)
			default:
				t.Errorf("unexpected part %s", pt)
			}
		}
	default:
		t.Fatalf("content type %s", mt)
	}
	return p
}

func messageIDs(t testing.TB, msgs []received) map[string]int {
	ids := map[string]int{}
	for _, m := range msgs {
		ids[parseMessage(t, m.Data).Header.Get("Message-ID")]++
	}
	return ids
}

func counts(t testing.TB, db *state.DB) map[string]int {
	t.Helper()
	c, err := db.OutboxCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
