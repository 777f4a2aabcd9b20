package state

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
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

// BenchmarkWriterFirstApply writes what a first apply of the realistic profile writes for
// 5,000 people per operation, in one bulk transaction (InBulkTx) on a fresh database file:
// per person a VMR with three aliases, a device, a user, six audit rows and three emails.
// Names and aliases are spread as LDAP entries spread them (not in key order).
func BenchmarkWriterFirstApply(b *testing.B) {
	ctx := context.Background()
	const people = 5000
	commit := "0123456789abcdef0123456789abcdef01234567"
	vars := []Var{{Name: "name", Value: "Anna Andersen (u0)"}, {Name: "pin", Value: "977005"}, {Name: "allow_guests", Value: true}}
	var cpu time.Duration // the process's user+sys time in the timed parts: the machine is shared
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := Open(ctx, filepath.Join(b.TempDir(), "w.db"))
		if err != nil {
			b.Fatal(err)
		}
		start := cpuTime()
		b.StartTimer()
		err = db.InBulkTx(ctx, func(tx *sqlx.Tx) error {
			w, err := NewWriter(ctx, tx, time.Now())
			if err != nil {
				return err
			}
			defer w.Close()
			for p := 0; p < people; p++ {
				if err := writeBenchPerson(w, p*7919%people, commit, vars); err != nil {
					return err
				}
			}
			return w.Flush()
		})
		b.StopTimer()
		cpu += cpuTime() - start
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBenchPerson writes person p's objects, audit rows and emails.
func writeBenchPerson(w *Writer, p int, commit string, vars []Var) error {
	key := fmt.Sprintf("uid=user%06d,ou=people,dc=example,dc=com", p)
	email := fmt.Sprintf("first.last%d@example.com", p)
	v := &account.VMR{Name: fmt.Sprintf("First Last (user%06d)", p), Description: "Meeting room of First Last",
		Aliases: []string{fmt.Sprintf("first.last%d@vc.example.com", p), fmt.Sprintf("%d@vc.example.com", 4000000+p),
			fmt.Sprintf("sip:user%06d@vc.example.com", p)},
		PIN: fmt.Sprintf("%06d", p*37%1000000), AllowGuests: true, MaxCallrateIn: 2048, Tag: "staff",
		OwnerEmail: email, SyncTag: "staff", EntryKey: key}
	d := &account.Device{Alias: fmt.Sprintf("first.last%d.device@vc.example.com", p), Description: "Device of First Last",
		Username: fmt.Sprintf("user%06d", p), Password: fmt.Sprintf("pw%010d", p*7), Tag: "staff", OwnerEmail: email,
		SyncTag: "staff", EntryKey: key}
	u := &account.User{UserID: fmt.Sprint(p + 1), Email: email, FirstName: "First", LastName: "Last", Language: "en-US",
		HostPrivilege: "HOST", TimeZone: "Europe/Oslo", Active: true, Origin: "remote", License: "paid",
		SyncTag: "staff", EntryKey: key, Notified: true}
	if err := w.InsertVMR(v); err != nil {
		return err
	}
	if err := w.InsertDevice(d); err != nil {
		return err
	}
	if err := w.InsertUser(u); err != nil {
		return err
	}
	for _, c := range []struct {
		kind account.Kind
		name string
	}{{account.KindVMR, v.Name}, {account.KindDevice, d.Alias}, {account.KindUser, u.Email}} {
		if err := w.Audit(commit, "cli:apply", c.kind, account.ActionCreate, c.name, ""); err != nil {
			return err
		}
		if err := w.Enqueue(&Email{Kind: string(c.kind), Action: "created", ObjectKey: c.name, Template: "staff", To: email,
			Commit: commit, Subject: "s", Body: "b", VarList: vars}); err != nil {
			return err
		}
		if err := w.Audit(commit, "cli:apply", account.KindEmail, account.ActionCreate, string(c.kind)+" "+c.name, "to "+email); err != nil {
			return err
		}
	}
	return nil
}
