package state

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// TestWriterBatchErrorSurfaces: a full batch runs on the writer's goroutine; its failure
// (here a duplicate VMR name in the first batch) must come back from a later call or from
// Flush, and nothing of the transaction may stay.
func TestWriterBatchErrorSurfaces(t *testing.T) {
	for _, n := range []int{batchSize, 3 * batchSize, 3*batchSize + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"))
			check(t, err)
			defer db.Close()
			err = db.InTx(ctx, func(tx *sqlx.Tx) error {
				w, err := NewWriter(ctx, tx, time.Now())
				if err != nil {
					return err
				}
				defer w.Close()
				for i := 0; i < n; i++ {
					name := fmt.Sprintf("Room %d", i)
					if i == 1 {
						name = "Room 0" // fails with the first batch
					}
					if err := w.InsertVMR(&account.VMR{Name: name, Aliases: []string{fmt.Sprintf("r%d", i)}, SyncTag: "t", EntryKey: fmt.Sprint(i)}); err != nil {
						return err
					}
				}
				return w.Flush()
			})
			if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
				t.Fatalf("err = %v, want the batch's UNIQUE failure", err)
			}
			var rows int
			check(t, db.Get(&rows, `SELECT COUNT(*) FROM vmrs`))
			if rows != 0 {
				t.Errorf("%d VMRs stayed after the failed transaction", rows)
			}
		})
	}
}

// TestWriterKeepsStatementOrder: an update after queued inserts sees them (it waits for
// the queue), so a VMR inserted in a full batch can be renamed at once.
func TestWriterKeepsStatementOrder(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"))
	check(t, err)
	defer db.Close()
	check(t, db.InTx(ctx, func(tx *sqlx.Tx) error {
		w, err := NewWriter(ctx, tx, time.Now())
		if err != nil {
			return err
		}
		defer w.Close()
		vs := make([]*account.VMR, 2*batchSize)
		for i := range vs {
			vs[i] = &account.VMR{Name: fmt.Sprintf("Room %d", i), Aliases: []string{fmt.Sprintf("r%d", i)}, SyncTag: "t", EntryKey: fmt.Sprint(i)}
			if err := w.InsertVMR(vs[i]); err != nil {
				return err
			}
		}
		vs[0].Name = "Renamed"
		if err := w.UpdateVMR(vs[0]); err != nil {
			return err
		}
		return w.Flush()
	}))
	var name string
	check(t, db.Get(&name, `SELECT name FROM vmrs ORDER BY id LIMIT 1`))
	var n int
	check(t, db.Get(&n, `SELECT COUNT(*) FROM vmr_aliases`))
	if name != "Renamed" || n != 2*batchSize {
		t.Errorf("first VMR %q, %d aliases; want Renamed, %d", name, n, 2*batchSize)
	}
}
