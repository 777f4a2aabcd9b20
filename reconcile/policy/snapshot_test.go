package policy_test

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

func TestSnapshotLookup(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	s, err := policy.Build("v1", e.Rooms, e.Devices)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dialled, room string // room "" = no answer
	}{
		{"meet.alice.smith@example.com", "Meet Alice Smith"},
		{"sip:MEET.Alice.Smith@EXAMPLE.com", "Meet Alice Smith"},
		{"alice.vmr@example.com", "Meet Alice Smith"}, // stored with a scheme and an upper-case host
		{"<sips:alice.vmr@example.com;transport=tls>", "Meet Alice Smith"},
		{"4712345678", "Meet Alice Smith"},
		{"tel:+4712345678", "Meet Alice Smith"},
		{"MEET.BJØRN@example.no", "Meet Bjørn Ødegård"},
		{"8801", "Meet Bjørn Ødegård"},
		{"team.oslo@example.com", "Team Room Oslo"},
		{"Dup@example.com", "Case Upper"}, // exact match wins over a case-folded one
		{"dup@example.com", "Case Lower"},
		{"DUP@example.com", ""},   // two rooms fold to it, neither exact: ambiguous
		{"board@example.com", ""}, // disabled
		{"5550000", ""},
		{"nobody@example.com", ""},
		{"meet.alice.smith@example", ""},
		{"", ""},
		{"sip:", ""},
	} {
		r, ok := s.LookupRoom(tc.dialled)
		if ok != (tc.room != "") || r.Name != tc.room {
			t.Errorf("LookupRoom(%q) = %q, %v; want %q", tc.dialled, r.Name, ok, tc.room)
		}
	}
	for _, tc := range []struct{ dialled, user string }{
		{"alice.smith@example.com", "alice.smith"},
		{"sip:Alice.Smith@Example.com", "alice.smith"},
		{"room-kit-7@video.example.com", "kit7"},
		{"h323:room-kit-7@video.example.com", "kit7"},
		{"old-phone@example.com", ""},        // disabled
		{"meet.alice.smith@example.com", ""}, // a room alias is not a device
	} {
		d, ok := s.LookupDevice(tc.dialled)
		if ok != (tc.user != "") || d.Username != tc.user {
			t.Errorf("LookupDevice(%q) = %q, %v; want %q", tc.dialled, d.Username, ok, tc.user)
		}
	}
	// A room comes back whole, with its normalized aliases.
	got, _ := s.LookupRoom("meet.alice.smith@example.com")
	want := e.Rooms[0]
	want.Aliases = []string{"meet.alice.smith@example.com", "alice.vmr@Example.COM", "4712345678", "+4712345678"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("room = %+v\nwant %+v", got, want)
	}
	st := s.Stats()
	if st.Version != "v1" || st.Rooms != 5 || st.RoomAliases != 9 || st.Devices != 2 || st.CaseCollisions != 1 || st.Bytes <= 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestBuilderFinishOnce(t *testing.T) {
	b := policy.NewBuilder("x")
	if _, err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	b.AddRoom(&policy.Room{Name: "late", Aliases: []string{"late"}, Enabled: true})
	if _, err := b.Finish(); err == nil {
		t.Error("second Finish: no error")
	}
}

// TestBytesPerRoom measures the heap a snapshot of realistic rooms takes, rooms being
// generated one at a time so that only the snapshot stays alive.
func TestBytesPerRoom(t *testing.T) {
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := policy.NewBuilder("mem")
	content := 0
	for i := range n {
		r := policytest.PersonalRoom(i, 1)
		content += len(r.Name) + len(r.ServiceTag) + len(r.Description) + len(r.PIN) + len(r.GuestPIN) + len(r.OwnerEmail)
		for _, a := range r.Aliases {
			content += len(a)
		}
		b.AddRoom(&r)
	}
	s, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / n
	own := float64(s.Stats().Bytes) / n
	t.Logf("%d rooms: %.0f heap bytes per room (snapshot's own count %.0f; text content %.0f)", n, heap, own, float64(content)/n)
	// The text itself is the floor; the index may add little to it.
	if limit := float64(content)/n + 60; heap > limit || own > limit {
		t.Errorf("%.0f heap / %.0f own bytes per room, want at most %.0f", heap, own, limit)
	}
	runtime.KeepAlive(s)
}
