package state

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// The variables are encoded by hand; the JSON must be json.Marshal's, byte for byte, so
// rows decode to the same values (and the same Message-ID) as they always did.
func TestAppendVarsIsJSONMarshal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	texts := []string{"", "plain", "Zoë Ångström", `"quoted" \ back`, "<b>&amp;</b>", "tab\tnl\ncr\r\x01\x1f\x7f",
		"sep\u2028\u2029", "bad \xff\xfe utf-8", "emoji 🎥", "日本語"}
	values := func() any {
		switch rng.Intn(8) {
		case 0:
			return texts[rng.Intn(len(texts))]
		case 1:
			return rng.Intn(2) == 0
		case 2:
			return rng.Intn(1<<20) - 1<<19
		case 3:
			return int64(rng.Int63())
		case 4:
			var l []string
			for range rng.Intn(3) {
				l = append(l, texts[rng.Intn(len(texts))])
			}
			return l
		case 5:
			return 1.5
		case 6:
			return nil
		}
		return map[string]any{"nested": texts[rng.Intn(len(texts))]}
	}
	for i := range 500 {
		vars := map[string]any{}
		for range rng.Intn(12) {
			vars[texts[rng.Intn(len(texts))]+fmt.Sprint(rng.Intn(5))] = values()
		}
		if i == 0 {
			vars = nil
		}
		want, err := json.Marshal(vars)
		if err != nil {
			t.Fatal(err)
		}
		if vars == nil {
			want = []byte("{}") // an email without variables has an empty object
		}
		got, err := appendVars(nil, &Email{Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("vars %#v:\n got %s\nwant %s", vars, got, want)
		}
		var list []Var
		for k, v := range vars {
			list = append(list, Var{k, v})
		}
		if got, _ := appendVars(nil, &Email{VarList: list}); string(got) != string(want) {
			t.Fatalf("var list %#v:\n got %s\nwant %s", list, got, want)
		}
	}
}

// Writer.Enqueue (the apply's batched rows) writes exactly what Enqueue writes row by row:
// the same outbox rows in the same order and the same template rows.
func TestWriterEnqueueAsEnqueue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	emails := testEmails(2*batchSize + 17) // two full batches and a partial one
	for i := range emails {
		if i%3 == 1 {
			emails[i].Subject, emails[i].HTML = "Other {{ name }}", false
		}
	}
	dump := func(write func(tx *sqlx.Tx) error) (outbox, templates []string) {
		db, err := Open(ctx, filepath.Join(t.TempDir(), "e.db"))
		check(t, err)
		defer db.Close()
		check(t, db.InTx(ctx, write))
		check(t, db.Select(&outbox, `SELECT id || '|' || created_at || '|' || commit_id || '|' || kind || '|' || action || '|' ||
			object_key || '|' || template || '|' || to_addr || '|' || smtp_server || '|' || email_template || '|' || vars || '|' ||
			status || '|' || attempts || '|' || next_attempt_at FROM outbox ORDER BY id`))
		check(t, db.Select(&templates, `SELECT hash || subject || body || body_path || html FROM email_templates ORDER BY hash`))
		return outbox, templates
	}
	wantRows, wantTemplates := dump(func(tx *sqlx.Tx) error { return Enqueue(ctx, tx, now, emails) })
	gotRows, gotTemplates := dump(func(tx *sqlx.Tx) error {
		w, err := NewWriter(ctx, tx, now)
		if err != nil {
			return err
		}
		defer w.Close()
		for i := range emails {
			if err := w.Enqueue(&emails[i]); err != nil {
				return err
			}
		}
		return w.Flush()
	})
	if len(wantRows) != len(emails) || len(wantTemplates) != 2 {
		t.Fatalf("Enqueue wrote %d rows and %d templates, want %d and 2", len(wantRows), len(wantTemplates), len(emails))
	}
	if fmt.Sprint(gotRows) != fmt.Sprint(wantRows) || fmt.Sprint(gotTemplates) != fmt.Sprint(wantTemplates) {
		t.Errorf("Writer.Enqueue wrote\n%v\n%v\nwant\n%v\n%v", gotRows[:3], gotTemplates, wantRows[:3], wantTemplates)
	}
}
