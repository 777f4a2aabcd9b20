package reconcile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/roster-dev/roster/notify"
	"github.com/roster-dev/roster/state"
)

// emailRun is what one run of refScenario delivered and left in the outbox.
type emailRun struct {
	mail   map[string][]byte         // mail_dir: <id>.eml → MIME
	rows   map[int64]state.OutboxRow // `outbox show` of every row, reference cleared
	audit  []state.AuditEntry        // what status and the status page show
	refs   int                       // rows that referenced their object after the first apply
	status []string
	// failed rows still referencing their object when requeued; sent rows still referencing
	requeuedRefs, sentRefs int
}

// refScenario applies the same plans with emails by reference (byValue false) or by
// value with an audit row each (as before migration 007): creation; a failed email; an
// update of a person whose creation emails are still pending; a deletion; delivery; an
// update of the person whose email failed, the requeue of it and of a failed email still
// referencing its object, and delivery again.
func refScenario(t *testing.T, byValue bool) emailRun {
	t.Helper()
	defer func(old bool) { emailsByValue = old }(emailsByValue)
	emailsByValue = byValue
	ctx := context.Background()
	ps := []person{
		{uid: "ann", given: "Ann", sn: "Lee", mail: "ann@example.com", phone: "+44 20 7946 0001"},
		{uid: "bob", given: "Bob", sn: "Roe", mail: "bob@example.com", phone: "+44 20 7946 0002"},
		{uid: "cat", given: "Cat", sn: "Poe", mail: "cat@example.com"},
		{uid: "dan", given: "Dan", sn: "Orr", mail: "dan@example.com", phone: "+44 20 7946 0004"},
		{uid: "eve", given: "Eve", sn: "Ng", mail: "eve@example.com", phone: "+44 20 7946 0005"},
	}
	// The directory lists them in reverse: the creations' positions in the desired lists
	// are not the order apply writes them in (by name), nor the emails' order.
	reversed := func(ps ...person) []person {
		out := slices.Clone(ps)
		slices.Reverse(out)
		return out
	}
	h := newHarness(t, reversed(ps...)...)
	h.mustApply()
	var run emailRun
	run.refs = h.count(`SELECT COUNT(*) FROM outbox WHERE ref_id IS NOT NULL`)
	id := func(kind, key string) int64 {
		var n int64
		if err := h.db.Get(&n, `SELECT MAX(id) FROM outbox WHERE kind = ? AND object_key = ?`, kind, key); err != nil {
			t.Fatalf("%s %s: %v", kind, key, err)
		}
		return n
	}
	// cat's email fails and its VMR changes before it is requeued; dan's fails and is
	// requeued while it still references its device
	failed := []int64{id("vmr", "Cat Poe VMR"), id("device", "dan@dev.example.com")}
	for _, f := range failed {
		if err := h.db.MarkFailed(ctx, f, 3, "550 mailbox unavailable"); err != nil {
			t.Fatal(err)
		}
	}

	h.now = h.now.Add(time.Hour)
	ps[0].sn, ps[0].phone = "Lee-Smith", "+44 20 7946 0099" // renamed: VMR, aliases, device description
	h.directory(reversed(ps...)...)
	h.mustApply()
	h.now = h.now.Add(time.Hour)
	h.directory(reversed(append(ps[:1:1], ps[2:]...)...)...) // bob leaves: VMR and device deleted, user deactivated
	h.mustApply()

	dir := t.TempDir()
	d := &notify.Deliverer{DB: h.db, MailDir: dir, Renderer: notify.NewPatternRenderer([]byte("k")),
		Now: func() time.Time { return h.now }, Backoff: func(int) time.Duration { return 0 }}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	h.now = h.now.Add(time.Hour)
	ps[2].given = "Catherine" // the failed email's VMR changes before the email is requeued
	h.directory(reversed(append(ps[:1:1], ps[2:]...)...)...)
	h.mustApply()
	run.requeuedRefs = h.count(`SELECT COUNT(*) FROM outbox WHERE status = 'failed' AND ref_id IS NOT NULL`)
	for _, f := range failed {
		if err := h.db.RequeueEmail(ctx, f, h.now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	run.sentRefs = h.count(`SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND ref_id IS NOT NULL`)

	run.mail, run.rows = map[string][]byte{}, map[int64]state.OutboxRow{}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		run.mail[f.Name()] = b
	}
	for i := int64(1); i <= int64(h.count(`SELECT MAX(id) FROM outbox`)); i++ {
		r, err := h.db.OutboxEmail(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		r.RefID = nil
		run.rows[i] = r
		run.status = append(run.status, r.Status)
	}
	if run.audit, err = h.db.RecentAudit(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	return run
}

// Emails by reference deliver byte for byte the messages emails by value do, `outbox
// show` shows the same rows, and the audit log shows the same records.
func TestEmailsByReferenceMatchByValue(t *testing.T) {
	ref, val := refScenario(t, false), refScenario(t, true)
	if ref.refs == 0 || val.refs != 0 || ref.requeuedRefs != 1 {
		t.Fatalf("rows by reference after the first apply: %d with references, %d by value; %d requeued by reference",
			ref.refs, val.refs, ref.requeuedRefs)
	}
	if ref.sentRefs != 0 {
		t.Errorf("%d sent rows still reference their object: a sent row keeps the variables it was sent with", ref.sentRefs)
	}
	if len(val.mail) < 10 {
		t.Fatalf("only %d messages delivered", len(val.mail))
	}
	for name, want := range val.mail {
		if got, ok := ref.mail[name]; !ok || !bytes.Equal(got, want) {
			t.Errorf("message %s by reference:\n%s\nby value:\n%s", name, got, want)
		}
	}
	if len(ref.mail) != len(val.mail) {
		t.Errorf("%d messages by reference, %d by value", len(ref.mail), len(val.mail))
	}
	if !reflect.DeepEqual(ref.rows, val.rows) {
		for id, r := range val.rows {
			if !reflect.DeepEqual(ref.rows[id], r) {
				t.Errorf("outbox row %d by reference:\n%+v\nby value:\n%+v", id, ref.rows[id], r)
			}
		}
	}
	if !reflect.DeepEqual(ref.audit, val.audit) {
		t.Errorf("audit log by reference:\n%v\nby value (an audit row per email):\n%v", ref.audit, val.audit)
	}
	t.Logf("%d messages, %d outbox rows (statuses %v), %d audit records compared", len(val.mail), len(val.rows), val.status, len(val.audit))
}
