package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile"
	"github.com/roster-dev/roster/reconcile/daemon"
	"github.com/roster-dev/roster/reconcile/pipeline"
	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
	"github.com/roster-dev/roster/schema/account"
	"github.com/roster-dev/roster/state"
)

// newPushFixture is the examples' pipeline in push mode against a fake management node
// over real HTTP on loopback.
func newPushFixture(t *testing.T, safety string) (*fixture, *pexipfake.Server) {
	t.Helper()
	fake := pexipfake.New("roster", "s3cret-pexip")
	t.Cleanup(fake.Close)
	return pushFixtureOn(t, safety, fake), fake
}

// pushFixtureOn is a fixture with a state of its own pushing to fake.
func pushFixtureOn(t *testing.T, safety string, fake *pexipfake.Server) *fixture {
	t.Helper()
	t.Setenv("PEXIP_PASSWORD", "s3cret-pexip")
	return newFixture(t, safety, fmt.Sprintf(`platforms: pexip: {url: %q, username: "roster", password_env: "PEXIP_PASSWORD", mode: "push", rate: 60000}`, fake.URL))
}

// requests counts the fake's requests by method since the last call.
type requests struct {
	fake *pexipfake.Server
	last map[string]int
}

func (r *requests) since() map[string]int {
	st := r.fake.Stats()
	out := map[string]int{}
	for m, n := range st.ByMethod {
		out[m] = n - r.last[m]
	}
	r.last = st.ByMethod
	return out
}

