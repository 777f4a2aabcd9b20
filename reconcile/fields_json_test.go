package reconcile

import (
	"testing"

	"github.com/roster-dev/roster/schema/account"
)

// appendObjectJSON writes VMRs and devices from their field lists without boxing: it
// must write exactly what the boxed field list writes, secrets masked or shown.
func TestAppendObjectJSONMatchesFieldList(t *testing.T) {
	for _, x := range []any{
		&account.VMR{Name: "Room \"1\"", PIN: "1234", GuestPIN: "", Aliases: []string{"a@x", "ü\u2028"}, AllowGuests: true,
			MaxCallrateIn: 4128, ParticipantLimit: -1, Tag: "t", OwnerEmail: "o@x", SyncTag: "staff", EntryKey: "k"},
		&account.VMR{Name: "bare"}, // nil aliases print as []
		&account.Device{Alias: "d@x", Username: "u", Password: "secret\n", Description: "bad \xff utf-8"},
		&account.Device{Alias: "d2@x"},
		&account.User{Email: "u@x", UserID: "7", Active: true, Tracking: account.MakeTracking([10]string{"ENG", "", "Staff \"x\""})},
		&account.User{},
		&account.Invite{Email: "i@x", Name: "N"},
		&account.TrackingGroup{Slot: "CUSTOM5", Name: "n"},
	} {
		for _, show := range []bool{false, true} {
			got := string(appendObjectJSON(nil, x, show))
			want := string(appendJSONObject(nil, maskFields(fieldsOf(x), show)))
			if got != want {
				t.Errorf("%T show=%v:\n got %s\nwant %s", x, show, got, want)
			}
			if !hasFields(x) {
				t.Errorf("%T: hasFields false", x)
			}
		}
	}
	if hasFields((*account.VMR)(nil)) || hasFields(nil) {
		t.Error("hasFields true without an object")
	}
}
