package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/notify"
)

// The outbox holds only the variables an email's template may read, written as the
// apply goes; every message must still be what the whole set of variables (the map each
// email carried before) renders, byte for byte. Each applied row is composed as it is and
// with the full variables as JSON, the way rows were written before.
func TestOutboxVarsRenderAsAllVars(t *testing.T) {
	erin := person{uid: "erin", given: "Érin <&>", sn: `Ñúñez "E"`, mail: "erin@example.com", phone: "+1 555 0100"}
	h := newHarness(t, alice, bob, erin)
	for _, f := range []string{"vmr.html", "device.txt"} {
		body, err := os.ReadFile("../examples/emails/" + f)
		if err != nil {
			t.Fatal(err)
		}
		h.write("emails/"+f, string(body))
	}
	h.write("templates/staff.yaml", strings.NewReplacer("emails/vmr.txt", "emails/vmr.html",
		"Your room {{ name }}", "Your room {{ name }} ({{ uri_alias }})").Replace(staffTemplate))
	h.write("invites/partners.csv", "name;email;username\nPat Partner;pat@partner.example;pat.partner@partner.example\n")
	p := h.mustApply()

	rows, err := h.db.ClaimDue(context.Background(), h.now.Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var mailed []*Email
	for _, e := range p.Emails() {
		if e.mail != nil {
			mailed = append(mailed, e)
		}
	}
	if len(rows) != len(mailed) || len(rows) < 10 {
		t.Fatalf("%d outbox rows for %d emails (want the same, at least 10)", len(rows), len(mailed))
	}
	c := notify.NewComposer(notify.NewPatternRenderer([]byte("test-secret-key")))
	kinds, smaller := map[string]bool{}, 0
	for i, row := range rows {
		e := mailed[i]
		if row.ObjectKey != e.Key || row.Kind != string(e.Kind) {
			t.Fatalf("row %d is %s %s, want %s %s", i, row.Kind, row.ObjectKey, e.Kind, e.Key)
		}
		all := varMap(p.emailVars(nil, e))
		full, err := json.Marshal(all)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := row.DecodeVars()
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) < len(all) {
			smaller++
		}
		old := row
		old.Vars = string(full)
		got, err := c.Compose(&row, "roster@example.org", h.now)
		if err != nil {
			t.Fatalf("row %d (%s %s): %v", i, row.Kind, row.ObjectKey, err)
		}
		want, err := c.Compose(&old, "roster@example.org", h.now)
		if err != nil {
			t.Fatal(err)
		}
		// The Message-ID hashes the row's variables, and an HTML message's boundary the
		// Message-ID: those two differ, everything else must not.
		data := bytes.ReplaceAll(want.Data, []byte(want.MessageID), []byte(got.MessageID))
		data = bytes.ReplaceAll(data, []byte(boundaryOf(want.MessageID)), []byte(boundaryOf(got.MessageID)))
		if got.Subject != want.Subject || !bytes.Equal(got.Data, data) {
			t.Errorf("row %d (%s %s) differs from its full variables' rendering:\n%s\n--- want\n%s", i, row.Kind, row.ObjectKey, got.Data, data)
		}
		kinds[row.Kind] = true
	}
	for _, k := range []string{"vmr", "device", "activation", "invite"} {
		if !kinds[k] {
			t.Errorf("no %s email composed", k)
		}
	}
	if smaller == 0 {
		t.Error("every row holds every variable: none was left out")
	}
}

// boundaryOf is the MIME boundary notify derives from a Message-ID.
func boundaryOf(messageID string) string {
	sum := sha256.Sum256([]byte(messageID))
	return "=_roster_" + hex.EncodeToString(sum[:12])
}
