package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

func TestDeliverSecurityVariants(t *testing.T) {
	cert, roots := certs(t)
	tests := []struct {
		name, security string
		auth           bool
	}{
		{"plain", "none", false},
		{"starttls", "starttls", false},
		{"implicit tls", "tls", false},
		{"starttls with AUTH PLAIN", "starttls", true},
		{"implicit tls with AUTH PLAIN", "tls", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{}
			if tt.auth {
				be.user, be.pwd = "roster", "pa55word"
			}
			srv := startServer(t, be, tt.security, "127.0.0.1:0", &cert)
			db := openDB(t)
			enqueue(t, db, vmrEmail(1), deviceEmail(2), vmrEmail(3))
			servers := smtpConfig(srv, tt.security)
			if tt.auth {
				c := servers["default"]
				c.Username, c.PasswordEnv = "roster", "SMTP_PASSWORD"
				servers["default"] = c
			}
			d := newDeliverer(db, servers)
			d.TLSConfig = &tls.Config{RootCAs: roots}
			d.Password = func(env string) string {
				if env == "SMTP_PASSWORD" {
					return "pa55word"
				}
				return ""
			}
			rep, err := d.DeliverDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 3 || rep.Failed+rep.Retried+rep.Deferred != 0 {
				t.Fatalf("report = %+v; outbox %v", rep, counts(t, db))
			}
			msgs := be.messages()
			if len(msgs) != 3 {
				t.Fatalf("server received %d messages", len(msgs))
			}
			byTo := map[string]received{}
			for _, m := range msgs {
				byTo[m.To[0]] = m
				if m.From != "roster@example.org" || len(m.To) != 1 {
					t.Errorf("envelope %s → %v", m.From, m.To)
				}
			}
			p := parseMessage(t, byTo["user3@example.com"].Data)
			if p.Subject != "Your meeting room Zoë Ångström 3 VMR" || !strings.Contains(p.Text, "PIN: 123456") || !strings.Contains(p.HTML, "<b>Zoë Ångström 3 VMR</b>") {
				t.Errorf("vmr message: %+v", p)
			}
			p = parseMessage(t, byTo["owner2@example.com"].Data)
			if !strings.Contains(p.Text, "Password: s3cret=ok") {
				t.Errorf("device message: %q", p.Text)
			}
			if c := counts(t, db); c["sent"] != 3 {
				t.Errorf("outbox = %v", c)
			}
			// A second run sends nothing: a sent row is never sent again.
			if rep, err := d.DeliverDue(context.Background()); err != nil || rep != (Report{}) || len(be.messages()) != 3 {
				t.Errorf("second run: %+v, %v, %d messages", rep, err, len(be.messages()))
			}
		})
	}
}

func TestDeliverAuthWrongPasswordDefers(t *testing.T) {
	cert, roots := certs(t)
	be := &backend{user: "roster", pwd: "right"}
	srv := startServer(t, be, "tls", "127.0.0.1:0", &cert)
	db := openDB(t)
	enqueue(t, db, vmrEmail(1))
	servers := smtpConfig(srv, "tls")
	c := servers["default"]
	c.Username, c.PasswordEnv = "roster", "P"
	servers["default"] = c
	d := newDeliverer(db, servers)
	d.TLSConfig = &tls.Config{RootCAs: roots}
	d.Password = func(string) string { return "wrong" }
	rep, err := d.DeliverDue(context.Background())
	if err != nil || rep.Deferred != 1 || len(be.messages()) != 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	row, _ := db.OutboxEmail(context.Background(), 1)
	if row.Status != "pending" || row.Attempts != 0 || !strings.Contains(row.LastError, "authenticate") {
		t.Errorf("row = %+v", row)
	}
}

func TestDeliverServerDownThenUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now

	db := openDB(t)
	for i := range 5 {
		enqueue(t, db, vmrEmail(i))
	}
	servers := map[string]schema.SMTPConfig{"only": {Host: "127.0.0.1", Port: port, Security: "none", From: "roster@example.org"}}
	d := newDeliverer(db, servers)
	rep, err := d.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deferred != 5 || rep.Sent != 0 {
		t.Fatalf("while down: %+v", rep)
	}
	row, _ := db.OutboxEmail(context.Background(), 1)
	if row.Status != "pending" || row.Attempts != 0 || !strings.Contains(row.LastError, "server unavailable") {
		t.Errorf("deferred row = %+v", row)
	}

	be := &backend{}
	startServer(t, be, "none", addr, nil)
	rep, err = d.DeliverAll(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 5 || rep.Pending != 0 {
		t.Errorf("after up: %+v", rep)
	}
	ids := messageIDs(t, be.messages())
	if len(ids) != 5 {
		t.Errorf("received %d distinct messages", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s received %d times", id, n)
		}
	}
}

func TestDeliverTemporaryFailureThenSuccess(t *testing.T) {
	be := &backend{tempFails: 2}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	enqueue(t, db, vmrEmail(1), vmrEmail(2), vmrEmail(3))
	d := newDeliverer(db, smtpConfig(srv, "none"))
	rep, err := d.DeliverAll(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 3 || rep.Retried != 2 || rep.Failed != 0 || rep.Pending != 0 {
		t.Errorf("report = %+v", rep)
	}
	if n := len(be.messages()); n != 3 {
		t.Errorf("received %d", n)
	}
	retried := 0
	for id := int64(1); id <= 3; id++ {
		row, _ := db.OutboxEmail(context.Background(), id)
		if row.Status != "sent" || row.MessageID == "" || row.SentAt == nil {
			t.Errorf("row %d = %+v", id, row)
		}
		retried += row.Attempts
	}
	if retried != 2 {
		t.Errorf("attempts recorded = %d, want 2", retried)
	}
}

func TestDeliverPermanentFailureAfterThreeTries(t *testing.T) {
	be := &backend{permFail: true}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	enqueue(t, db, vmrEmail(1))
	d := newDeliverer(db, smtpConfig(srv, "none"))
	rep, err := d.DeliverAll(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 1 || rep.Retried != 2 || rep.Sent != 0 || rep.Pending != 0 {
		t.Errorf("report = %+v", rep)
	}
	if c := counts(t, db); c["failed"] != 1 || c["pending"] != 0 {
		t.Errorf("outbox = %v", c)
	}
	failed, err := db.FailedEmails(context.Background(), 10)
	if err != nil || len(failed) != 1 || failed[0].Attempts != MaxTries || !strings.Contains(failed[0].LastError, "550") {
		t.Fatalf("failed = %+v, %v", failed, err)
	}
	// Further runs leave it alone until an operator drops or requeues it.
	if rep, _ := d.DeliverDue(context.Background()); rep != (Report{}) {
		t.Errorf("a failed email was tried again: %+v", rep)
	}
	if err := db.DropEmail(context.Background(), failed[0].ID); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, db); c["dropped"] != 1 || c["failed"] != 0 {
		t.Errorf("after drop: %v", c)
	}
}

func TestDeliverConnectionDroppedMidBatch(t *testing.T) {
	be := &backend{dropEvery: 7}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	const n = 60
	for i := range n {
		enqueue(t, db, vmrEmail(i))
	}
	d := newDeliverer(db, smtpConfig(srv, "none"))
	rep, err := d.DeliverAll(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != n || rep.Pending != 0 || rep.Failed != 0 {
		t.Errorf("report = %+v", rep)
	}
	if be.drops == 0 {
		t.Fatal("the server never dropped a connection")
	}
	ids := messageIDs(t, be.messages())
	if len(ids) != n {
		t.Errorf("received %d distinct messages, want %d", len(ids), n)
	}
	for id, k := range ids {
		if k != 1 {
			t.Errorf("%s received %d times", id, k)
		}
	}
	t.Logf("%d drops, %d connections, report %+v", be.drops, be.sessionCount(), rep)
}

func TestDeliverHeaderInjectionNeverSent(t *testing.T) {
	be := &backend{}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	good := vmrEmail(1)
	evilSubject := vmrEmail(2)
	evilSubject.Vars["name"] = "Room\r\nBcc: victim@example.net"
	evilTo := vmrEmail(3)
	evilTo.To = "user3@example.com\r\nBcc: victim@example.net"
	evilList := vmrEmail(4)
	evilList.To = "user4@example.com, victim@example.net"
	enqueue(t, db, good, evilSubject, evilTo, evilList)
	d := newDeliverer(db, smtpConfig(srv, "none"))
	rep, err := d.DeliverAll(context.Background(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 1 || rep.Failed != 3 || rep.Retried != 0 {
		t.Errorf("report = %+v", rep)
	}
	msgs := be.messages()
	if len(msgs) != 1 || msgs[0].To[0] != "user1@example.com" {
		t.Fatalf("server received %+v", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(string(m.Data), "victim") {
			t.Errorf("injected content reached the server:\n%s", m.Data)
		}
	}
	failed, _ := db.FailedEmails(context.Background(), 10)
	if len(failed) != 3 {
		t.Fatalf("failed rows = %d", len(failed))
	}
	for _, f := range failed {
		if f.Attempts != 1 || f.LastError == "" {
			t.Errorf("failed row %d: attempts %d, error %q", f.ID, f.Attempts, f.LastError)
		}
	}
}

func TestDeliverThousandReusesConnections(t *testing.T) {
	be := &backend{}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	var emails []state.Email
	for i := range 1000 {
		if i%2 == 0 {
			emails = append(emails, vmrEmail(i))
		} else {
			emails = append(emails, deviceEmail(i))
		}
	}
	enqueue(t, db, emails...)
	d := newDeliverer(db, smtpConfig(srv, "none"))
	d.PoolSize = 3
	var progress strings.Builder
	d.Progress = &progress
	rep, err := d.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 1000 {
		t.Errorf("report = %+v", rep)
	}
	if n := len(be.messages()); n != 1000 {
		t.Errorf("received %d", n)
	}
	if s := be.sessionCount(); s > d.PoolSize {
		t.Errorf("%d connections for pool size %d", s, d.PoolSize)
	}
	if !strings.HasSuffix(progress.String(), "sending emails: 1000/1000\n") {
		t.Errorf("progress = %q", progress.String())
	}
}

func TestDeliverMailDir(t *testing.T) {
	db := openDB(t)
	enqueue(t, db, vmrEmail(1), deviceEmail(2))
	bad := deviceEmail(3)
	bad.To = "not an address"
	enqueue(t, db, bad)
	dir := filepath.Join(t.TempDir(), "outbox")
	d := newDeliverer(db, nil)
	d.MailDir = dir
	rep, err := d.DeliverAll(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 2 || rep.Failed != 1 {
		t.Errorf("report = %+v", rep)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[1.eml 2.eml]" {
		t.Fatalf("mail_dir holds %v", names)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "1.eml"))
	p := parseMessage(t, data)
	if p.Subject != "Your meeting room Zoë Ångström 1 VMR" || p.Header.Get("From") != "<roster@localhost>" {
		t.Errorf("1.eml: subject %q from %q", p.Subject, p.Header.Get("From"))
	}
	row, _ := db.OutboxEmail(context.Background(), 1)
	if row.Status != "sent" || row.MessageID != p.Header.Get("Message-ID") {
		t.Errorf("row = %+v", row)
	}
}

func TestDeliverRouting(t *testing.T) {
	be := &backend{}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	e1 := vmrEmail(1)
	e1.SMTPServer = "corp"
	e2 := vmrEmail(2) // "" → "default"
	e3 := vmrEmail(3)
	e3.SMTPServer = "nowhere"
	enqueue(t, db, e1, e2, e3)
	cfg := smtpConfig(srv, "none")["default"]
	corp := cfg
	corp.From = "corp@corp.example"
	d := newDeliverer(db, map[string]schema.SMTPConfig{"default": cfg, "corp": corp})
	rep, err := d.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 2 || rep.Failed != 1 {
		t.Errorf("report = %+v", rep)
	}
	from := map[string]string{}
	for _, m := range be.messages() {
		from[m.To[0]] = m.From
	}
	if from["user1@example.com"] != "corp@corp.example" || from["user2@example.com"] != "roster@example.org" {
		t.Errorf("envelope senders = %v", from)
	}
	failed, _ := db.FailedEmails(context.Background(), 10)
	if len(failed) != 1 || !strings.Contains(failed[0].LastError, `unknown SMTP server "nowhere"`) {
		t.Errorf("failed = %+v", failed)
	}
}

func TestDeliverCancelledReleasesClaims(t *testing.T) {
	db := openDB(t)
	enqueue(t, db, vmrEmail(1), vmrEmail(2))
	d := newDeliverer(db, nil)
	d.MailDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.DeliverDue(ctx); err == nil {
		t.Error("no error from a cancelled run")
	}
	if c := counts(t, db); c["pending"] != 2 || c["sending"] != 0 {
		t.Errorf("outbox = %v", c)
	}
}

// A row left "sending" by a deliverer that stopped (crash between claim and outcome) is sent
// once its lease expired, with the Message-ID it would have had.
func TestDeliverRecoversAbandonedClaim(t *testing.T) {
	be := &backend{}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	enqueue(t, db, vmrEmail(1))
	claimed, err := db.ClaimDue(context.Background(), time.Now(), 10) // the deliverer that "crashed"
	if err != nil || len(claimed) != 1 {
		t.Fatal(claimed, err)
	}
	d := newDeliverer(db, smtpConfig(srv, "none"))
	if rep, _ := d.DeliverDue(context.Background()); rep.Sent != 0 || len(be.messages()) != 0 {
		t.Fatalf("a claimed row was sent within its lease: %+v", rep)
	}
	d.Now = func() time.Time { return time.Now().Add(state.ClaimLease + time.Minute) }
	rep, err := d.DeliverDue(context.Background())
	if err != nil || rep.Sent != 1 {
		t.Fatalf("after the lease: %+v, %v", rep, err)
	}
	want := MessageID(&claimed[0], "example.org")
	if got := parseMessage(t, be.messages()[0].Data).Header.Get("Message-ID"); got != want {
		t.Errorf("Message-ID = %q, want %q", got, want)
	}
}

// DeliverAll gives up waiting after maxWait; what it could not send stays pending.
func TestDeliverAllStopsAfterMaxWait(t *testing.T) {
	db := openDB(t)
	enqueue(t, db, vmrEmail(1), vmrEmail(2))
	servers := map[string]schema.SMTPConfig{"default": {Host: "127.0.0.1", Port: 1, Security: "none", From: "roster@example.org"}}
	d := newDeliverer(db, servers)
	start := time.Now()
	rep, err := d.DeliverAll(context.Background(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("DeliverAll took %v", el)
	}
	if rep.Pending != 2 || rep.Sent != 0 || rep.Deferred < 4 {
		t.Errorf("report = %+v", rep)
	}
	if c := counts(t, db); c["pending"] != 2 {
		t.Errorf("outbox = %v", c)
	}
}

// A server that allows one connection per client: the extra senders give up, the first
// sends everything.
func TestDeliverServerLimitsConnections(t *testing.T) {
	be := &backend{maxConns: 1}
	srv := startServer(t, be, "none", "127.0.0.1:0", nil)
	db := openDB(t)
	for i := range 40 {
		enqueue(t, db, deviceEmail(i))
	}
	d := newDeliverer(db, smtpConfig(srv, "none"))
	d.PoolSize = 3
	rep, err := d.DeliverAll(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 40 || rep.Pending != 0 || rep.Failed != 0 || rep.Deferred > 2*(d.PoolSize-1) { // each run may retire its extra senders once
		t.Errorf("report = %+v", rep)
	}
	if ids := messageIDs(t, be.messages()); len(ids) != 40 {
		t.Errorf("received %d distinct messages", len(ids))
	}
}
