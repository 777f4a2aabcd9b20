package policy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// TestSnapshotFileRoundTrip: a snapshot written to a file and mapped back answers every
// dialled form exactly as the one built in memory, with the same stats.
func TestSnapshotFileRoundTrip(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	heap, err := policy.Build("v7", e.Rooms, e.Devices)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.snapshot")
	if err := policy.WriteFile(path, heap, 42); err != nil {
		t.Fatal(err)
	}
	mapped, seq, err := policy.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 42 {
		t.Errorf("seq %d, want 42", seq)
	}
	var dialled []string
	for _, r := range e.Rooms {
		for _, a := range r.Aliases {
			dialled = append(dialled, a, strings.ToUpper(a), "sip:"+a)
		}
	}
	for _, d := range e.Devices {
		dialled = append(dialled, d.Alias, "h323:"+d.Alias)
	}
	dialled = append(dialled, "nobody@example.com", "DUP@example.com", "")
	rooms := 0
	for _, a := range dialled {
		hr, hok := heap.LookupRoom(a)
		mr, mok := mapped.LookupRoom(a)
		if hok != mok || !reflect.DeepEqual(hr, mr) {
			t.Errorf("LookupRoom(%q): mapped %+v %v, in memory %+v %v", a, mr, mok, hr, hok)
		}
		hd, hok := heap.LookupDevice(a)
		md, mok := mapped.LookupDevice(a)
		if hok != mok || hd != md {
			t.Errorf("LookupDevice(%q): mapped %+v %v, in memory %+v %v", a, md, mok, hd, hok)
		}
		if mok || mr.Name != "" {
			rooms++
		}
	}
	if rooms < len(e.Rooms) {
		t.Errorf("only %d of %d dialled forms answered", rooms, len(dialled))
	}
	hs, ms := heap.Stats(), mapped.Stats()
	if !hs.BuiltAt.Equal(ms.BuiltAt) {
		t.Errorf("built at %v, in memory %v", ms.BuiltAt, hs.BuiltAt)
	}
	hs.BuiltAt = ms.BuiltAt // equal instants; the mapped one has no monotonic reading
	if hs != ms {
		t.Errorf("stats %+v, in memory %+v", ms, hs)
	}
}

// TestSnapshotFileRefused: a file damaged in any part, or cut short, is refused with an
// error saying how; a file of another kind too.
func TestSnapshotFileRefused(t *testing.T) {
	e := policytest.LoadEstate(t, "testdata/estate.json")
	s, err := policy.Build("v1", e.Rooms, e.Devices)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := policy.WriteFile(good, s, 1); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 0x20; return b }
	}
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"last arena byte", flip(len(orig) - 1), "checksum"},
		{"first table byte", flip(128), "checksum"},
		{"room count in the header", flip(24), "checksum"},
		{"cut short", func(b []byte) []byte { return b[:len(b)-10] }, "truncated"},
		{"header only half there", func(b []byte) []byte { return b[:100] }, "truncated"},
		{"a byte appended", func(b []byte) []byte { return append(b, 0) }, "the header says"},
		{"another format", func(b []byte) []byte { copy(b, "SQLite format 3\x00"); return b }, "not a policy snapshot"},
		{"empty", func([]byte) []byte { return nil }, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, tc.damage(append([]byte(nil), orig...)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := policy.OpenFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("OpenFile = %v, want an error naming the file and saying %q", err, tc.want)
			}
		})
	}
	if _, _, err := policy.OpenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file opened")
	}
}
