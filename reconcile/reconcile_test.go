package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/schema/account"
)

// check → apply → check says nothing to do (ldap2pg's pattern).
func TestApplyThenPlanIsEmpty(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	p := h.plan()
	if p.Summary.Create != 9 { // 3 VMRs, 3 devices, 3 users
		t.Fatalf("create = %d, want 9: %v", p.Summary.Create, changes(p))
	}
	if got := p.EmailCount(); got != 9 { // 3 VMR + 3 device + 3 activation
		t.Errorf("emails = %d, want 9: %v", got, emails(p))
	}
	h.mustApply()
	if n := h.count(`SELECT COUNT(*) FROM vmrs`); n != 3 {
		t.Errorf("vmrs = %d", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM vmr_aliases`); n != 6 {
		t.Errorf("aliases = %d", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM outbox`); n != 9 {
		t.Errorf("outbox = %d", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM audit`); n < 9 {
		t.Errorf("audit rows = %d", n)
	}
	again := h.plan()
	if again.HasChanges() {
		t.Fatalf("second plan not empty: %v %v", changes(again), emails(again))
	}
	if again.Summary.Unchanged != 9 {
		t.Errorf("unchanged = %d, want 9", again.Summary.Unchanged)
	}
	// A second apply with no input change writes nothing and enqueues no email.
	before := h.count(`SELECT COUNT(*) FROM audit`)
	v0, _ := h.db.StateVersion(context.Background())
	h.mustApply()
	v1, _ := h.db.StateVersion(context.Background())
	if v0 != v1 || h.count(`SELECT COUNT(*) FROM audit`) != before || h.count(`SELECT COUNT(*) FROM outbox`) != 9 {
		t.Errorf("no-op apply wrote: state version %d→%d", v0, v1)
	}
}

func TestStablePINsAcrossReconciles(t *testing.T) {
	h := newHarness(t, alice)
	h.mustApply()
	pin := h.actual().VMRs[0].PIN
	if len(pin) != 6 || strings.Trim(pin, "0123456789") != "" {
		t.Fatalf("pin = %q", pin)
	}
	// A fresh database with the same secret key renders the same PIN.
	h2 := newHarness(t, alice)
	if got := h2.plan().Changes()[0].newVMR(); got == nil || got.PIN != pin {
		t.Errorf("pin not stable across databases with one key")
	}
}

func TestRenamedEntryIsUpdateNotDeleteCreate(t *testing.T) {
	h := newHarness(t, alice)
	h.mustApply()
	renamed := alice
	renamed.sn = "Smith"
	h.directory(renamed)
	p := h.plan()
	got := changes(p)
	// cn changes too, so the device description is updated as well: updates, never delete+create.
	want := []string{"update vmr Alice Smith VMR", "update device alice@dev.example.com", "update user alice@example.com"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	if !contains(emails(p), "vmr updated alice@example.com") {
		t.Errorf("no VMR update email: %v", emails(p))
	}
	h.mustApply()
	if h.plan().HasChanges() {
		t.Error("not converged after rename")
	}
}

func TestVanishedEntryDeletesVMRAndDeviceButDeactivatesUser(t *testing.T) {
	h := newHarness(t, alice, bob, carol, dave)
	h.mustApply()
	h.directory(alice, bob, carol)
	p, err := h.apply(Allowances{})
	// 3 removals of 12 managed objects = 25%: within the default fraction.
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	got := strings.Join(changes(p), "|")
	for _, w := range []string{"delete vmr Dave Grohl VMR", "delete device dave@dev.example.com", "deactivate user dave@example.com"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in %s", w, got)
		}
	}
	if n := h.count(`SELECT COUNT(*) FROM vmr_aliases WHERE alias LIKE 'dave%'`); n != 0 {
		t.Errorf("aliases of the deleted VMR remain: %d", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM users WHERE email='dave@example.com' AND active=0`); n != 1 {
		t.Errorf("dave not kept as deactivated user")
	}
	userid := h.actual().Users[3].UserID
	// Back again: reactivated with the same USERID.
	h.directory(alice, bob, carol, dave)
	p = h.mustApply()
	if !contains(changes(p), "reactivate user dave@example.com") {
		t.Errorf("changes = %v", changes(p))
	}
	for _, u := range h.actual().Users {
		if u.Email == "dave@example.com" && (u.UserID != userid || !u.Active) {
			t.Errorf("dave = %+v, want active with USERID %s", u, userid)
		}
	}
}

func TestDisabledAccountDeletesDeviceDeactivatesUser(t *testing.T) {
	h := newHarness(t, alice, bob, carol, dave)
	h.mustApply()
	d := dave
	d.disabled = true
	h.directory(alice, bob, carol, d)
	p := h.mustApply()
	got := changes(p)
	if !contains(got, "delete device dave@dev.example.com") || !contains(got, "deactivate user dave@example.com") {
		t.Errorf("changes = %v", got)
	}
	if contains(got, "delete vmr Dave Grohl VMR") {
		t.Errorf("VMR of a disabled account deleted: %v", got)
	}
}

func TestSafetyRefusesEmptyTemplateAndMassRemoval(t *testing.T) {
	h := newHarness(t, alice, bob, carol, dave)
	h.mustApply()
	h.directory() // the directory now returns nobody
	_, err := h.apply(Allowances{})
	var re *RefusalError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "found 0 entries") || !strings.Contains(err.Error(), "--allow-deletions 12") {
		t.Fatalf("err = %v", err)
	}
	if n := h.count(`SELECT COUNT(*) FROM vmrs`); n != 4 {
		t.Fatalf("refused plan changed state: %d vmrs", n)
	}
	h.directory(alice) // 9 of 12 removed: above 25%
	_, err = h.apply(Allowances{})
	if err == nil || !strings.Contains(err.Error(), "9 of 12") || !strings.Contains(err.Error(), "--allow-deletions 9") {
		t.Fatalf("err = %v", err)
	}
	if _, err := h.apply(Allowances{Deletions: 9}); err != nil {
		t.Fatalf("allowed apply: %v", err)
	}
	if n := h.count(`SELECT COUNT(*) FROM vmrs`); n != 1 {
		t.Errorf("vmrs after allowed removal = %d", n)
	}
}

func TestSafetyRefusesTooManyEmails(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	h.cfg.Safety.MaxEmails = 5
	_, err := h.apply(Allowances{})
	if err == nil || !strings.Contains(err.Error(), "--allow-emails 9") {
		t.Fatalf("err = %v", err)
	}
	if _, err := h.apply(Allowances{Emails: 9}); err != nil {
		t.Fatal(err)
	}
}

func TestEmailTemplateChangeSendsNothing(t *testing.T) {
	h := newHarness(t, alice)
	h.mustApply()
	h.write("emails/vmr.txt", "A brand new body for {{ name }}\n")
	if p := h.plan(); p.HasChanges() {
		t.Errorf("email template edit planned %v %v", changes(p), emails(p))
	}
}

func TestSendFalseSendsNoObjectEmails(t *testing.T) {
	h := newHarness(t, alice)
	h.write("templates/staff.yaml", strings.Replace(staffTemplate, "send: true", "send: false", 1))
	p := h.plan()
	for _, e := range p.Emails() {
		if e.Kind == account.KindVMR || e.Kind == account.KindDevice {
			t.Errorf("email with send: false: %v", emails(p))
		}
	}
}

func TestNotifyOnLimitsUpdateEmails(t *testing.T) {
	h := newHarness(t, alice)
	h.write("templates/staff.yaml", strings.Replace(staffTemplate, "  send: true\n", "  send: true\n  notify_on: [aliases]\n", 1))
	h.mustApply()
	h.write("templates/staff.yaml", strings.NewReplacer("  send: true\n", "  send: true\n  notify_on: [aliases]\n",
		"Room of {{cn}}", "Meeting room of {{cn}}").Replace(staffTemplate))
	p := h.plan()
	if !contains(changes(p), "update vmr Alice Parkes VMR") || p.EmailCount() != 0 {
		t.Errorf("description change: changes %v emails %v", changes(p), emails(p))
	}
}

func TestOverridableWrittenOnCreateOnlyAndOverridesWin(t *testing.T) {
	h := newHarness(t, alice)
	h.mustApply()
	pin := h.actual().VMRs[0].PIN
	// pin_settings is overridable: a pattern change leaves the stored PIN alone.
	h.write("templates/staff.yaml", strings.Replace(staffTemplate, "pex_random_pin(6)", "pex_random_pin(8)", 1))
	if p := h.plan(); p.HasChanges() {
		t.Fatalf("overridable pattern change planned: %v", changes(p))
	}
	// overrides.yaml wins: the PIN and the owner email change.
	h.write("overrides.yaml", "vmrs:\n  \"Alice Parkes VMR\": {pin: \"424242\", primary_owner_email_address: alice.private@example.net}\n")
	p := h.mustApply()
	if p.Len() != 1 || p.Changes()[0].newVMR().PIN != "424242" || p.Changes()[0].newVMR().OwnerEmail != "alice.private@example.net" {
		t.Fatalf("override not applied: %v", changes(p))
	}
	if !contains(emails(p), "vmr updated alice.private@example.net") {
		t.Errorf("update email not sent to the overriding address: %v", emails(p))
	}
	if pin == "424242" {
		t.Fatal("test needs a different generated pin")
	}
}

func TestConflictAndAliasClashSkipOnlyTheObject(t *testing.T) {
	h := newHarness(t, alice, bob)
	// A declared team room already holds Bob's VMR name and Alice's alias.
	h.write("vmrs/rooms.yaml", "- name: Bob Marley VMR\n  aliases: [room@example.com]\n- name: Lobby\n  aliases: [alice@vc.example.com]\n")
	p := h.mustApply()
	w := warningCodes(p)
	if !contains(w, "conflict Bob Marley VMR") {
		t.Errorf("warnings = %v", w)
	}
	// The declared VMRs are processed in the same plan; whichever claims first wins, the
	// other object is skipped and the rest of the sync goes on.
	if n := h.count(`SELECT COUNT(*) FROM vmrs WHERE name='Bob Marley VMR' AND sync_tag='manual'`); n != 1 {
		t.Errorf("declared room overwritten")
	}
	if n := h.count(`SELECT COUNT(*) FROM devices`); n != 2 {
		t.Errorf("devices = %d: the rest of the sync must go on", n)
	}
	if n := h.count(`SELECT COUNT(*) FROM vmr_aliases WHERE alias='alice@vc.example.com'`); n != 1 {
		t.Errorf("alias held twice")
	}
	again := h.plan()
	if again.Len() != 0 {
		t.Errorf("skipped objects planned again as changes: %v", changes(again))
	}
}

func TestDuplicateEmailsInDirectorySkipBoth(t *testing.T) {
	twin := person{uid: "alice2", given: "Alicia", sn: "Parkes", mail: "alice@example.com", phone: "+44 20 7946 1009"}
	h := newHarness(t, alice, twin, bob)
	p := h.plan()
	for _, c := range changes(p) {
		if c == "create user alice@example.com" {
			t.Errorf("duplicate email imported")
		}
	}
	if !contains(warningCodes(p), "duplicate_email alice@example.com") {
		t.Errorf("warnings = %v", warningCodes(p))
	}
}

func TestNoEmailWarns(t *testing.T) {
	nomail := person{uid: "george", given: "George", sn: "Baker"}
	h := newHarness(t, alice, nomail)
	p := h.plan()
	found := false
	for _, w := range p.Warnings {
		found = found || w.Code == "no_email"
	}
	if !found || contains(changes(p), "create user ") {
		t.Errorf("warnings %v changes %v", warningCodes(p), changes(p))
	}
}

func TestLocalUserFoundInDirectoryBecomesRemote(t *testing.T) {
	h := newHarness(t, alice)
	h.write("users/local.csv", usersHeader+",Y,Bob,Local,bob@example.com,en-us,HOST,London,,,,,,,,,,\n")
	h.mustApply()
	h.directory(alice, bob)
	p := h.mustApply()
	var c *Change
	for _, x := range p.All() {
		if x.Kind == account.KindUser && x.Key == "bob@example.com" {
			c = x
		}
	}
	if c == nil || c.newUser().Origin != "remote" || c.newUser().LastName != "Marley" {
		t.Fatalf("bob not converted to remote: %v", changes(p))
	}
	if contains(emails(p), "activation updated bob@example.com") {
		t.Error("activation email sent twice in a lifetime")
	}
}

func TestLifetimeUserLimit(t *testing.T) {
	h := newHarness(t, alice, bob, carol)
	h.write("settings.yaml", "lifetime_user_limit: 2\n")
	_, err := h.apply(Allowances{})
	if err == nil || !strings.Contains(err.Error(), "lifetime user limit is 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestStaleApplyRefused(t *testing.T) {
	h := newHarness(t, alice)
	p := h.plan()
	h.mustApply() // moves the state version
	_, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "test", Now: h.now}, false)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("err = %v, want ErrStale", err)
	}
}

