//go:build unix

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
	"github.com/roster-dev/roster/reconcile/platform/push"
)

func init() { os.Setenv("ROSTER_FAULT_PEXIP_PASSWORD", "Pexip-S3cret!") }

// killPushPeople is the size of TestKill9DuringPush's estate: each person has a VMR (a
// conference and its alias), a device and an end user, so 4 platform objects each.
const killPushPeople = 2500

// TestKill9DuringPush runs the real daemon (`roster serve`, the re-executed test binary)
// on a state database whose apply enqueued a push of 10,000 objects (2,500 conferences,
// 2,500 aliases made with them, 2,500 devices, 2,500 end users: 7,500 operations), to
// the Pexip fake in this process, and kills it with SIGKILL 20 times during the push,
// each time at another point, restarting it after each kill:
//
//   - inside a create: the fake made the object and the daemon is killed before the
//     answer leaves (the create was sent and never recorded: after the restart it meets
//     its own object, which the claim/adopt path must take, not call a conflict);
//   - after a number of objects, plus a few milliseconds (wherever the daemon is then:
//     sending, recording a group of outcomes, claiming, delivering emails);
//   - during start-up, before or just as the restarted daemon resumes.
//
// After the last restart has finished, every object roster owns exists on the fake
// exactly once, with the fields roster's state gives it (compared field by field with the
// fake's own state), under the id roster recorded, with nothing extra; every operation is
// done; every email was sent, and none reached the SMTP server before its object existed
// on the fake (checked as each message arrives). `roster platform check` agrees.
func TestKill9DuringPush(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 20 kills during a 10,000-object push")
	}
	t.Parallel()
	const kills = 20
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	t.Logf("seed %d", seed)

	fake := pexipfake.New("roster", "Pexip-S3cret!")
	t.Cleanup(fake.Close)
	mails := &pushMailbox{fake: fake, got: map[string]int{}}
	smtpPort, _ := startSMTP(t, &smtpStore{user: "roster", pwd: "Smtp-S3cret!", received: mails.receive}, "127.0.0.1:0")
	w := newFaultWorkspace(t, t.TempDir(), killPushPeople, "", fmt.Sprintf(`platforms: pexip: {url: %q, username: "roster", password_env: "ROSTER_FAULT_PEXIP_PASSWORD", mode: "push", rate: 6000000}
smtp: default: {host: "127.0.0.1", port: %d, security: "none", username: "roster", password_env: "ROSTER_FAULT_SMTP_PASSWORD", from: "roster@example.com"}
http: listen: "127.0.0.1:0"
`, fake.URL, smtpPort))

	start := time.Now()
	if out, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Fatalf("apply --no-send: exit %d\n%s\n%s", code, tail(out, 500), errOut)
	}
	applied := time.Since(start)
	q := openQueue(t, w.db)
	ops := q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status = 'pending'`)
	emails := q.count(t, `SELECT COUNT(*) FROM outbox WHERE status = 'pending'`)
	if ops != 3*killPushPeople {
		t.Fatalf("the apply enqueued %d platform operations, want %d", ops, 3*killPushPeople)
	}
	t.Logf("apply --no-send of %d people: %v; %d operations (%d objects) and %d emails queued",
		killPushPeople, applied.Round(time.Millisecond), ops, 4*killPushPeople, emails)

	// The kill points: objects on the fake at which to kill, spread over the push (with
	// jitter), each with its way of killing.
	type point struct {
		how   string // "in-create", "after", "start-up"
		at    int    // objects on the fake
		delay time.Duration
	}
	var points []point
	for i := range kills {
		p := point{at: (4*killPushPeople*i)/kills + rng.IntN(4*killPushPeople/kills) + 1}
		switch {
		case i == 7 || i == 14:
			p.how, p.delay = "start-up", time.Duration(rng.IntN(150))*time.Millisecond
		case i%2 == 0:
			p.how = "in-create"
		default:
			p.how, p.delay = "after", time.Duration(rng.IntN(30))*time.Millisecond
		}
		points = append(points, p)
	}

	pushStart := time.Now()
	adopted := map[string]int{} // creates adopted after a kill, by resource
	releasedOps, createKills := 0, 0
	var startUp, pushing time.Duration // from each start to its first request; from there to its end
	round := func(d *daemonChild, end time.Time) {
		adoptions(d.log.String(), adopted)
		releasedOps += countReleased(d.log.String())
		for _, at := range fake.Stats().Times {
			if at.After(d.started) {
				startUp += at.Sub(d.started)
				pushing += end.Sub(at)
				break
			}
		}
	}
	for i, p := range points {
		before := objectsOn(fake)
		if before >= 4*killPushPeople {
			t.Fatalf("kill %d: the push was over before it (%d objects on the fake)", i, before)
		}
		p.at = max(p.at, before+1) // a start-up kill went further than planned
		d := startDaemon(t, w)
		switch p.how {
		case "in-create":
			var once sync.Once
			fake.OnCreate(func(pexip.Resource, int) {
				if objectsOn(fake) >= p.at {
					once.Do(d.kill)
				}
			})
		case "after":
			reached := make(chan struct{})
			var once sync.Once
			fake.OnCreate(func(pexip.Resource, int) {
				if objectsOn(fake) >= p.at {
					once.Do(func() { close(reached) })
				}
			})
			go func() {
				select {
				case <-reached:
					time.Sleep(p.delay)
					d.kill()
				case <-d.exited:
				}
			}()
		case "start-up":
			go func() {
				select {
				case <-time.After(p.delay):
					d.kill()
				case <-d.exited:
				}
			}()
		}
		select {
		case <-d.exited:
		case <-time.After(60 * time.Second):
			d.kill()
			t.Fatalf("kill %d (%s at %d objects): the daemon neither reached the point nor stopped in 60 s\n%s", i, p.how, p.at, tail(d.log.String(), 3000))
		}
		fake.OnCreate(nil)
		if !d.killed() {
			t.Fatalf("kill %d: the daemon exited on its own: %v\n%s", i, d.err, tail(d.log.String(), 3000))
		}
		after := objectsOn(fake)
		round(d, d.killedAt)
		if p.how == "in-create" && after > before {
			createKills++
		}
		// What the daemon recorded before it died is on the fake under the recorded id,
		// and nothing it did made a conflict or a failure.
		q.checkRecorded(t, fake)
		if n := q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status IN ('failed', 'conflict')`); n > 0 {
			t.Fatalf("kill %d: %d operations failed or in conflict\n%s", i, n, tail(d.log.String(), 3000))
		}
		mails.checkOrder(t)
		t.Logf("kill %2d: %-9s at %5d objects (+%2v): killed after %v with %5d on the fake (%+d since its start), %d operations done",
			i, p.how, p.at, p.delay, d.killedAt.Sub(d.started).Round(time.Millisecond), after, after-before, q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status = 'done'`))
	}

	// The last start runs until the queue and the outbox are empty.
	d := startDaemon(t, w)
	deadline := time.Now().Add(90 * time.Second)
	for {
		left := q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status != 'done'`) +
			q.count(t, `SELECT COUNT(*) FROM outbox WHERE status != 'sent'`)
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			d.kill()
			t.Fatalf("after the last restart, %d operations and emails are still not done after 90 s\n%s", left, tail(d.log.String(), 3000))
		}
		select {
		case <-d.exited:
			t.Fatalf("the last daemon exited: %v\n%s", d.err, tail(d.log.String(), 3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	pushed := time.Since(pushStart)
	round(d, time.Now())
	d.stop(t)
	st := fake.Stats()
	t.Logf("push of %d objects (%d operations) with %d kills: %v from the first start to the last operation and email, "+
		"of which %v from the daemons' starts to their first request and %v pushing (%.0f objects/s, %.0f operations/s while pushing); "+
		"%d requests (%d POST, %d GET); %d operations released after kills; creates adopted after a kill: %v",
		4*killPushPeople, ops, kills, pushed.Round(time.Millisecond), startUp.Round(time.Millisecond), pushing.Round(time.Millisecond),
		float64(4*killPushPeople)/pushing.Seconds(), float64(ops)/pushing.Seconds(),
		st.Requests, st.ByMethod["POST"], st.ByMethod["GET"], releasedOps, adopted)

	for _, status := range []string{"pending", "sending", "failed", "conflict"} {
		if n := q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status = ?`, status); n != 0 {
			t.Errorf("%d platform operations %s at the end", n, status)
		}
	}
	// Each kill inside a create left at least that object made and unrecorded, which the
	// next start met again; the kills fall on conferences, devices and end users alike.
	total := adopted[string(pexip.Conferences)] + adopted[string(pexip.Devices)] + adopted[string(pexip.EndUsers)]
	if createKills == 0 || total < createKills {
		t.Errorf("%d kills fell inside a create but only %d creates were adopted after a restart: the claim/adopt path went untested or lost objects", createKills, total)
	}
	for _, res := range []pexip.Resource{pexip.Conferences, pexip.Devices, pexip.EndUsers} {
		if adopted[string(res)] == 0 {
			t.Errorf("no %s create was adopted after a kill: that path went untested", res)
		}
	}
	checkPushedEstate(t, q, fake)
	mails.check(t, q, emails)
	checked := time.Now()
	if out, errOut, code := w.run(t, "platform", "check"); code != 0 {
		t.Errorf("platform check after the push: exit %d\n%s\n%s", code, tail(out, 2000), errOut)
	}
	t.Logf("platform check: no drift (%v)", time.Since(checked).Round(time.Millisecond))
}

// objectsOn counts the fake's conferences, aliases, devices and end users.
func objectsOn(f *pexipfake.Server) int {
	return f.Count(pexip.Conferences) + f.Count(pexip.ConferenceAliases) + f.Count(pexip.Devices) + f.Count(pexip.EndUsers)
}

// adoptions counts, by resource, the creates a daemon's log says it adopted after a stop.
func adoptions(log string, into map[string]int) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "adopted an object roster made in an earlier try") {
			continue
		}
		if _, rest, ok := strings.Cut(line, " resource="); ok {
			res, _, _ := strings.Cut(rest, " ")
			into[res]++
		}
	}
}

// countReleased is the number of operations a daemon's log says it resumed after a stop.
func countReleased(log string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "platform operations resumed after a stop") {
			continue
		}
		var k int
		if i := strings.Index(line, "operations="); i >= 0 {
			fmt.Sscan(line[i+len("operations="):], &k)
		}
		n += k
	}
	return n
}

// daemonChild is `roster serve` running as a child process.
type daemonChild struct {
	cmd      *exec.Cmd
	log      syncBuffer
	exited   chan struct{}
	started  time.Time
	err      error
	mu       sync.Mutex
	dead     bool      // killed by the test
	killedAt time.Time // when
}

func startDaemon(t *testing.T, w *faultWorkspace) *daemonChild {
	t.Helper()
	d := &daemonChild{cmd: w.child("serve"), exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.started = time.Now()
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	return d
}

// kill sends SIGKILL and returns once the process is gone: called inside the fake's
// create, the daemon never gets the answer.
func (d *daemonChild) kill() {
	d.mu.Lock()
	if !d.dead {
		d.dead, d.killedAt = true, time.Now()
	}
	d.mu.Unlock()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

func (d *daemonChild) killed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dead
}

// stop ends the daemon as an operator does (SIGTERM) and expects a clean exit.
func (d *daemonChild) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.kill()
		t.Fatalf("the daemon did not stop on SIGTERM\n%s", tail(d.log.String(), 3000))
	}
	if d.err != nil {
		t.Errorf("the daemon stopped with %v\n%s", d.err, tail(d.log.String(), 3000))
	}
}

// queueDB reads the state database the daemon writes.
type queueDB struct{ db *sqlx.DB }

func openQueue(t *testing.T, path string) *queueDB {
	t.Helper()
	db, err := sqlx.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return &queueDB{db: db}
}

func (q *queueDB) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkRecorded: every object the state records with an id is on the fake under that id
// and key.
func (q *queueDB) checkRecorded(t *testing.T, fake *pexipfake.Server) {
	t.Helper()
	var objs []struct {
		Resource string `db:"resource"`
		Key      string `db:"object_key"`
		ID       int    `db:"remote_id"`
	}
	if err := q.db.Select(&objs, `SELECT resource, object_key, remote_id FROM platform_objects WHERE remote_id != 0`); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		got, ok := fake.Find(pexip.Resource(o.Resource), o.Key)
		if !ok || got["id"] != o.ID {
			t.Errorf("the state records %s %q as id %d; the fake has %v (found %v)", o.Resource, o.Key, o.ID, got["id"], ok)
		}
	}
}

// checkPushedEstate compares the fake with roster's state: every owned object exactly
// once, under its recorded id, with the state's fields; nothing else on the fake.
func checkPushedEstate(t *testing.T, q *queueDB, fake *pexipfake.Server) {
	t.Helper()
	owned := map[string]int{} // resource \x00 key → remote id
	var objs []struct {
		Resource string `db:"resource"`
		Key      string `db:"object_key"`
		ID       int    `db:"remote_id"`
		Parent   string `db:"parent_key"`
		Digest   string `db:"password_digest"`
	}
	if err := q.db.Select(&objs, `SELECT resource, object_key, remote_id, parent_key, password_digest FROM platform_objects`); err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, o := range objs {
		owned[o.Resource+"\x00"+o.Key] = o.ID
		digests[o.Key] = o.Digest
	}
	// Every object on the fake is owned, once, under its id (an alias's id may not be known).
	seen := map[string]int{}
	for _, res := range []pexip.Resource{pexip.Conferences, pexip.ConferenceAliases, pexip.Devices, pexip.EndUsers} {
		key := map[pexip.Resource]string{pexip.Conferences: "name", pexip.ConferenceAliases: "alias", pexip.Devices: "alias",
			pexip.EndUsers: "primary_email_address"}[res]
		for _, o := range fake.Objects(res) {
			k := string(res) + "\x00" + fmt.Sprint(o[key])
			seen[k]++
			id, ok := owned[k]
			switch {
			case !ok:
				t.Errorf("extra object on the fake: %s %v (id %v)", res, o[key], o["id"])
			case id != 0 && id != o["id"]:
				t.Errorf("%s %v: the fake's id is %v, the state records %d", res, o[key], o["id"], id)
			}
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%q is on the fake %d times", k, n)
		}
	}
	for k := range owned {
		if seen[k] == 0 {
			t.Errorf("owned object %q is missing on the fake", k)
		}
	}
	if want := 4 * killPushPeople; len(owned) != want || len(seen) != want {
		t.Errorf("%d objects owned and %d on the fake, want %d", len(owned), len(seen), want)
	}

	// Field by field, from roster's own tables; descriptions carry the marker of the
	// workspace's secret key.
	marker := pexip.NewMarker([]byte(os.Getenv("ROSTER_FAULT_SECRET_KEY")))
	stateRows := func(dst any, what, query string) { // one row per person
		if err := q.db.Select(dst, query); err != nil {
			t.Fatal(err)
		}
		if n := reflect.ValueOf(dst).Elem().Len(); n != killPushPeople {
			t.Errorf("%d %s in the state, want %d", n, what, killPushPeople)
		}
	}
	onFake := func(res pexip.Resource, key string) map[string]any {
		o, ok := fake.Find(res, key)
		if !ok {
			t.Errorf("%s %q is not on the fake", res, key)
		}
		return o
	}
	var vmrs []struct {
		Name, Description, PIN, GuestPIN, Tag, Owner string
		AllowGuests                                  bool
		Limit                                        int
		Aliases                                      string
	}
	stateRows(&vmrs, "VMRs", `SELECT v.name AS name, v.description AS description, v.pin AS pin, v.guest_pin AS guestpin,
		v.tag AS tag, v.owner_email AS owner, v.allow_guests AS allowguests, v.participant_limit AS "limit",
		(SELECT group_concat(alias, ' ') FROM (SELECT alias FROM vmr_aliases WHERE vmr_id = v.id ORDER BY pos)) AS aliases
		FROM vmrs v`)
	for _, v := range vmrs {
		c := onFake(pexip.Conferences, v.Name)
		if c == nil {
			continue
		}
		want := map[string]any{"name": v.Name, "pin": v.PIN, "guest_pin": v.GuestPIN, "tag": v.Tag,
			"primary_owner_email_address": v.Owner, "allow_guests": v.AllowGuests}
		if v.Limit != 0 {
			want["participant_limit"] = v.Limit
		}
		sameFields(t, "conference "+v.Name, c, want)
		if c["description"] != marker.Mark(v.Description) {
			t.Errorf("conference %q: description %q, want %q with roster's marker", v.Name, c["description"], v.Description)
		}
		var aliases []string
		for _, a := range c["aliases"].([]map[string]any) {
			aliases = append(aliases, fmt.Sprint(a["alias"]))
		}
		if got := strings.Join(aliases, " "); got != v.Aliases {
			t.Errorf("conference %q: aliases %q, want %q", v.Name, got, v.Aliases)
		}
	}
	var devices []struct {
		Alias, Description, Username, Password, Tag, Owner string
	}
	stateRows(&devices, "devices", `SELECT alias, description, username, password, tag, owner_email AS owner FROM devices`)
	for _, d := range devices {
		got := onFake(pexip.Devices, d.Alias)
		if got == nil {
			continue
		}
		sameFields(t, "device "+d.Alias, got, map[string]any{"alias": d.Alias, "username": d.Username, "tag": d.Tag,
			"primary_owner_email_address": d.Owner})
		if got["description"] != marker.Mark(d.Description) {
			t.Errorf("device %q: description %q, want %q with roster's marker", d.Alias, got["description"], d.Description)
		}
		pw, _ := fake.DevicePassword(d.Alias)
		if digests[d.Alias] != push.PasswordDigest(d.Alias, pw) {
			t.Errorf("device %q: the recorded password digest is not the digest of the password on the fake", d.Alias)
		}
		if d.Password == "" || d.Password != pw {
			t.Errorf("device %q: password on the fake differs from the state's", d.Alias)
		}
	}
	var users []struct{ Email, First, Last string }
	stateRows(&users, "users", `SELECT email, first_name AS first, last_name AS last FROM users`)
	for _, u := range users {
		got := onFake(pexip.EndUsers, u.Email)
		if got == nil {
			continue
		}
		sameFields(t, "end user "+u.Email, got, map[string]any{"primary_email_address": u.Email, "first_name": u.First,
			"last_name": u.Last, "display_name": strings.TrimSpace(u.First + " " + u.Last)})
	}
}

// sameFields compares the fake's fields (decoded JSON values) with want.
func sameFields(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s: %s = %v on the fake, %v in the state", what, k, got[k], v)
		}
	}
}

// pushMailbox checks, as each message reaches the SMTP server, that the object it tells
// of exists on the fake (a room's email never precedes the room).
type pushMailbox struct {
	fake *pexipfake.Server
	mu   sync.Mutex
	got  map[string]int // Message-ID → deliveries
	bad  []string
	n    int
}

// receive checks a message as it arrives (smtpStore.received).
func (b *pushMailbox) receive(to []string, data []byte) {
	var subject, id string
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err == nil {
		id = msg.Header.Get("Message-Id")
		subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	}
	// Which object the message tells of, and is it on the platform now?
	var res pexip.Resource
	var key string
	switch {
	case strings.HasPrefix(subject, "Your room "):
		res, key = pexip.Conferences, strings.TrimPrefix(subject, "Your room ")
	case strings.HasPrefix(subject, "Your device "):
		res, key = pexip.Devices, strings.TrimPrefix(subject, "Your device ")
	case len(to) == 1:
		res, key = pexip.EndUsers, to[0]
	}
	_, there := b.fake.Find(res, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	b.got[id]++
	switch {
	case err != nil:
		b.bad = append(b.bad, fmt.Sprintf("unreadable message to %v: %v", to, err))
	case !there:
		b.bad = append(b.bad, fmt.Sprintf("%q to %v arrived before %s %q was on the platform", subject, to, res, key))
	}
}

// checkOrder fails the test when a message arrived before its object was on the fake.
func (b *pushMailbox) checkOrder(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.bad {
		if i == 10 {
			t.Errorf("… and %d more", len(b.bad)-10)
			break
		}
		t.Error(s)
	}
	if len(b.bad) > 0 {
		t.FailNow()
	}
}

// check: every email went (at least once: a kill between a send and its record sends it
// again, under its Message-ID), and none before its object.
func (b *pushMailbox) check(t *testing.T, q *queueDB, emails int) {
	t.Helper()
	b.checkOrder(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.got) != emails {
		t.Errorf("%d distinct messages arrived, want the %d enqueued", len(b.got), emails)
	}
	if sent := q.count(t, `SELECT COUNT(*) FROM outbox WHERE status = 'sent'`); sent != emails {
		t.Errorf("%d emails sent, want %d", sent, emails)
	}
	t.Logf("emails: %d enqueued, %d messages arrived (%d sent again after a kill), none before its object", emails, b.n, b.n-len(b.got))
}
