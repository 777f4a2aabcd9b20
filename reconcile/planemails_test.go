package reconcile

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// The email of a creation is held as a record; its recipient, key and template, read
// from the packed creation's head, must be what the decoded object says, also when
// overrides.yaml changes the owner or a declared VMR is emailed.
func TestCreationEmailsReadFromTheirObjects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(h *harness)
		records int // emails held as creation records
		to      string
	}{
		{"directory people", func(*harness) {}, 9, "bob@example.com"},
		{"owner overridden", func(h *harness) {
			h.write("overrides.yaml", "vmrs:\n  \"Alice Parkes VMR\": {primary_owner_email_address: alice.private@example.net}\n")
		}, 9, "alice.private@example.net"},
		{"declared room", func(h *harness) {
			h.write("vmrs/rooms.yaml", "- name: Lobby\n  aliases: [lobby@example.com]\n  primary_owner_email_address: desk@example.com\n"+
				"  emails: {send: true, email: {subject: \"Room {{ name }}\", body_file: emails/vmr.txt}}\n")
		}, 10, "desk@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, alice, bob, carol)
			tc.setup(h)
			p := h.plan()
			c := &p.created
			records, found := 0, false
			for _, r := range p.emails.recs {
				if r.kind == recHeld {
					continue
				}
				records++
				e := p.emails.email(c, r, &Email{})
				var to, key, tmpl string
				switch e.Kind {
				case account.KindVMR:
					v := atOf(listOf(c.vmrs, &c.ownVMRs, r.at))
					to, key, tmpl = v.OwnerEmail, v.Name, v.SyncTag
				case account.KindDevice:
					d := atOf(listOf(c.devices, &c.ownDevices, r.at))
					to, key, tmpl = d.OwnerEmail, d.Alias, d.SyncTag
				case account.KindActivation:
					u := c.users.At(int(r.at))
					to, key, tmpl = u.Email, u.Email, u.SyncTag
				default:
					t.Fatalf("creation record of kind %s", e.Kind)
				}
				if e.To != to || e.Key != key || e.Template != tmpl || e.Action != account.EmailCreated || e.mail == nil {
					t.Errorf("%s email: to %q key %q template %q action %s, want %q %q %q created", e.Kind, e.To, e.Key, e.Template, e.Action, to, key, tmpl)
				}
				found = found || e.To == tc.to
			}
			if records != tc.records || !found {
				t.Errorf("%d creation records (want %d), one to %s: %v; emails %v", records, tc.records, tc.to, found, emails(p))
			}
			// AllEmails reuses one Email for creations; Emails gives each its own.
			all := p.Emails()
			for i, e := range p.AllEmails() {
				if *e != *all[i] {
					t.Errorf("email %d: AllEmails %+v, Emails %+v", i, *e, *all[i])
				}
			}
		})
	}
}

// DropEmails removes what it is told to, creation records and held emails alike, and
// keeps the others in order.
func TestDropEmails(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	p := h.plan()
	before := emails(p)
	p.DropEmails(func(e *Email) bool { return e.Kind == account.KindDevice || e.To == "bob@example.com" })
	var want []string
	for _, e := range before {
		if !contains([]string{"device created alice@example.com", "device created carol@example.com"}, e) &&
			!contains([]string{"vmr created bob@example.com", "activation created bob@example.com", "device created bob@example.com"}, e) {
			want = append(want, e)
		}
	}
	if got := emails(p); len(want) == len(before) || len(got) != len(want) || p.EmailCount() != len(want) {
		t.Fatalf("after DropEmails: %v, want %v (before %v)", got, want, before)
	}
	for i, e := range emails(p) {
		if e != want[i] {
			t.Errorf("email %d = %q, want %q", i, e, want[i])
		}
	}
}

// emailVars decodes a creation into a pooled scratch: variables made earlier must stay
// what they were after later calls (nothing of the scratch may be shared), and equal
// the variables of the fully decoded object.
func TestEmailVarsOfCreationsStay(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	p := h.plan()
	c := &p.created
	var kept [][]state.Var
	for _, e := range p.Emails() {
		kept = append(kept, p.emailVars(nil, e))
	}
	creations := 0
	for i, e := range p.Emails() {
		if e.obj != nil {
			continue
		}
		creations++
		var want []state.Var
		switch e.Kind {
		case account.KindVMR:
			want = state.AppendVMRVars(nil, &atOf(listOf(c.vmrs, &c.ownVMRs, e.at)).VMR, string(e.Action))
		case account.KindDevice:
			want = state.AppendDeviceVars(nil, &atOf(listOf(c.devices, &c.ownDevices, e.at)).Device, string(e.Action))
		case account.KindActivation:
			u := c.users.At(int(e.at)).User
			u.UserID = strconv.FormatInt(e.seq, 10)
			want = state.AppendUserVars(nil, &u, string(e.Action))
		}
		if !reflect.DeepEqual(kept[i], want) {
			t.Errorf("email %d (%s %s): variables %v, want %v", i, e.Kind, e.Key, kept[i], want)
		}
	}
	if creations < 9 {
		t.Fatalf("%d creation emails, want at least 9", creations)
	}
}