func TestSavedPlanMustMatch(t *testing.T) {
	h := newHarness(t, alice)
	p := h.plan()
	data, err := MarshalPlanFile(p)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := ReadPlanFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.plan().MatchSaved(saved); err != nil {
		t.Fatalf("same inputs: %v", err)
	}
	h.directory(alice, bob) // the directory moved on
	if err := h.plan().MatchSaved(saved); !errors.Is(err, ErrStale) {
		t.Fatalf("err = %v, want ErrStale", err)
	}
	if strings.Contains(string(data), p.Changes()[0].newVMR().PIN) {
		t.Error("saved plan file contains a PIN")
	}
}

func TestInvitesLifecycle(t *testing.T) {
	h := newHarness(t)
	h.write("settings.yaml", "licenses: {paid: 3}\ninvite_ttl: 24h\n")
	h.write("invites/q4.csv", "name;email;username\nJohn Doe;john.doe@test.com;johndoe@test.com\nDavid Smith;david@test.com;davids@test.com\n")
	p := h.mustApply()
	if !contains(changes(p), "create invite john.doe@test.com") || !contains(emails(p), "invite created john.doe@test.com") {
		t.Fatalf("changes %v emails %v", changes(p), emails(p))
	}
	if p.Licenses == nil || p.Licenses.Used != 2 || p.Licenses.Remaining != 1 {
		t.Errorf("licences = %+v", p.Licenses)
	}
	// Removing a row revokes the pending invite.
	h.write("invites/q4.csv", "name;email;username\nJohn Doe;john.doe@test.com;johndoe@test.com\n")
	p = h.mustApply()
	if !contains(changes(p), "delete invite david@test.com") {
		t.Errorf("changes = %v", changes(p))
	}
	// After the TTL, the pending invite expires and frees its licence.
	h.now = h.now.Add(25 * time.Hour)
	p = h.mustApply()
	if !contains(changes(p), "update invite john.doe@test.com") {
		t.Errorf("changes = %v", changes(p))
	}
	if n := h.count(`SELECT COUNT(*) FROM invites WHERE status='expired'`); n != 1 {
		t.Errorf("expired = %d", n)
	}
	// Licences are enforced: a paid user plus 3 invitations against 3 paid licences.
	h.directory(alice)
	h.write("invites/q4.csv", "name;email;username\nA Aaaaaa;a@t.com;aaaaaa@t.com\nB Bbbbbb;b@t.com;bbbbbb@t.com\nC Cccccc;c@t.com;cccccc@t.com\n")
	if _, err := h.apply(Allowances{}); err == nil || !strings.Contains(err.Error(), "licenses.paid is 3") {
		t.Fatalf("err = %v", err)
	}
}

