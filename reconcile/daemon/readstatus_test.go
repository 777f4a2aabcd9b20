package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/state"
)

// TestDirectoryReadsStatus: `roster status` shows each template's incremental protocol from
// the stored cookies (the latest cookie of a template whose search changed), and the
// metrics label the protocol of the last cycle's reads.
func TestDirectoryReadsStatus(t *testing.T) {
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "roster.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i, c := range []state.SyncCookie{
		{Req: "ad/staff/old", Directory: "ad", Template: "staff", Mode: "dirsync", Cookie: []byte("roster-dirsync:x"), FullReadAt: t0},
		{Req: "ad/staff/new", Directory: "ad", Template: "staff", Mode: "usn", Cookie: []byte("roster-usn:x"), FullReadAt: t0.Add(time.Hour)},
		{Req: "corp/rooms/1", Directory: "corp", Template: "rooms", Mode: "syncrepl", Cookie: []byte("roster-syncrepl:x"), FullReadAt: t0},
	} {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := state.PutSync(ctx, tx, t0.Add(time.Duration(i)*time.Minute), state.SyncWrite{Cookie: c}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ReadStatus(ctx, db, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range s.DirectoryReads {
		got = append(got, r.Template+"/"+r.Directory+"/"+r.Protocol+"/"+r.LastFullRead.Format("15:04"))
	}
	if want := "rooms/corp/syncrepl/09:00 staff/ad/usn/10:00"; strings.Join(got, " ") != want {
		t.Errorf("directory reads %q, want %q", got, want)
	}
	var text strings.Builder
	s.WriteText(&text)
	for _, want := range []string{"staff (directory ad): usn, last read 2026-12-01T09:01:00Z", "rooms (directory corp): syncrepl"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	m := newMetrics()
	m.observeReads([]reconcile.SyncRead{{Directory: "ad", Template: "staff", Mode: reconcile.ReadIncremental, Protocol: "dirsync"}}, true)
	m.observeReads([]reconcile.SyncRead{{Directory: "ad", Template: "staff", Mode: reconcile.ReadIncremental, Protocol: "usn"},
		{Directory: "files", Template: "rooms", Mode: reconcile.ReadFull}}, true)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, f := range fams {
		if f.GetName() != "roster_directory_read_protocol" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			series = append(series, fmt.Sprintf("%s %g", strings.Join(ls, ","), mt.GetGauge().GetValue()))
		}
	}
	if want := "directory=ad,protocol=usn,template=staff 1"; strings.Join(series, ";") != want {
		t.Errorf("roster_directory_read_protocol series %q, want %q", series, want)
	}
}
