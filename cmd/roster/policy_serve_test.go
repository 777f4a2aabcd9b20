package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

// policyConfig is platforms.pexip in policy mode on a loopback port of its own.
func policyConfig(role string) string {
	return fmt.Sprintf(`role: %q
platforms: pexip: {username: "pexip-node", password_env: "ROSTER_TEST_POLICY_PASSWORD", mode: "policy", policy_listen: "127.0.0.1:0", policy_unknown: "reject"}
`, role)
}

// nodePassword is the nodes' policy password (ROSTER_TEST_POLICY_PASSWORD).
const nodePassword = "node-s3cret"

// policyRepo sets the secret key and the nodes' password for a policy test and makes its
// repo with examples/ committed.
func policyRepo(t *testing.T, secretKey string) (*gitRepo, string) {
	t.Setenv("ROSTER_SECRET_KEY", secretKey)
	t.Setenv("ROSTER_TEST_POLICY_PASSWORD", nodePassword)
	r := newGitRepo(t)
	return r, r.commitPush("initial")
}

// policyNode is a fake conferencing node calling d's policy listener.
func policyNode(t *testing.T, d *daemonUnderTest, password string) *policytest.Node {
	t.Helper()
	s := d.status()
	if s.Policy == nil || s.Policy.Listen == "" {
		t.Fatalf("/api/status has no policy endpoint: %+v", s)
	}
	return &policytest.Node{BaseURL: "http://" + s.Policy.Listen, Username: "pexip-node", Password: password, Client: &http.Client{}}
}

// answer is what a node does with one answer, without the timing.
type answer struct {
	Kind        policytest.Kind
	Service     policytest.Service
	Credentials policytest.Credentials
}

func decide(d policytest.Decision) answer { return answer{d.Kind, d.Service, d.Credentials} }