func TestRemindersCarriedOutOnce(t *testing.T) {
	h := newHarness(t, alice, bob)
	h.mustApply()
	h.write("reminders.yaml", "- id: r1\n  template: staff\n- id: r2\n  vmrs: [\"Alice Parkes VMR\"]\n")
	p := h.mustApply()
	var reminders int
	for _, e := range p.Emails() {
		if e.Action == "reminder" {
			reminders++
		}
	}
	if reminders != 5 { // r1: 2 VMRs + 2 devices; r2: 1 VMR
		t.Errorf("reminder emails = %d: %v", reminders, emails(p))
	}
	if p := h.plan(); p.HasChanges() {
		t.Errorf("reminders repeated: %v", emails(p))
	}
}

func TestTrackingGroupsAndDefaults(t *testing.T) {
	h := newHarness(t, alice)
	h.write("tracking-codes.yaml", `groups:
  - {slot: DIVISION, name: Division, input_mode: dropdown, usage: optional, sort: asc, codes: [{code: ENG, active: true, default: true}, {code: OPS, active: true}]}
`)
	p := h.mustApply()
	if !contains(changes(p), "create tracking_group DIVISION") {
		t.Fatalf("changes = %v", changes(p))
	}
	if u := h.actual().Users[0]; u.Tracking.Get(0) != "ENG" {
		t.Errorf("default tracking code not filled: %q", u.Tracking.Get(0))
	}
}

