//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
)

// adoptTemplate is the examples' staff template (description, two aliases, PIN, call
// rates, participant limit, a device with a description) with names made unique by the
// uid (generated given names and surnames repeat), and faultTemplate's user and emails.
var adoptTemplate = `name: staff
description: VMRs and devices for all staff
source: corp
user_search_dn: ou=people
user_filter: (&(objectClass=inetOrgPerson)(mail=*))
key_attribute: entryUUID
sync_vmrs: true
sync_devices: true
sync_users: true
vmr:
  name: "{{cn}} VMR"
  description: "Personal room of {{cn}}"
  aliases:
    - "meet.{{uid}}@example.com"
    - "{{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}"
  pin: "{{ ''|pex_random_pin(6) }}"
  guest_pin: ""
  allow_guests: true
  max_callrate_in: 4128
  max_callrate_out: 4128
  participant_limit: 50
  tag: staff
  primary_owner_email_address: "{{mail}}"
device:
  alias: "{{uid}}@dev.example.com"
  description: "Soft client of {{cn}}"
  username: "{{uid}}"
  password: "{{ ''|pex_random_pin(12) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
` + faultTemplate[strings.Index(faultTemplate, "user:\n"):] // the same user and emails

// handMade is one object put on the fake before roster: its resource, unique value, the
// fields it holds and the fields roster's push must send to it (nil: no request).
type handMade struct {
	res  pexip.Resource
	key  string
	want map[string]any // roster's rendering, in Pexip's fields
	diff []string       // the fields made different by hand
	send []string       // what the push after adoption must PATCH, sorted
}

