package notify

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/state"
)

// BenchmarkDeliver10k delivers 10,000 outbox rows to an in-process go-smtp sink (claim,
// render, compose, send over the pool, record outcomes) and, in the same run, sends the same
// pre-rendered messages with a bare go-smtp client loop on as many connections. It reports
// both rates and their ratio (target ≥ 0.8).
func BenchmarkDeliver10k(b *testing.B) {
	const n = 10000
	be := &backend{discard: true}
	srv := startServer(b, be, "none", "127.0.0.1:0", nil)
	emails := make([]state.Email, n)
	for i := range emails {
		if i%2 == 0 {
			emails[i] = vmrEmail(i)
		} else {
			emails[i] = deviceEmail(i)
		}
	}
	// The bare loop's messages: the same rows, composed once, outside any timing.
	var msgs []*Message
	{
		db := openDB(b)
		enqueue(b, db, emails...)
		rows, err := db.ClaimDue(context.Background(), time.Now().Add(time.Second), n)
		if err != nil {
			b.Fatal(err)
		}
		c := NewComposer(NewPatternRenderer([]byte("k")))
		for i := range rows {
			m, err := c.Compose(&rows[i], "roster@example.org", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, m)
		}
	}
	const pool = 2
	var rosterTime, bareTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, err := state.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		if err := db.InTx(context.Background(), func(tx *sqlx.Tx) error {
			return state.Enqueue(context.Background(), tx, time.Now(), emails)
		}); err != nil {
			b.Fatal(err)
		}
		d := newDeliverer(db, smtpConfig(srv, "none"))
		d.Renderer = NewPatternRenderer([]byte("k")) // the production renderer
		d.PoolSize = pool
		before := be.acceptedCount()
		b.StartTimer()

		t0 := time.Now()
		rep, err := d.DeliverDue(context.Background())
		rosterTime += time.Since(t0)

		b.StopTimer()
		db.Close()
		if err != nil || rep.Sent != n || be.acceptedCount()-before != n {
			b.Fatalf("roster: %+v, %v, server accepted %d", rep, err, be.acceptedCount()-before)
		}
		t1 := time.Now()
		bareSend(b, srv.addr, msgs, pool)
		bareTime += time.Since(t1)
		if be.acceptedCount()-before != 2*n {
			b.Fatalf("bare loop: server accepted %d", be.acceptedCount()-before-n)
		}
	}
	total := float64(n * b.N)
	rosterRate, bareRate := total/rosterTime.Seconds(), total/bareTime.Seconds()
	b.ReportMetric(rosterRate, "roster-msgs/s")
	b.ReportMetric(bareRate, "bare-msgs/s")
	b.ReportMetric(rosterRate/bareRate, "ratio")
	b.ReportMetric(0, "ns/op")
}

// bareSend sends msgs with go-smtp alone: conns connections, MAIL/RCPT/DATA per message.
func bareSend(b *testing.B, addr string, msgs []*Message, conns int) {
	var wg sync.WaitGroup
	next := make(chan *Message, len(msgs))
	for _, m := range msgs {
		next <- m
	}
	close(next)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			if err := c.Hello("roster.test"); err != nil {
				b.Error(err)
				return
			}
			for m := range next {
				if err := c.Mail(m.From.Address, nil); err != nil {
					b.Error(err)
					return
				}
				if err := c.Rcpt(m.To.Address, nil); err != nil {
					b.Error(err)
					return
				}
				w, err := c.Data()
				if err != nil {
					b.Error(err)
					return
				}
				w.Write(m.Data)
				if err := w.Close(); err != nil {
					b.Error(err)
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
}

func BenchmarkCompose(b *testing.B) {
	db := openDB(b)
	enqueue(b, db, vmrEmail(1), deviceEmail(2))
	rows, err := db.ClaimDue(context.Background(), time.Now().Add(time.Second), 2)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct {
		name string
		r    Renderer
	}{{"vars", varRenderer{}}, {"pattern", NewPatternRenderer([]byte("k"))}} {
		for i, kind := range []string{"html", "plain"} {
			b.Run(r.name+"/"+kind, func(b *testing.B) {
				c := NewComposer(r.r)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Compose(&rows[i], "roster@example.org", time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