func TestFailedTemplateChangesNothing(t *testing.T) {
	h := newHarness(t, alice, bob)
	h.mustApply()
	h.write("directory.ldif", "dn: broken\nthis is not ldif\n")
	p := h.plan()
	if p.HasChanges() || len(p.Errors) != 1 || p.Errors[0].Template != "staff" {
		t.Fatalf("changes %v errors %+v", changes(p), p.Errors)
	}
}

func TestInvalidRenderedValueSkipsEntryAndKeepsItsObjects(t *testing.T) {
	h := newHarness(t, alice, bob)
	h.mustApply()
	// Bob's surname now renders a 260-character VMR name: skipped, never deleted.
	long := bob
	long.sn = strings.Repeat("x", 260)
	h.directory(alice, long)
	p := h.plan()
	if p.HasChanges() {
		t.Fatalf("changes = %v", changes(p))
	}
	found := false
	for _, w := range p.Warnings {
		found = found || (w.Code == "invalid" && strings.Contains(w.Message, "at most 250 are allowed"))
	}
	if !found {
		t.Errorf("warnings = %+v", p.Warnings)
	}
}

func TestNewEntryWithExistingEmailSkipsBothAndKeepsTheAccount(t *testing.T) {
	h := newHarness(t, alice, bob)
	h.mustApply()
	twin := person{uid: "alice2", given: "Alicia", sn: "Parkes", mail: "alice@example.com", phone: "+44 20 7946 1009"}
	h.directory(alice, bob, twin)
	p := h.plan()
	if !contains(warningCodes(p), "duplicate_email alice@example.com") {
		t.Errorf("warnings = %v", warningCodes(p))
	}
	for _, c := range changes(p) {
		if strings.HasSuffix(c, " user alice@example.com") {
			t.Errorf("alice's account changed: %v", changes(p))
		}
	}
}