// TestServePolicyReplicas: examples/ applied by a primary and two replicas (one repo, one
// LDIF directory, one secret key, each its own SQLite file) in policy mode. Every owned
// alias answers its room and every device alias its credentials, identically on all
// three; unknown and deleted aliases get policy_unknown; wrong credentials get 401; a
// rendered PIN change is answered only once the apply that makes it committed; only the
// primary's SMTP server receives mail.
func TestServePolicyReplicas(t *testing.T) {
	r, c1 := policyRepo(t, "policy-replicas")
	ctx := context.Background()
	roles := []string{"primary", "replica", "replica"}
	daemons := make([]*daemonUnderTest, len(roles))
	dirs := make([]string, len(roles))
	// Each daemon has an SMTP server of its own (in process, on loopback).
	t.Setenv("ROSTER_TEST_POLICY_SMTP_PASSWORD", "smtp-s3cret")
	smtps := make([]*smtpStore, len(roles))
	for i, role := range roles {
		smtps[i] = &smtpStore{user: "roster", pwd: "smtp-s3cret"}
		port, _ := startSMTP(t, smtps[i], "127.0.0.1:0")
		var cfg string
		cfg, dirs[i] = writeServeConfig(t, serveConfig{URL: r.bare, Interval: "200ms", NoMail: true, Extra: policyConfig(role) + fmt.Sprintf(
			`smtp: default: {host: "127.0.0.1", port: %d, security: "none", username: "roster", password_env: "ROSTER_TEST_POLICY_SMTP_PASSWORD", from: "roster@example.com"}
`, port)})
		daemons[i] = startServe(t, cfg)
	}
	nodes := make([]*policytest.Node, len(roles))
	for i, d := range daemons {
		d.waitStatus("the first sync and its policy snapshot", 110*time.Second, func(s *Status) bool {
			return s.AppliedCommit == c1 && s.Policy != nil && s.Policy.Ready && s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion)
		})
		if !strings.Contains(d.log.String(), "role="+roles[i]) {
			t.Errorf("daemon %d does not log its role %s", i, roles[i])
		}
		nodes[i] = policyNode(t, d, nodePassword)
	}

	db := openDB(t, filepath.Join(dirs[0], "roster.db"))
	var rooms []struct{ Alias, Name, PIN string }
	if err := db.Select(&rooms, `SELECT a.alias, v.name, v.pin FROM vmr_aliases a JOIN vmrs v ON v.id = a.vmr_id ORDER BY a.alias`); err != nil {
		t.Fatal(err)
	}
	var devices []struct{ Alias, Username, Password string }
	if err := db.Select(&devices, `SELECT alias, username, password FROM devices ORDER BY alias`); err != nil {
		t.Fatal(err)
	}
	if len(rooms) < 5 || len(devices) < 2 {
		t.Fatalf("examples/ applied %d room aliases and %d devices; want more", len(rooms), len(devices))
	}
	for _, room := range rooms {
		var first answer
		for i, n := range nodes {
			// Nodes send aliases with a scheme and in other letter case too.
			a := decide(n.ServiceConfiguration(ctx, "sip:"+strings.ToUpper(room.Alias), nil))
			if i == 0 {
				first = a
				if a.Kind != policytest.Conference || a.Service.Name != room.Name || a.Service.PIN != room.PIN {
					t.Errorf("alias %s on the primary: %+v, want room %q with PIN %q", room.Alias, a, room.Name, room.PIN)
				}
			} else if !reflect.DeepEqual(a, first) {
				t.Errorf("alias %s: daemon %d (%s) answers %+v, the primary %+v", room.Alias, i, roles[i], a, first)
			}
		}
	}
	for _, dev := range devices {
		for i, n := range nodes {
			a := decide(n.Registration(ctx, dev.Alias, "sip"))
			if a.Kind != policytest.Register || a.Credentials != (policytest.Credentials{Username: dev.Username, Password: dev.Password}) {
				t.Errorf("device %s on daemon %d: %+v, want its credentials %s", dev.Alias, i, a, dev.Username)
			}
		}
	}
	for i, n := range nodes {
		if a := decide(n.ServiceConfiguration(ctx, "nobody@example.org", nil)); a.Kind != policytest.Reject {
			t.Errorf("unknown alias on daemon %d: %+v, want reject (policy_unknown)", i, a)
		}
		wrong := *n
		wrong.Password = "guess"
		if d := wrong.ServiceConfiguration(ctx, rooms[0].Alias, nil); d.HTTPStatus != http.StatusUnauthorized || d.Kind != policytest.Fallback {
			t.Errorf("wrong credentials on daemon %d: HTTP %d %v, want 401", i, d.HTTPStatus, d.Kind)
		}
	}

	const deleted, deletedName = "standup@example.com", "Engineering Stand-up"
	for i, n := range nodes {
		if a := decide(n.ServiceConfiguration(ctx, deleted, nil)); a.Kind != policytest.Conference || a.Service.Name != deletedName {
			t.Fatalf("%s on daemon %d before its deletion: %+v, want %s", deleted, i, a, deletedName)
		}
	}

	// Commit 2: every contractor's PIN is rendered as the same 8 digits instead of a
	// random PIN (staff PINs are overridable: never overwritten), and a declared
	// room is deleted. A node polling the primary sees the new PIN only when the state
	// already holds it, and a deleted alias is unknown afterwards.
	const newPIN = "13572468"
	pinAlias, pinRoom, oldPIN := "", "", ""
	for _, room := range rooms {
		if strings.HasPrefix(room.Alias, "c.") && room.PIN != newPIN {
			pinAlias, pinRoom, oldPIN = room.Alias, room.Name, room.PIN
			break
		}
	}
	if pinAlias == "" {
		t.Fatal("no contractor room in examples/")
	}
	r.write(map[string]string{
		"templates/contractors.yaml": strings.Replace(r.read("templates/contractors.yaml"), `pin: "{{ ''|pex_random_pin(8) }}"`, `pin: "`+newPIN+`"`, 1),
		"vmrs/team-rooms.yaml":       dropEntry(t, r.read("vmrs/team-rooms.yaml"), deletedName),
	})
	c2 := r.commitPush("contractor PINs are rendered from the template; the stand-up room goes")
	deadline := time.Now().Add(60 * time.Second)
	polls := 0
	for {
		a := decide(nodes[0].ServiceConfiguration(ctx, pinAlias, nil))
		polls++
		if a.Kind != policytest.Conference || a.Service.Name != pinRoom {
			t.Fatalf("during the apply %s answers %+v", pinAlias, a)
		}
		if a.Service.PIN == newPIN {
			// Answered after the apply: the committed state holds this PIN.
			if pin := queryString(t, db, `SELECT pin FROM vmrs WHERE name = ?`, pinRoom); pin != a.Service.PIN {
				t.Fatalf("new PIN %q answered while the state holds %q", a.Service.PIN, pin)
			}
			break
		}
		if a.Service.PIN != oldPIN {
			t.Fatalf("PIN %q is neither the old nor the new rendering", a.Service.PIN)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new PIN is not answered 60s after the push\n%s", daemons[0].log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("new PIN answered after %d polls", polls)
	for i, d := range daemons {
		d.waitStatus("the second commit's policy snapshot", 30*time.Second, func(s *Status) bool {
			return s.AppliedCommit == c2 && s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion)
		})
		if a := decide(nodes[i].ServiceConfiguration(ctx, deleted, nil)); a.Kind != policytest.Reject {
			t.Errorf("deleted alias on daemon %d: %+v, want reject (policy_unknown)", i, a)
		}
	}
	var first answer
	for i, n := range nodes {
		a := decide(n.ServiceConfiguration(ctx, pinAlias, nil))
		if i == 0 {
			first = a
		} else if !reflect.DeepEqual(a, first) {
			t.Errorf("after commit 2, %s: daemon %d answers %+v, the primary %+v", pinAlias, i, a, first)
		}
	}

	// Mail: the primary's SMTP server receives every email; the replicas never send.
	// The mailer records "sent" just after the server accepted a message, so the two counts
	// may differ for a moment; they must come to agree, with nothing left pending.
	daemons[0].waitStatus("the primary's SMTP server to hold exactly what its outbox says sent", 20*time.Second, func(s *Status) bool {
		return s.Outbox["sent"] > 0 && s.Outbox["pending"] == 0 && len(smtps[0].messages()) == s.Outbox["sent"]
	})
	for i := 1; i < len(daemons); i++ {
		s := daemons[i].status()
		if s.Outbox["sent"] != 0 || s.Outbox["pending"] == 0 {
			t.Errorf("replica %d outbox = %v, want everything pending, nothing sent", i, s.Outbox)
		}
		if got := len(smtps[i].messages()); got != 0 {
			t.Errorf("replica %d's SMTP server received %d messages, want none", i, got)
		}
	}

	// The status page and the metrics show the endpoint.
	if code, page := daemons[1].get("/"); code != http.StatusOK || !strings.Contains(page, `id="policy-version"`) {
		t.Errorf("status page: %d, lacks the policy endpoint", code)
	}
	_, metrics := daemons[0].get("/metrics")
	for _, name := range []string{`roster_policy_answers_total{outcome="room"}`, `roster_policy_answers_total{outcome="unauthorized"} 1`,
		"roster_policy_request_duration_seconds_bucket"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// dropEntry removes the list entry named name from a YAML list of VMRs.
func dropEntry(t *testing.T, yaml, name string) string {
	t.Helper()
	parts := strings.Split(yaml, "\n- name: ")
	var kept []string
	for i, p := range parts {
		if i > 0 && strings.HasPrefix(p, name+"\n") {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(parts) {
		t.Fatalf("no entry %q", name)
	}
	return strings.Join(kept, "\n- name: ")
}

// TestServePolicyTLS: with policy_cert_file and policy_key_file the policy listener is
// HTTPS (here on loopback); a node that trusts the certificate gets its answer, a plain
// HTTP request none.
func TestServePolicyTLS(t *testing.T) {
	r, c1 := policyRepo(t, "policy-tls")
	cert := policytest.SelfSigned(t, t.TempDir())
	cfg, _ := writeServeConfig(t, serveConfig{URL: r.bare, Interval: "200ms", ListenAddr: freeLoopbackAddr(t), Extra: fmt.Sprintf(`platforms: pexip: {username: "pexip-node",
	password_env: "ROSTER_TEST_POLICY_PASSWORD", mode: "policy", policy_listen: "127.0.0.1:0", policy_cert_file: %q, policy_key_file: %q}
`, cert.CertFile, cert.KeyFile)})
	d := startServe(t, cfg)
	s := d.waitStatus("the first sync and its policy snapshot", 110*time.Second, func(s *Status) bool {
		return s.AppliedCommit == c1 && s.Policy != nil && s.Policy.Ready && s.Policy.Snapshot.Rooms > 0
	})
	if !s.Policy.TLS {
		t.Errorf("policy status = %+v, want tls", s.Policy)
	}
	n := &policytest.Node{BaseURL: "https://" + s.Policy.Listen, Username: "pexip-node", Password: nodePassword, Client: cert.Client()}
	if a := decide(n.ServiceConfiguration(context.Background(), "sip:board@example.com", nil)); a.Kind != policytest.Conference || a.Service.Name != "Board Room" {
		t.Errorf("board@example.com over HTTPS: %+v, want Board Room", a)
	}
	plain := *n
	plain.BaseURL, plain.Client = "http://"+s.Policy.Listen, &http.Client{}
	if d := plain.ServiceConfiguration(context.Background(), "board@example.com", nil); d.Kind != policytest.Fallback || d.HTTPStatus == http.StatusOK {
		t.Errorf("plain HTTP to the TLS listener: HTTP %d %v, want no answer", d.HTTPStatus, d.Kind)
	}

	// `roster status` reads the running daemon's endpoint: listener, role, snapshot,
	// answers by outcome (one room so far; the plain HTTP attempt never reached the handler).
	status := func(args ...string) string {
		t.Helper()
		var out, errb strings.Builder
		if err := Run(context.Background(), append([]string{"status", "--config", cfg}, args...), &out, &errb); err != nil {
			t.Fatalf("roster status %v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	s = d.status()
	text := status()
	for _, want := range []string{
		fmt.Sprintf("Policy endpoint: %s (HTTPS), role primary, unknown aliases: continue.", s.Policy.Listen),
		fmt.Sprintf("  serving state %d, built %s", s.StateVersion, s.Policy.Snapshot.BuiltAt.UTC().Format(time.RFC3339)),
		fmt.Sprintf(": %d rooms (%d aliases), %d devices, %d bytes\n", s.Policy.Snapshot.Rooms, s.Policy.Snapshot.RoomAliases,
			s.Policy.Snapshot.Devices, s.Policy.Snapshot.Bytes),
		"  1 requests since start: 1 room, 0 device, 0 unknown, 0 reject, 0 unauthorized, 0 bad_request, 0 unavailable\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("roster status lacks %q:\n%s", want, text)
		}
	}
	var js Status
	if err := json.Unmarshal([]byte(status("--format", "json")), &js); err != nil || js.Policy == nil ||
		js.Policy.Role != "primary" || js.Policy.Answers["room"] != 1 || js.Policy.Snapshot == nil || js.Policy.Snapshot.Rooms != s.Policy.Snapshot.Rooms {
		t.Errorf("roster status --format json: policy %+v (%v), want the daemon's", js.Policy, err)
	}
	if code, page := d.get("/"); code != http.StatusOK || !strings.Contains(page, `<td id="policy-role">primary</td>`) ||
		!strings.Contains(page, `<td id="policy-answers">1 room, 0 device, 0 unknown,`) {
		t.Errorf("status page: HTTP %d, lacks the role or the answers:\n%s", code, page)
	}
	// Without the daemon, status says where the endpoint should be and why it cannot tell more.
	d.stop()
	text = status()
	if !strings.Contains(text, "Policy endpoint: 127.0.0.1:0 (HTTPS), role primary") || !strings.Contains(text, "its state is unknown: no answer from the daemon at http://") {
		t.Errorf("roster status without the daemon:\n%s", text)
	}
}

// TestServePolicyAnswererRestart: in policy mode the answers come from a separate
// answering process; killed, it is restarted by the daemon, serves the same listener and
// the same snapshot again, and the daemon's counts of its answers go on. Stopping the
// daemon stops it.
func TestServePolicyAnswererRestart(t *testing.T) {
	r, c1 := policyRepo(t, "policy-restart")
	cfg, _ := writeServeConfig(t, serveConfig{URL: r.bare, Interval: "1h", NoMail: true, Extra: policyConfig("primary")})
	d := startServe(t, cfg)
	s := d.waitStatus("the first sync and its policy snapshot", 110*time.Second, func(s *Status) bool {
		return s.AppliedCommit == c1 && s.Policy != nil && s.Policy.Ready && s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion)
	})
	pid := s.Policy.AnswererPID
	if pid == 0 || pid == os.Getpid() {
		t.Fatalf("answerer pid %d (the daemon's process is %d): want a process of its own", pid, os.Getpid())
	}
	node := policyNode(t, d, nodePassword)
	board := func(when string) {
		t.Helper()
		node.Client.CloseIdleConnections()
		if a := decide(node.ServiceConfiguration(context.Background(), "board@example.com", nil)); a.Kind != policytest.Conference || a.Service.Name != "Board Room" {
			t.Fatalf("board@example.com %s: %+v, want Board Room", when, a)
		}
	}
	board("before the kill")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s = d.waitStatus("a new answering process serving the snapshot", 30*time.Second, func(s *Status) bool {
		return s.Policy.AnswererPID != 0 && s.Policy.AnswererPID != pid && s.Policy.Ready &&
			s.Policy.Snapshot.Version == fmt.Sprintf("state %d", s.StateVersion)
	})
	if s.Policy.AnswererRestarts != 1 {
		t.Errorf("%d restarts, want 1", s.Policy.AnswererRestarts)
	}
	board("after the restart")
	if got := d.status().Policy.Answers["room"]; got != 2 {
		t.Errorf("%d room answers counted across the restart, want 2", got)
	}
	if _, m := d.get("/metrics"); !strings.Contains(m, `roster_policy_answers_total{outcome="room"} 2`) {
		t.Errorf("/metrics lacks the 2 room answers")
	}
	if !strings.Contains(d.log.String(), "policy answerer exited; restarting it") {
		t.Errorf("the restart is not logged")
	}
	newPID := s.Policy.AnswererPID
	if _, page := d.get("/"); !strings.Contains(page, fmt.Sprintf(`<td id="policy-answerer">pid %d, 1 restarts</td>`, newPID)) {
		t.Errorf("the status page lacks the answering process %d and its restart", newPID)
	}
	d.stop()
	if err := syscall.Kill(newPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the answering process %d outlives the daemon: %v", newPID, err)
	}
}
