package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

// person is one directory entry of a test repo.
type person struct {
	uid, given, sn, mail, phone, dept string
	disabled                          bool
}

func (p person) ldif() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s %s\ngivenName: %s\nsn: %s\n",
		p.uid, p.uid, p.given, p.sn, p.given, p.sn)
	if p.mail != "" {
		fmt.Fprintf(&b, "mail: %s\n", p.mail)
	}
	if p.phone != "" {
		fmt.Fprintf(&b, "telephoneNumber: %s\n", p.phone)
	}
	if p.dept != "" {
		fmt.Fprintf(&b, "departmentNumber: %s\n", p.dept)
	}
	typ := "staff"
	if p.disabled {
		typ = "disabled"
	}
	fmt.Fprintf(&b, "employeeType: %s\nentryUUID: uuid-%s\n\n", typ, p.uid)
	return b.String()
}

func people(ps ...person) string {
	var b strings.Builder
	b.WriteString("dn: dc=example,dc=com\nobjectClass: domain\ndc: example\n\ndn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	for _, p := range ps {
		b.WriteString(p.ldif())
	}
	return b.String()
}

const staffTemplate = `name: staff
source: corp
user_search_dn: ou=people
user_filter: (objectClass=inetOrgPerson)
key_attribute: entryUUID
disabled_filter: (employeeType=disabled)
sync_vmrs: true
sync_devices: true
sync_users: true
vmr:
  name: "{{givenName}} {{sn}} VMR"
  description: "Room of {{cn}}"
  aliases: ["{{uid}}@vc.example.com", "{{telephoneNumber|pex_clean_phone_number|pex_tail(6)}}"]
  pin: "{{ ''|pex_random_pin(6) }}"
  allow_guests: true
  max_callrate_in: 4128
  max_callrate_out: 4128
  participant_limit: 50
  tag: staff
  primary_owner_email_address: "{{mail}}"
  overridable: [pin_settings]
device:
  alias: "{{uid}}@dev.example.com"
  description: "Soft client of {{cn}}"
  username: "{{uid}}"
  password: "{{ ''|pex_random_pin(12) }}"
  tag: staff
  primary_owner_email_address: "{{mail}}"
user:
  first_name: "{{givenName}}"
  last_name: "{{sn}}"
  email: "{{mail}}"
  language: en-us
  time_zone: London
  host_privilege: HOST
  license: paid
emails:
  send: true
  allow_email_override: true
  vmr: {subject: "Your room {{ name }}", body_file: emails/vmr.txt}
  device: {subject: "Your device {{ device_alias }}", body_file: emails/device.txt}
`

const usersHeader = "USERID,ACTIVE,FIRSTNAME,LASTNAME,EMAIL,LANGUAGE,HOSTPRIVILEGE,TIMEZONE,DIVISION,DEPARTMENT,PROJECT,OTHER,CUSTOM5,CUSTOM6,CUSTOM7,CUSTOM8,CUSTOM9,CUSTOM10\n"

// harness is a desired-state repo in memory, a config and a real SQLite database.
type harness struct {
	t     testing.TB
	files fstest.MapFS
	cfg   *schema.Config
	db    *state.DB
	now   time.Time
	seq   int
}

func newHarness(t testing.TB, ps ...person) *harness {
	t.Helper()
	db, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{t: t, db: db, now: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC),
		cfg: &schema.Config{
			Repo:         schema.RepoConfig{Path: "."},
			Directories:  map[string]schema.DirConfig{"corp": {LDIF: "directory.ldif", BaseDN: "dc=example,dc=com", PageSize: 1000}},
			Safety:       schema.Safety{MaxDeleteFraction: 0.25, MaxDeleteCount: 500, MaxEmails: 500},
			SecretKeyEnv: "ROSTER_SECRET_KEY",
		},
		files: fstest.MapFS{},
	}
	h.write("settings.yaml", "auto_activation_emails: true\nadmins: [ops@example.com]\n")
	h.write("templates/staff.yaml", staffTemplate)
	h.write("emails/vmr.txt", "Room {{ name }}, PIN {{ pin }}, aliases {{ aliases }}, action {{ action }}\n")
	h.write("emails/device.txt", "Device {{ device_alias }} password {{ device_password }}\n")
	h.write("directory.ldif", people(ps...))
	return h
}

