package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
)

// TestInBulkTx runs a bulk transaction alone on the database (rollback-journal mode) and
// beside another open connection (SQLite refuses the switch: WAL mode), committed and
// rolled back: the rows are there exactly when fn succeeded, and the database is in WAL
// mode (synchronous NORMAL) afterwards either way.
func TestInBulkTx(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idle     bool   // the pool has idle connections of earlier parallel reads
		other    bool   // a second connection (another pool, another process) holds the database open
		fail     bool   // fn returns an error: rolled back
		wantMode string // the journal mode inside the transaction
	}{
		{"alone", false, false, false, "delete"},
		{"alone, rolled back", false, false, true, "delete"},
		{"idle connections in the pool", true, false, false, "delete"},
		{"beside another connection", false, true, false, "wal"},
		{"beside another connection, rolled back", false, true, true, "wal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "roster.db")
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if tc.idle {
				conns := make([]*sqlx.Conn, 3)
				for i := range conns {
					if conns[i], err = db.Connx(ctx); err != nil {
						t.Fatal(err)
					}
					var n int
					if err := conns[i].GetContext(ctx, &n, `SELECT COUNT(*) FROM meta`); err != nil {
						t.Fatal(err)
					}
				}
				for _, c := range conns {
					c.Close()
				}
				if idle := db.Stats().Idle; idle < 2 {
					t.Fatalf("%d idle connections, want 2", idle)
				}
			}
			if tc.other {
				other, err := Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				var n int
				if err := other.Get(&n, `SELECT COUNT(*) FROM meta`); err != nil { // connect
					t.Fatal(err)
				}
			}
			boom := errors.New("boom")
			var inside string
			err = db.InBulkTx(ctx, func(tx *sqlx.Tx) error {
				if err := tx.Get(&inside, `PRAGMA journal_mode`); err != nil {
					return err
				}
				for i := 0; i < 2000; i++ { // more pages than the database had
					if err := SetMeta(ctx, tx, fmt.Sprintf("bulk/%d", i), strings.Repeat("v", 500)); err != nil {
						return err
					}
				}
				if tc.fail {
					return boom
				}
				return nil
			})
			if tc.fail != errors.Is(err, boom) || (!tc.fail && err != nil) {
				t.Fatalf("InBulkTx = %v, want failure %v", err, tc.fail)
			}
			if inside != tc.wantMode {
				t.Errorf("journal mode inside the transaction = %q, want %q", inside, tc.wantMode)
			}
			var n int
			if err := db.Get(&n, `SELECT COUNT(*) FROM meta WHERE key LIKE 'bulk/%'`); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 2000}[tc.fail]; n != want {
				t.Errorf("rows after the transaction = %d, want %d", n, want)
			}
			// every connection of the pool, old or new, sees WAL mode again
			conns := make([]*sqlx.Conn, 3)
			for i := range conns {
				if conns[i], err = db.Connx(ctx); err != nil {
					t.Fatal(err)
				}
				defer conns[i].Close()
				var mode string
				var sync int
				if err := conns[i].GetContext(ctx, &mode, `PRAGMA journal_mode`); err != nil || mode != "wal" {
					t.Errorf("connection %d: journal mode after = %q, %v; want wal", i, mode, err)
				}
				if err := conns[i].GetContext(ctx, &sync, `PRAGMA synchronous`); err != nil || sync != 1 {
					t.Errorf("connection %d: synchronous after = %d, %v; want 1 (NORMAL)", i, sync, err)
				}
			}
		})
	}
}
