package reconcile

import (
	"fmt"
	"slices"
	"testing"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

func TestMergeUsers(t *testing.T) {
	du := func(email, key string) *DesiredUser {
		return &DesiredUser{User: account.User{Email: email, SyncTag: "staff", EntryKey: key, Origin: "remote"}}
	}
	a1, b, a1again, c3, c4 := du("a@x", "1"), du("b@x", "2"), du("a@x", "1"), du("c@x", "3"), du("c@x", "4")
	a1again.FirstName = "again"
	d := &Desired{Keep: map[owner]bool{}}
	var remote UserList
	for _, u := range []*DesiredUser{a1, b, a1again, c3, c4} {
		remote.Add(u)
	}
	out := mergeUsers(d, &remote,
		[]*schema.UserRow{{Email: "B@x", FirstName: "csv b"}, {Email: "D@x", FirstName: "csv d", UserID: "7"}})
	var got []string
	for _, u := range out.All() {
		got = append(got, fmt.Sprintf("%s/%s/%s/%s", u.Email, u.Origin, u.EntryKey, u.givenUserID()))
	}
	want := []string{"a@x/remote/1/", "b@x/remote/2/", "d@x/local//7"}
	if !slices.Equal(got, want) {
		t.Errorf("users = %q, want %q", got, want)
	}
	if out.At(0).FirstName != "" {
		t.Errorf("the email's first entry is not the one kept")
	}
	if len(d.Warnings) != 1 || d.Warnings[0].Code != "duplicate_email" || d.Warnings[0].Key != "c@x" ||
		d.Warnings[0].Message != "directory entries staff:3 and staff:4 share this email; both skipped (accounts are unique by email)" {
		t.Errorf("warnings = %+v", d.Warnings)
	}
	if !d.Keep[userOwner("c@x")] || len(d.Keep) != 1 {
		t.Errorf("keep = %v", d.Keep)
	}
}
