package state

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/roster-dev/roster/schema/account"
)

// BenchmarkWriterAuditAndEmails writes what a first apply writes per person besides its
// objects — six audit rows and three outbox rows — for 2,000 people per operation, in one
// transaction on a fresh database file.
func BenchmarkWriterAuditAndEmails(b *testing.B) {
	ctx := context.Background()
	vars := []Var{{Name: "name", Value: "Anna Andersen (u0)"}, {Name: "pin", Value: "977005"}, {Name: "allow_guests", Value: true}}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := Open(ctx, filepath.Join(b.TempDir(), "w.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		err = db.InTx(ctx, func(tx *sqlx.Tx) error {
			w, err := NewWriter(ctx, tx, time.Now())
			if err != nil {
				return err
			}
			defer w.Close()
			for p := 0; p < 2000; p++ {
				key := fmt.Sprintf("Person %d", p)
				for k := 0; k < 3; k++ {
					if err := w.Audit("0123456789abcdef0123456789abcdef01234567", "cli:apply", account.KindVMR, account.ActionCreate, key, ""); err != nil {
						return err
					}
					if err := w.Enqueue(&Email{Kind: "vmr", Action: "created", ObjectKey: key, Template: "staff", To: "anna@example.com",
						Commit: "0123456789abcdef0123456789abcdef01234567", Subject: "s", Body: "b", VarList: vars}); err != nil {
						return err
					}
					if err := w.Audit("0123456789abcdef0123456789abcdef01234567", "cli:apply", account.KindEmail, account.ActionCreate, "vmr "+key, "to anna@example.com"); err != nil {
						return err
					}
				}
			}
			return w.Flush()
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
}