// TestAdoptEstate: a Pexip estate of 1,000 people's conferences (two aliases each),
// devices and end users made by hand the way roster would render them, a known subset
// of fields different, plus objects roster would not make and one conference that
// carries another roster installation's marker. `platform adopt` lists every object with
// the fields it would change and changes nothing; `--apply` takes ownership without a
// request and without a created email; the next apply sends only PATCHes of exactly the
// differing fields (and the description, which takes roster's marker, and a device's
// password, which Pexip never shows), leaves the other objects alone and reports the
// conflict, whose email stays pending.
func TestAdoptEstate(t *testing.T) {
	const people = 1000
	t0 := time.Now()
	dir := t.TempDir()
	w := newFaultWorkspace(t, dir, people, "", "")
	if err := os.WriteFile(filepath.Join(w.repo, "templates", "staff.yaml"), []byte(adoptTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	// What roster would make: the plan, secrets shown, before any platform is configured.
	planJSON, errOut, code := w.run(t, "plan", "--format", "json", "--show-secrets")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	rendered := readRendered(t, planJSON)
	if len(rendered["vmr"]) != people || len(rendered["device"]) != people || len(rendered["user"]) != people {
		t.Fatalf("the plan renders %d VMRs, %d devices, %d users; want %d each",
			len(rendered["vmr"]), len(rendered["device"]), len(rendered["user"]), people)
	}

	fake := pushToFake(t, w.cfg, "rate: 600000")

	// The estate, made by hand: roster's rendering with some fields different.
	byID := map[pexip.Resource]map[int]*handMade{pexip.Conferences: {}, pexip.Devices: {}, pexip.EndUsers: {}}
	put := func(h *handMade, fields map[string]any) {
		t.Helper()
		id, err := fake.Put(h.res, fields)
		if err != nil {
			t.Fatalf("put %s %q: %v", h.res, h.key, err)
		}
		byID[h.res][id] = h
	}
	const conflictIndex, stolenIndex = 3, 5
	var conflictName, stolenFrom, stolen string
	for i, v := range rendered["vmr"] {
		name := v["name"].(string)
		fields := map[string]any{"service_type": "conference", "aliases": aliasList(v["aliases"])}
		for _, f := range []string{"name", "description", "pin", "guest_pin", "allow_guests", "max_callrate_in",
			"max_callrate_out", "participant_limit", "tag", "primary_owner_email_address"} {
			fields[f] = nullZero(v[f])
		}
		h := &handMade{res: pexip.Conferences, key: name, want: fields}
		if i == conflictIndex { // another roster installation's room: not to be touched
			conflictName = name
			fields = map[string]any{"name": name, "description": "Someone else's [roster:0badc0de]", "pin": "1234"}
			h.want = nil
			put(h, fields)
			continue
		}
		fields = maps.Clone(fields)
		if i == stolenIndex { // a hand-made room holds one of its aliases
			stolenFrom, stolen = name, v["aliases"].([]any)[0].(string)
			fields["aliases"] = aliasList(v["aliases"].([]any)[1:])
		}
		differ(h, fields, i%4 == 0, "description", "Old room of "+name)
		differ(h, fields, i%7 == 0, "pin", "999999")
		differ(h, fields, i%5 == 0, "max_callrate_in", 2048)
		differ(h, fields, i%11 == 0, "participant_limit", nil)
		differ(h, fields, i%13 == 0, "allow_guests", false)
		h.send = union(h.diff, "description") // the marker rides on the description
		put(h, fields)
	}
	for i, d := range rendered["device"] {
		fields := map[string]any{}
		for _, f := range []string{"alias", "description", "username", "tag", "primary_owner_email_address"} {
			fields[f] = d[f]
		}
		h := &handMade{res: pexip.Devices, key: d["alias"].(string), want: maps.Clone(fields)}
		h.want["password"] = d["password"]
		fields["password"] = "hand-set-" + strconv.Itoa(i)
		differ(h, fields, i%6 == 0, "username", "old-"+strconv.Itoa(i))
		differ(h, fields, i%10 == 0, "tag", "legacy")
		// Pexip never shows a password: roster sends its own so that the device logs in with it.
		h.send = union(h.diff, "description", "password")
		put(h, fields)
	}
	for i, u := range rendered["user"] {
		fields := map[string]any{"primary_email_address": u["email"], "first_name": u["first_name"], "last_name": u["last_name"],
			"display_name": strings.TrimSpace(u["first_name"].(string) + " " + u["last_name"].(string))}
		h := &handMade{res: pexip.EndUsers, key: u["email"].(string), want: maps.Clone(fields)}
		differ(h, fields, i%8 == 0, "last_name", "Formerly")
		h.send = sorted(h.diff) // end users carry no marker: untouched unless they differ
		put(h, fields)
	}
	// Objects roster would not make.
	others := []*handMade{{res: pexip.Conferences, key: "Board room"}, {res: pexip.Devices, key: "lobby@dev.example.com"},
		{res: pexip.EndUsers, key: "visitor@elsewhere.example"}, {res: pexip.Conferences, key: "Old lobby"}}
	put(others[0], map[string]any{"name": "Board room", "description": "made by hand", "aliases": []any{map[string]any{"alias": "board@example.com"}}})
	put(others[3], map[string]any{"name": "Old lobby", "aliases": []any{map[string]any{"alias": stolen}}})
	put(others[1], map[string]any{"alias": "lobby@dev.example.com", "description": "lobby screen"})
	put(others[2], map[string]any{"primary_email_address": "visitor@elsewhere.example", "first_name": "Vi"})
	before := map[pexip.Resource][]map[string]any{}
	for _, res := range []pexip.Resource{pexip.Conferences, pexip.ConferenceAliases, pexip.Devices, pexip.EndUsers} {
		before[res] = fake.Objects(res)
	}
	if n := len(before[pexip.ConferenceAliases]); n != 2*(people-1)+1 {
		t.Fatalf("the fake holds %d aliases, want %d", n, 2*(people-1)+1)
	}

	t.Logf("%s: estate made", time.Since(t0))
	// The dry run: every matching object listed with what would change; nothing written.
	out, errOut, code := w.run(t, "platform", "adopt")
	if code != 0 {
		t.Fatalf("adopt dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	listed := parseAdoptions(t, out)
	adoptable := 0
	for res, objs := range byID {
		for id, h := range objs {
			if h.want == nil {
				continue
			}
			adoptable++
			got, ok := listed[string(res)+"\x00"+h.key]
			if !ok {
				t.Fatalf("the dry run does not list %s %q:\n%s", res, h.key, tail(out, 3000))
			}
			want := h.send
			if h.key == stolenFrom {
				want = union(want, "aliases") // the alias held by Old lobby is still to make
			}
			if got.id != id || fmt.Sprint(got.fields) != fmt.Sprint(sorted(want)) {
				t.Fatalf("the dry run lists %s %q as id %d changing %v; want id %d changing %v", res, h.key, got.id, got.fields, id, sorted(want))
			}
		}
	}
	if len(listed) != adoptable {
		t.Fatalf("the dry run lists %d objects, %d match roster's", len(listed), adoptable)
	}
	if !strings.Contains(out, "conflict vmr") || !strings.Contains(out, conflictName) || !strings.Contains(out, "0badc0de") {
		t.Fatalf("the dry run does not report the conflict on %q:\n%s", conflictName, tail(out, 3000))
	}
	if !regexp.MustCompile(`(?m)^conflict alias\s+` + regexp.QuoteMeta(stolen) + ` .*belongs to conference "Old lobby"`).MatchString(out) {
		t.Fatalf("the dry run does not report alias %q held by Old lobby:\n%s", stolen, tail(out, 3000))
	}
	if ws := fake.Writes(); len(ws) != 0 {
		t.Fatalf("the dry run sent %d writes, first %+v", len(ws), ws[0])
	}
	if c, _ := readCounts(t, w.db); c["state_version"] != 0 || c["vmrs"] != 0 {
		t.Fatalf("the dry run changed the state: %s", c)
	}

	t.Logf("%s: dry run checked", time.Since(t0))
	// --apply: ownership taken in the state, no request, no created email.
	if out, errOut, code := w.run(t, "platform", "adopt", "--apply"); code != 0 || !strings.Contains(out, fmt.Sprintf("Adopted %d objects", adoptable)) {
		t.Fatalf("adopt --apply: exit %d\n%s\n%s", code, tail(out, 3000), errOut)
	}
	if ws := fake.Writes(); len(ws) != 0 {
		t.Fatalf("adopt --apply sent %d writes, first %+v", len(ws), ws[0])
	}
	db := openDB(t, w.db)
	var created []string
	if err := db.Select(&created, `SELECT object_key FROM outbox WHERE action = 'created' AND kind IN ('vmr', 'device')`); err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || created[0] != conflictName {
		t.Fatalf("created emails enqueued for %v; want only the conflicting %q", created, conflictName)
	}

	t.Logf("%s: adopted", time.Since(t0))
	// The next apply: only the differences.
	out, errOut, code = w.run(t, "apply")
	if code != 1 || !strings.Contains(out+errOut, "conflict") {
		t.Fatalf("apply after adoption: exit %d (want 1, the conflict)\n%s\n%s", code, tail(out, 3000), tail(errOut, 3000))
	}
	t.Logf("%s: applied", time.Since(t0))
	patched := map[string]bool{}
	for _, r := range fake.Writes() {
		parts := strings.Split(strings.TrimSuffix(r.Path, "/"), "/")
		res := pexip.Resource(parts[0])
		if r.Method == "POST" && res == pexip.Conferences && r.Fields["name"] == conflictName && r.Status == 400 {
			continue // the create of the conflicting room, refused: the conflict
		}
		if r.Method == "POST" && res == pexip.ConferenceAliases && r.Fields["alias"] == stolen && r.Status == 400 {
			continue // the alias Old lobby holds, refused: a conflict
		}
		if r.Method != "PATCH" || len(parts) != 2 {
			t.Fatalf("after adoption the push sent %s %s %v (answered %d)", r.Method, r.Path, r.Fields, r.Status)
		}
		id, _ := strconv.Atoi(parts[1])
		h := byID[res][id]
		if h == nil || h.want == nil {
			t.Fatalf("the push patched %s, which roster does not own: %v", r.Path, r.Fields)
		}
		if patched[r.Path] || r.Status != 202 {
			t.Fatalf("%s patched twice or refused (%d): %v", r.Path, r.Status, r.Fields)
		}
		patched[r.Path] = true
		if got := sorted(slices.Collect(maps.Keys(r.Fields))); fmt.Sprint(got) != fmt.Sprint(h.send) {
			t.Fatalf("%s %q patched with %v; want exactly %v (differing by hand: %v)", res, h.key, got, h.send, h.diff)
		}
		for f, v := range r.Fields {
			if f == "description" {
				v = pexip.Strip(v.(string))
			}
			if fmt.Sprint(v) != fmt.Sprint(h.want[f]) {
				t.Fatalf("%s %q: %s patched to %v, rendered %v", res, h.key, f, v, h.want[f])
			}
		}
	}
	for res, objs := range byID {
		for id, h := range objs {
			if len(h.send) > 0 && !patched[fmt.Sprintf("%s/%d/", res, id)] {
				t.Fatalf("%s %q (id %d) differs in %v but was not patched", res, h.key, id, h.diff)
			}
		}
	}

	// The platform now holds roster's rendering with roster's marker; what it does not own
	// is as it was.
	marker := pexip.NewMarker([]byte(os.Getenv("ROSTER_FAULT_SECRET_KEY")))
	for _, res := range []pexip.Resource{pexip.Conferences, pexip.Devices, pexip.EndUsers} {
		for _, o := range fake.Objects(res) {
			h := byID[res][o["id"].(int)]
			if h.want == nil {
				if !slices.ContainsFunc(before[res], func(b map[string]any) bool { return fmt.Sprint(b) == fmt.Sprint(o) }) {
					t.Fatalf("%s %q, not roster's, changed: %v", res, h.key, o)
				}
				continue
			}
			if res != pexip.EndUsers && !marker.Ours(o["description"].(string)) {
				t.Fatalf("adopted %s %q does not carry roster's marker: %q", res, h.key, o["description"])
			}
			for f, v := range h.want {
				got := o[f]
				switch f {
				case "description":
					got = pexip.Strip(got.(string))
				case "password":
					got, _ = fake.DevicePassword(h.key)
				case "aliases":
					continue
				}
				if fmt.Sprint(got) != fmt.Sprint(v) {
					t.Fatalf("%s %q: %s is %v, rendered %v", res, h.key, f, got, v)
				}
			}
		}
	}
	if n := fake.Count(pexip.ConferenceAliases); n != len(before[pexip.ConferenceAliases]) {
		t.Fatalf("%d aliases after the push, %d before", n, len(before[pexip.ConferenceAliases]))
	}

	var conflicts []string
	if err := db.Select(&conflicts, `SELECT object_key FROM platform_ops WHERE status = 'conflict' ORDER BY object_key`); err != nil {
		t.Fatal(err)
	}
	if want := sorted([]string{conflictName, stolen}); fmt.Sprint(conflicts) != fmt.Sprint(want) {
		t.Fatalf("conflicts recorded: %q; want %q", conflicts, want)
	}

	// Emails: none created for an adopted object; the conflict's waits.
	var pending []string
	if err := db.Select(&pending, `SELECT object_key FROM outbox WHERE status != 'sent' AND kind IN ('vmr', 'device')`); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0] != conflictName {
		t.Fatalf("emails not sent: %v; want only the conflicting %q", pending, conflictName)
	}
	files, _ := os.ReadDir(w.mailDir)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(w.mailDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "(created)") {
			t.Fatalf("a created email went out: %s\n%s", f.Name(), b)
		}
	}

	t.Logf("%s: checked", time.Since(t0))
	// A second apply sends nothing.
	sent := len(fake.Writes())
	w.run(t, "apply")
	if ws := fake.Writes(); len(ws) != sent {
		t.Fatalf("a second apply sent %d more writes, first %+v", len(ws)-sent, ws[sent])
	}
}

// differ makes field different by hand when on.
func differ(h *handMade, fields map[string]any, on bool, field string, value any) {
	if on {
		fields[field] = value
		h.diff = append(h.diff, field)
	}
}

// readRendered is the JSON plan's created objects by kind (their "after").
func readRendered(t *testing.T, planJSON string) map[string][]map[string]any {
	t.Helper()
	var plan struct {
		Changes []struct {
			Kind, Action string
			After        map[string]any
		}
	}
	if err := json.Unmarshal([]byte(planJSON), &plan); err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]any{}
	for _, c := range plan.Changes {
		if c.Action == "create" {
			out[c.Kind] = append(out[c.Kind], c.After)
		}
	}
	return out
}

func aliasList(v any) []any {
	var out []any
	for _, a := range v.([]any) {
		out = append(out, map[string]any{"alias": a})
	}
	return out
}

// nullZero is Pexip's null for roster's 0 ("no limit").
func nullZero(v any) any {
	if f, ok := v.(float64); ok && f == 0 {
		return nil
	}
	return v
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// union is the sorted fields of a and more, each once.
func union(a []string, more ...string) []string {
	return slices.Compact(sorted(append(slices.Clone(a), more...)))
}

type listedAdoption struct {
	id     int
	fields []string
}

var adoptLine = regexp.MustCompile(`^adopt (vmr|device|user)\s+(.+) \(id (\d+)\)(?:, would change: (.+))?$`)

// parseAdoptions reads the dry run's lines by resource and key.
func parseAdoptions(t *testing.T, out string) map[string]listedAdoption {
	t.Helper()
	res := map[string]pexip.Resource{"vmr": pexip.Conferences, "device": pexip.Devices, "user": pexip.EndUsers}
	m := map[string]listedAdoption{}
	for _, line := range strings.Split(out, "\n") {
		g := adoptLine.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		id, _ := strconv.Atoi(g[3])
		var fields []string
		if g[4] != "" {
			fields = strings.Split(g[4], ", ")
		}
		m[string(res[g[1]])+"\x00"+g[2]] = listedAdoption{id: id, fields: sorted(fields)}
	}
	return m
}