func (h *harness) write(name, content string) { h.files[name] = &fstest.MapFile{Data: []byte(content)} }
func (h *harness) remove(name string)         { delete(h.files, name) }
func (h *harness) directory(ps ...person)     { h.write("directory.ldif", people(ps...)) }

func (h *harness) engine() *Engine {
	return &Engine{Config: h.cfg, DB: h.db, Now: func() time.Time { return h.now },
		Getenv:        func(string) string { return "test-secret-key" },
		DefaultEmails: map[string]MailSpec{"activation": {Subject: "Welcome {{ first_name }}", Body: "Hello {{ first_name }}"}, "invite": {Subject: "Invited", Body: "Join, {{ name }}"}}}
}

func (h *harness) loadRepo() *schema.Repo {
	h.t.Helper()
	repo, err := schema.Load(h.files, h.cfg, schema.LoadOptions{})
	if err != nil {
		h.t.Fatalf("load repo: %v", err)
	}
	return repo
}

// plan loads the repo and plans; the commit is a counter so each plan has its own.
func (h *harness) plan() *Plan {
	h.t.Helper()
	repo := h.loadRepo()
	p, err := h.engine().Plan(context.Background(), repo, fmt.Sprintf("c%03d", h.seq))
	if err != nil {
		h.t.Fatalf("plan: %v", err)
	}
	return p
}

// apply plans, checks the guards with allow, and applies.
func (h *harness) apply(allow Allowances) (*Plan, error) {
	h.t.Helper()
	p := h.plan()
	if err := p.Check(h.cfg.Safety, allow); err != nil {
		return p, err
	}
	_, err := Apply(context.Background(), h.db, p, ApplyOptions{Actor: "test", Now: h.now}, true)
	h.seq++
	return p, err
}

func (h *harness) mustApply() *Plan {
	h.t.Helper()
	p, err := h.apply(Allowances{})
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	return p
}

func (h *harness) actual() *state.Actual {
	h.t.Helper()
	a, err := h.db.LoadActual(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.Get(&n, query, args...); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// changes renders a plan's changes as "action kind key" lines, for compact assertions.
func changes(p *Plan) []string {
	var out []string
	for _, c := range p.All() {
		out = append(out, string(c.Action)+" "+string(c.Kind)+" "+c.Key)
	}
	return out
}

func emails(p *Plan) []string {
	var out []string
	for _, e := range p.Emails() {
		out = append(out, string(e.Kind)+" "+string(e.Action)+" "+e.To)
	}
	return out
}

func warningCodes(p *Plan) []string {
	var out []string
	for _, w := range p.Warnings {
		out = append(out, w.Code+" "+w.Key)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var (
	alice = person{uid: "alice", given: "Alice", sn: "Parkes", mail: "alice@example.com", phone: "+44 20 7946 1000"}
	bob   = person{uid: "bob", given: "Bob", sn: "Marley", mail: "bob@example.com", phone: "+44 20 7946 1001"}
	carol = person{uid: "carol", given: "Carol", sn: "King", mail: "carol@example.com", phone: "+44 20 7946 1002"}
	dave  = person{uid: "dave", given: "Dave", sn: "Grohl", mail: "dave@example.com", phone: "+44 20 7946 1003"}
)

// planWithout plans like Engine.Plan but renders without the actual state, so every
// entry is a full desired object: the reference the dropping of unchanged entries must match.
func (h *harness) planWithout() *Plan {
	h.t.Helper()
	repo := h.loadRepo()
	e := h.engine()
	env, err := e.Env(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := Render(context.Background(), Inputs{Config: h.cfg, Repo: repo, Commit: fmt.Sprintf("c%03d", h.seq), Env: env, Now: h.now,
		DefaultEmails: e.DefaultEmails, Directory: func(name string) (directory.Directory, error) {
			return OpenDirectory(h.cfg.Directories[name], repo, nil, nil)
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	return Diff(d, h.actual())
}