// TestPushExamples: the examples applied and pushed; every VMR, alias, device and user in
// SQLite is on the fake with its fields and roster's marker; a second apply pushes
// nothing; an edited pattern patches only the changed field; a removed person's room and
// aliases are deleted; a hand-made conference with the same name is left alone, reported
// as a conflict, and its email stays pending.
func TestPushExamples(t *testing.T) {
	ctx := context.Background()
	f, fake := newPushFixture(t, "max_delete_fraction: 1, max_emails: 10000")
	reqs := &requests{fake: fake}
	f.apply(pipeline.Options{Deliver: true})
	actual, err := f.db.LoadActual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(actual.VMRs) == 0 || len(actual.Devices) == 0 {
		t.Fatalf("the examples gave %d VMRs and %d devices", len(actual.VMRs), len(actual.Devices))
	}
	checkOnFake(t, fake, actual)
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status != 'done'`); n != 0 {
		t.Fatalf("%d operations not done after the push", n)
	}
	if n := f.count(`SELECT COUNT(*) FROM outbox WHERE status = 'pending'`); n != 0 {
		t.Fatalf("%d emails still pending after the push", n)
	}
	reqs.since()

	f.apply(pipeline.Options{Deliver: true})
	if got := reqs.since(); got["POST"]+got["PATCH"]+got["DELETE"] != 0 {
		t.Fatalf("a second apply sent %v", got)
	}

	// An edited pattern: the VMR description of staff.
	staff := filepath.Join(f.repo, "templates", "staff.yaml")
	data, err := os.ReadFile(staff)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "  name: \"{{givenName}} {{sn}} VMR\"") {
		t.Fatal("staff.yaml changed: the test edits its vmr name pattern")
	}
	if err := os.WriteFile(staff, []byte(strings.Replace(string(data), "{{givenName}} {{sn}} VMR", "{{givenName}} {{sn}} room", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.apply(pipeline.Options{Deliver: true})
	got := reqs.since()
	patches := f.count(`SELECT COUNT(*) FROM platform_ops WHERE op = 'patch' AND resource = 'conference'`)
	if patches == 0 || got["PATCH"] != patches || got["POST"]+got["DELETE"] != 0 {
		t.Fatalf("a renamed pattern sent %v for %d patches", got, patches)
	}
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE op = 'patch' AND resource = 'conference'
		AND payload != json_object('name', json_extract(payload, '$.name'))`); n != 0 {
		t.Fatalf("%d patches send more than the changed name", n)
	}
	actual, _ = f.db.LoadActual(ctx)
	checkOnFake(t, fake, actual)

	// A removed person: their room and its aliases are deleted.
	before := map[string]bool{}
	for _, v := range actual.VMRs {
		before[v.Name] = true
	}
	ldif, err := os.ReadFile(filepath.Join(f.repo, "directory.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	f.dropStaff(1)
	f.apply(pipeline.Options{Deliver: true})
	actual, _ = f.db.LoadActual(ctx)
	var gone *account.VMR
	for name := range before {
		if vmrNamed(actual.VMRs, name) == nil {
			gone = &account.VMR{Name: name}
		}
	}
	if gone == nil {
		t.Fatal("dropping a staff member removed no VMR")
	}
	if _, ok := fake.Find(pexip.Conferences, gone.Name); ok {
		t.Fatalf("the removed person's conference %q is still on the platform", gone.Name)
	}
	checkOnFake(t, fake, actual)

	// The person comes back, but a hand-made conference has taken their room's name.
	if err := os.WriteFile(filepath.Join(f.repo, "directory.ldif"), ldif, 0o644); err != nil {
		t.Fatal(err)
	}
	hand := gone.Name
	id, err := fake.Put(pexip.Conferences, map[string]any{"name": hand, "service_type": "conference", "description": "made by hand"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.p.Run(ctx, pipeline.Options{Actor: "test", Deliver: true})
	if err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("a conflict was not reported: %v", err)
	}
	c, _ := fake.Find(pexip.Conferences, hand)
	if c["description"] != "made by hand" || c["id"].(int) != id {
		t.Fatalf("the hand-made conference was touched: %v", c)
	}
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'conflict'`); n != 1 {
		t.Fatalf("%d conflicts recorded, want 1", n)
	}
	st, err := daemon.ReadStatus(ctx, f.db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	q := st.Platforms["pexip"]
	if q == nil || q.Counts["conflict"] != 1 || q.EmailsWaiting == 0 || len(q.Stuck) != 1 || q.Stuck[0].Key != hand {
		t.Fatalf("status does not show the conflict and the email waiting for it: %+v", q)
	}
	var text strings.Builder
	st.WriteText(&text)
	if !strings.Contains(text.String(), "Platform pexip:") || !strings.Contains(text.String(), "1 conflict") {
		t.Fatalf("roster status does not show the queue:\n%s", text.String())
	}
}

// checkOnFake: every VMR, alias, device and user of actual is on the fake with its fields
// and roster's marker, and the fake holds no conference roster does not have.
func checkOnFake(t *testing.T, fake *pexipfake.Server, actual *state.Actual) {
	t.Helper()
	for _, v := range actual.VMRs {
		c, ok := fake.Find(pexip.Conferences, v.Name)
		if !ok {
			t.Fatalf("conference %q is not on the platform", v.Name)
		}
		if pexip.Strip(c["description"].(string)) != v.Description || c["description"] == v.Description ||
			c["pin"] != v.PIN || c["tag"] != v.Tag || c["primary_owner_email_address"] != v.OwnerEmail || c["allow_guests"] != v.AllowGuests {
			t.Fatalf("conference %q is %v, want %+v", v.Name, c, v)
		}
		for _, a := range v.Aliases {
			ca, ok := fake.Find(pexip.ConferenceAliases, a)
			if !ok || ca["conference"] != pexip.Conferences.URI(c["id"].(int)) {
				t.Fatalf("alias %q of %q is %v", a, v.Name, ca)
			}
		}
	}
	for _, d := range actual.Devices {
		got, ok := fake.Find(pexip.Devices, d.Alias)
		pw, _ := fake.DevicePassword(d.Alias)
		if !ok || got["username"] != d.Username || pw != d.Password || pexip.Strip(got["description"].(string)) != d.Description {
			t.Fatalf("device %q is %v", d.Alias, got)
		}
	}
	for _, u := range actual.Users {
		if _, ok := fake.Find(pexip.EndUsers, u.Email); !ok {
			t.Fatalf("end user %q is not on the platform", u.Email)
		}
	}
	if n := fake.Count(pexip.Conferences); n != len(actual.VMRs) {
		t.Fatalf("the platform holds %d conferences, roster %d", n, len(actual.VMRs))
	}
}

func vmrNamed(vs []*account.VMR, name string) *account.VMR {
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// TestPushDrift: objects changed, deleted and added (with roster's marker) on the
// platform by hand are listed by the check, and the next apply repairs them: the
// changed field patched, the missing object made again, the extra one deleted.
func TestPushDrift(t *testing.T) {
	ctx := context.Background()
	f, fake := newPushFixture(t, "max_delete_fraction: 1, max_emails: 10000")
	f.apply(pipeline.Options{Deliver: true})
	actual, err := f.db.LoadActual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if drift, err := f.p.CheckPlatform(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("drift right after the push: %+v, %v", drift, err)
	}
	v, dev := actual.VMRs[0], actual.Devices[0]
	conf, _ := fake.Find(pexip.Conferences, v.Name)
	if err := fake.Edit(pexip.Conferences, conf["id"].(int), map[string]any{"pin": "999999"}); err != nil {
		t.Fatal(err)
	}
	d, _ := fake.Find(pexip.Devices, dev.Alias)
	if !fake.Remove(pexip.Devices, d["id"].(int)) {
		t.Fatal("cannot remove the device")
	}
	marker := conf["description"].(string)[len(v.Description):]
	if _, err := fake.Put(pexip.Conferences, map[string]any{"name": "Left over", "service_type": "conference", "description": "old" + marker}); err != nil {
		t.Fatal(err)
	}
	drift, err := f.p.CheckPlatform(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range drift {
		got[d.Status+" "+d.Key] = strings.Join(d.Fields, ",")
	}
	want := map[string]string{"changed " + v.Name: "pin", "missing " + dev.Alias: "", "extra Left over": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("drift %v, want %v", got, want)
	}
	reqs := &requests{fake: fake}
	reqs.since()
	f.apply(pipeline.Options{Deliver: true})
	if r := reqs.since(); r["PATCH"] != 1 || r["POST"] != 1 || r["DELETE"] != 1 {
		t.Fatalf("the repair sent %v, want one patch, one create and one delete", r)
	}
	checkOnFake(t, fake, actual)
	if drift, err := f.p.CheckPlatform(ctx); err != nil || len(drift) != 0 {
		t.Fatalf("drift after the repair: %+v, %v", drift, err)
	}
}

// TestAdopt: a platform filled by another tool (the examples' objects without roster's
// marker, some PINs different) is adopted: the dry run lists every object with the fields
// that would change and changes nothing; --apply records them; the next push patches
// only the differing fields (and the description, which takes the marker), creates
// nothing, and no "created" email is sent for an adopted object.
func TestAdopt(t *testing.T) {
	ctx := context.Background()
	const safety = "max_delete_fraction: 1, max_emails: 10000"
	// One secret key for both states: the same generated PINs and passwords, as after a
	// move of one installation's state (the marker is stripped below all the same).
	t.Setenv("ROSTER_SECRET_KEY", "adoption-test-key")
	before, fake := newPushFixture(t, safety)
	before.apply(pipeline.Options{Deliver: true})
	edited := map[string]bool{}
	for i, c := range fake.Objects(pexip.Conferences) {
		fields := map[string]any{"description": pexip.Strip(c["description"].(string))}
		if i%3 == 0 {
			fields["pin"] = "123123"
			edited[c["name"].(string)] = true
		}
		if err := fake.Edit(pexip.Conferences, c["id"].(int), fields); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range fake.Objects(pexip.Devices) {
		if err := fake.Edit(pexip.Devices, d["id"].(int), map[string]any{"description": pexip.Strip(d["description"].(string))}); err != nil {
			t.Fatal(err)
		}
	}
	confs, devices, users := fake.Count(pexip.Conferences), fake.Count(pexip.Devices), fake.Count(pexip.EndUsers)

	f := pushFixtureOn(t, safety, fake)
	repo, commit, err := f.p.LoadSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqs := &requests{fake: fake}
	reqs.since()
	dry, err := f.p.Adopt(ctx, repo, commit, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Adopted) != confs+devices+users {
		t.Fatalf("the dry run adopts %d objects, the platform holds %d+%d+%d", len(dry.Adopted), confs, devices, users)
	}
	for _, a := range dry.Adopted {
		wantPin := a.Kind == "vmr" && edited[a.Key]
		if slices.Contains(a.Fields, "pin") != wantPin {
			t.Fatalf("adoption of %s %q would change %v", a.Kind, a.Key, a.Fields)
		}
	}
	if r := reqs.since(); r["POST"]+r["PATCH"]+r["DELETE"] != 0 || f.version() != 0 {
		t.Fatalf("the dry run changed something: %v, state version %d", r, f.version())
	}
	if _, err := f.p.Adopt(ctx, repo, commit, true); err != nil {
		t.Fatal(err)
	}
	if n := f.count(`SELECT COUNT(*) FROM outbox WHERE action = 'created' AND kind IN ('vmr', 'device')`); n != 0 {
		t.Fatalf("%d created emails for adopted objects", n)
	}
	f.apply(pipeline.Options{Deliver: true})
	r := reqs.since()
	if r["POST"]+r["DELETE"] != 0 || r["PATCH"] != confs+devices {
		t.Fatalf("after adoption the push sent %v; want only %d patches", r, confs+devices)
	}
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE op = 'patch' AND resource = 'conference' AND json_extract(payload, '$.pin') IS NOT NULL`); n != len(edited) {
		t.Fatalf("%d patches send a PIN, %d PINs differed", n, len(edited))
	}
	actual, _ := f.db.LoadActual(ctx)
	checkOnFake(t, fake, actual)
	if n := fake.Count(pexip.Conferences); n != confs {
		t.Fatalf("%d conferences after adoption, %d before", n, confs)
	}
}

// TestPushFaults: a burst of 429s (with Retry-After) and of 5xx answers delays the push
// but every object arrives, once.
func TestPushFaults(t *testing.T) {
	ctx := context.Background()
	f, fake := newPushFixture(t, "max_delete_fraction: 1, max_emails: 10000")
	fake.Throttle(8, "1")
	fake.Fail(8, 503)
	f.apply(pipeline.Options{Deliver: true})
	st := fake.Stats()
	if st.Throttled != 8 || st.Failed != 8 {
		t.Fatalf("the fake sent %d 429s and %d 5xx, want 8 each", st.Throttled, st.Failed)
	}
	actual, err := f.db.LoadActual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkOnFake(t, fake, actual)
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status != 'done'`); n != 0 {
		t.Fatalf("%d operations not done", n)
	}
}

// TestPushRepairGuard: a repair that would delete more objects on the platform than
// safety.max_delete_count is refused like a plan's deletions, until allowed.
func TestPushRepairGuard(t *testing.T) {
	ctx := context.Background()
	f, fake := newPushFixture(t, "max_delete_fraction: 1, max_delete_count: 1, max_emails: 10000")
	f.apply(pipeline.Options{Deliver: true})
	marker := ""
	for _, c := range fake.Objects(pexip.Conferences) {
		desc := c["description"].(string)
		marker = desc[len(pexip.Strip(desc)):]
	}
	for _, name := range []string{"Old one", "Old two"} {
		if _, err := fake.Put(pexip.Conferences, map[string]any{"name": name, "service_type": "conference", "description": marker}); err != nil {
			t.Fatal(err)
		}
	}
	if drift, err := f.p.CheckPlatform(ctx); err != nil || len(drift) != 2 {
		t.Fatalf("drift %+v, %v", drift, err)
	}
	res, err := f.p.Run(ctx, pipeline.Options{Actor: "test", Deliver: true})
	var refused *reconcile.RefusalError
	if !errors.As(err, &refused) || res.Failed != pipeline.StepGuard || fake.Count(pexip.Conferences) == 0 {
		t.Fatalf("a repair deleting 2 > 1 objects was not refused: %v (step %s)", err, res.Failed)
	}
	if _, ok := fake.Find(pexip.Conferences, "Old one"); !ok {
		t.Fatal("the refused repair deleted anyway")
	}
	f.apply(pipeline.Options{Deliver: true, Allow: reconcile.Allowances{Deletions: 2}})
	if _, ok := fake.Find(pexip.Conferences, "Old two"); ok {
		t.Fatal("the allowed repair did not delete the extra conference")
	}
}

// TestPushTimeout: a command's push stops at platforms.pexip.push_timeout when the
// platform throttles every request, and when it answers slowly: the apply returns an
// error that names the limit, every operation not done stays queued (none left claimed),
// the emails of the unpushed objects stay pending, and the next apply, the platform
// healthy again, delivers the rest, each object once.
func TestPushTimeout(t *testing.T) {
	ctx := context.Background()
	fake := pexipfake.New("roster", "s3cret-pexip")
	t.Cleanup(fake.Close)
	t.Setenv("PEXIP_PASSWORD", "s3cret-pexip")
	f := newFixture(t, "max_delete_fraction: 1, max_emails: 10000", fmt.Sprintf(
		`platforms: pexip: {url: %q, username: "roster", password_env: "PEXIP_PASSWORD", mode: "push", rate: 60000, push_timeout: "1500ms"}`, fake.URL))
	run := func() error {
		t.Helper()
		start := time.Now()
		_, err := f.p.Run(ctx, pipeline.Options{Actor: "test", Deliver: true})
		// Far above the limit, far below the retries' own schedule (Retry-After 600 s).
		if took := time.Since(start); took > 25*time.Second {
			t.Fatalf("the apply took %s with a push_timeout of 1.5 s", took)
		}
		return err
	}
	vmrEmailsSent := func() int {
		return f.count(`SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND kind IN ('vmr', 'device')`)
	}

	// A throttling platform: every request 429, Retry-After 10 minutes.
	fake.Storm(time.Hour, "600")
	err := run()
	if err == nil || !strings.Contains(err.Error(), "push_timeout") || !strings.Contains(err.Error(), "still queued") {
		t.Fatalf("a throttled push: %v", err)
	}
	total := f.count(`SELECT COUNT(*) FROM platform_ops`)
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'pending'`); total == 0 || n != total {
		t.Fatalf("%d of %d operations pending after the stop; the rest: %d sending", n, total,
			f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'sending'`))
	}
	if n := vmrEmailsSent(); n != 0 {
		t.Fatalf("%d VMR and device emails sent while nothing reached the platform", n)
	}
	if fake.Stats().Throttled == 0 {
		t.Fatal("the fake throttled nothing: the test tested nothing")
	}

	// A slow platform: each answer takes 400 ms, so only part of the queue goes.
	fake.Storm(0, "")
	fake.Latency(400 * time.Millisecond)
	err = run()
	if err == nil || !strings.Contains(err.Error(), "push_timeout") {
		t.Fatalf("a slow push: %v", err)
	}
	done := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'done'`)
	if done == 0 || done == total || f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'sending'`) != 0 {
		t.Fatalf("after a slow push %d of %d operations done, %d left claimed", done, total,
			f.count(`SELECT COUNT(*) FROM platform_ops WHERE status = 'sending'`))
	}
	if sent := vmrEmailsSent(); sent >= f.count(`SELECT COUNT(*) FROM outbox WHERE kind IN ('vmr', 'device')`) {
		t.Fatalf("all %d VMR and device emails sent with %d of %d operations done", sent, done, total)
	}

	// Healthy again: the next apply resumes and finishes.
	fake.Latency(0)
	if err := run(); err != nil {
		t.Fatalf("the resuming apply: %v", err)
	}
	if n := f.count(`SELECT COUNT(*) FROM platform_ops WHERE status != 'done'`); n != 0 {
		t.Fatalf("%d operations not done after the resuming apply", n)
	}
	actual, err := f.db.LoadActual(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkOnFake(t, fake, actual)
	if n := f.count(`SELECT COUNT(*) FROM outbox WHERE status != 'sent' AND kind IN ('vmr', 'device')`); n != 0 {
		t.Fatalf("%d VMR and device emails still pending after the push finished", n)
	}
}