func TestReminderSkipsObjectsEmailedInTheSamePlan(t *testing.T) {
	h := newHarness(t, alice)
	h.write("reminders.yaml", "- id: launch\n  template: staff\n")
	p := h.mustApply()
	for _, e := range p.Emails() {
		if e.Action == "reminder" {
			t.Errorf("reminder on top of the created email: %v", emails(p))
		}
	}
	if n := h.count(`SELECT COUNT(*) FROM reminders_done WHERE id = 'launch'`); n != 1 {
		t.Errorf("reminder not recorded as carried out")
	}
}

func TestDeclaredObjectWithControlCharacterIsRefused(t *testing.T) {
	// A value written in the repository breaks a rule of SPEC §3: validation refuses the
	// repository and names the place (issue 16); a rendered one is an invalid warning.
	h := newHarness(t, alice)
	h.write("vmrs/rooms.yaml", "- name: Odd Room\n  aliases: [\"odd\\x1froom@example.com\"]\n- name: Fine Room\n  aliases: [fine@example.com]\n")
	_, err := schema.Load(h.files, h.cfg, schema.LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "vmrs/rooms.yaml:2:") || !strings.Contains(err.Error(), "aliases[0]") {
		t.Fatalf("load: err = %v, want an error at vmrs/rooms.yaml:2 naming aliases[0]", err)
	}
}

// TestPlanLoadsOnlyWhatChanged: a no-op plan loads no object in full — the digests of the
// index (overridable fields masked) match every rendering — and a change to one person
// loads that person's three objects.
func TestPlanLoadsOnlyWhatChanged(t *testing.T) {
	h := newHarness(t, alice, bob, carol, dave)
	h.mustApply()
	if p := h.plan(); p.HasChanges() || p.loaded != 0 {
		t.Fatalf("no-op plan: changes %v, %d objects loaded, want none", changes(p), p.loaded)
	}
	c := carol
	c.sn = "Kingsley"
	h.directory(alice, bob, c, dave)
	p := h.plan()
	if p.loaded != 3 || p.Len() != 3 || p.Summary.Unchanged != 9 {
		t.Errorf("one person changed: %d objects loaded (want 3), changes %v, %d unchanged (want 9)", p.loaded, changes(p), p.Summary.Unchanged)
	}
}
