package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// workspace is a copy of examples/ with a config.cue of its own, a state database and a
// mail folder in a temp dir.
type workspace struct {
	t    *testing.T
	dir  string
	repo string
	cfg  string
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	dir := t.TempDir()
	w := &workspace{t: t, dir: dir, repo: filepath.Join(dir, "repo"), cfg: filepath.Join(dir, "config.cue")}
	if err := os.CopyFS(w.repo, os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`repo: {url: %q}
state: {dsn: %q}
directories: corp: {ldif: "directory.ldif", base_dn: "dc=example,dc=com"}
mail_dir: %q
safety: {max_emails: 1000}
`, w.repo, filepath.Join(dir, "roster.db"), filepath.Join(dir, "outbox"))
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROSTER_SECRET_KEY", "cli-test-key")
	return w
}

// run runs roster in-process and returns stdout, stderr and the exit code.
func (w *workspace) run(args ...string) (string, string, int) {
	w.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{args[0], "--config", w.cfg}, args[1:]...)
	err := Run(context.Background(), full, &out, &errb)
	code := exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func (w *workspace) write(rel, content string) {
	w.t.Helper()
	p := filepath.Join(w.repo, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func TestValidateExamples(t *testing.T) {
	w := newWorkspace(t)
	out, errOut, code := w.run("validate")
	if code != 0 || !strings.HasPrefix(out, "valid") || strings.Count(out, "\n") != 1 {
		t.Fatalf("code %d out %q err %q", code, out, errOut)
	}
}

func TestValidateReportsEveryErrorWithPosition(t *testing.T) {
	w := newWorkspace(t)
	w.write("users/broken.csv", "USERID,ACTIVE,FIRSTNAME\n")
	w.write("templates/broken.yaml", "name: broken\nsource: nowhere\nuser_filter: (uid=*)\nvmr:\n  name: \"{{ sn|nosuchfilter }}\"\n")
	_, errOut, code := w.run("validate")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"users/broken.csv:1: Incorrect file format. CUSTOM10 is required.",
		"templates/broken.yaml:2:",
		"templates/broken.yaml:5:",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
		t.Errorf("stack trace in output:\n%s", errOut)
	}
}

func TestPlanApplyPlanAndExportRoundTrip(t *testing.T) {
	w := newWorkspace(t)
	out, errOut, code := w.run("plan", "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "Plan: ") {
		t.Fatalf("first plan: code %d\n%s\n%s", code, out, errOut)
	}
	planFile := filepath.Join(w.dir, "plan.json")
	if _, errOut, code = w.run("plan", "--format", "json", "--out", planFile); code != 0 {
		t.Fatalf("plan --out: %s", errOut)
	}
	var saved map[string]any
	data, _ := os.ReadFile(planFile)
	if err := json.Unmarshal(data, &saved); err != nil || saved["format_version"] != float64(1) {
		t.Fatalf("plan file: %v %v", err, saved["format_version"])
	}
	out, errOut, code = w.run("apply", "--plan", planFile)
	if code != 0 || !strings.Contains(out, "Applied:") {
		t.Fatalf("apply: code %d\n%s\n%s", code, out, errOut)
	}
	// The saved plan is now stale.
	if _, errOut, code = w.run("apply", "--plan", planFile); code != 1 || !strings.Contains(errOut, "stale") {
		t.Errorf("stale plan: code %d %s", code, errOut)
	}
	if out, _, code = w.run("plan", "--detailed-exitcode"); code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply: code %d\n%s", code, out)
	}
	// Export users, commit the export as the only users CSV: nothing to do.
	exported := filepath.Join(w.dir, "users.csv")
	if _, errOut, code = w.run("export", "users", "--delimiter", "tab", "--out", exported); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	data, _ = os.ReadFile(exported)
	if !strings.HasPrefix(string(data), "USERID\tACTIVE\tFIRSTNAME") {
		t.Fatalf("export header: %.80q", data)
	}
	os.RemoveAll(filepath.Join(w.repo, "users"))
	w.write("users/export.csv", string(data))
	if out, errOut, code = w.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after export round trip: code %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = w.run("status", "--format", "json")
	var st Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Templates) != 2 || st.Objects["vmrs"] == 0 {
		t.Errorf("status: code %d %s", code, out)
	}
}

func TestPlanFormatsMaskSecrets(t *testing.T) {
	w := newWorkspace(t)
	for _, f := range []string{"text", "json", "markdown"} {
		out, errOut, code := w.run("plan", "--format", f)
		if code != 0 {
			t.Fatalf("%s: %s", f, errOut)
		}
		if !strings.Contains(out, "********") {
			t.Errorf("%s: no masked secret in output", f)
		}
		shown, _, _ := w.run("plan", "--format", f, "--show-secrets")
		if strings.Count(shown, "********") >= strings.Count(out, "********") {
			t.Errorf("%s: --show-secrets did not unmask", f)
		}
	}
}

func TestUnknownCommandAndBadFlag(t *testing.T) {
	w := newWorkspace(t)
	if _, errOut, code := w.run("frobnicate"); code != 1 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("code %d %s", code, errOut)
	}
	if _, _, code := w.run("plan", "--format", "yaml"); code != 1 {
		t.Errorf("bad format: code %d", code)
	}
}

func TestRemindNotifyAndAcceptInvite(t *testing.T) {
	w := newWorkspace(t)
	if _, errOut, code := w.run("apply"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	mails := func() int {
		es, _ := os.ReadDir(filepath.Join(w.dir, "outbox"))
		return len(es)
	}
	before := mails()
	out, errOut, code := w.run("remind", "--vmr", "Board Room", "--device", "lobby@dev.example.com")
	if code != 0 {
		t.Fatalf("remind: %s\n%s", out, errOut)
	}
	if got := mails() - before; got != 2 {
		t.Errorf("remind sent %d emails:\n%s", got, out)
	}
	if _, errOut, code = w.run("remind", "--vmr", "No Such Room"); code != 1 || !strings.Contains(errOut, `no VMR named "No Such Room"`) {
		t.Errorf("unknown VMR: code %d %s", code, errOut)
	}
	// Every active directory user was notified on creation (auto_activation_emails), so
	// Notify Now finds nobody.
	out, _, code = w.run("notify", "users")
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("notify users: code %d\n%s", code, out)
	}
	out, errOut, code = w.run("invites", "accept", "john.doe@partner.example")
	if code != 0 || !strings.Contains(out, "accepted") {
		t.Fatalf("accept: code %d %s %s", code, out, errOut)
	}
	if _, errOut, code = w.run("invites", "accept", "john.doe@partner.example"); code != 1 || !strings.Contains(errOut, "not pending") {
		t.Errorf("second accept: code %d %s", code, errOut)
	}
}

func TestOutboxDropAndRetry(t *testing.T) {
	w := newWorkspace(t)
	if _, errOut, code := w.run("apply", "--no-send"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	if _, errOut, code := w.run("outbox", "drop", "1"); code != 0 {
		t.Fatalf("drop: %s", errOut)
	}
	out, _, _ := w.run("status", "--format", "json")
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Outbox["dropped"] != 1 {
		t.Fatalf("status after drop: %v %v", err, st.Outbox)
	}
	if _, errOut, code := w.run("outbox", "retry", "1"); code != 1 || errOut == "" {
		t.Errorf("retry of a dropped email: code %d %s", code, errOut)
	}
	if _, errOut, code := w.run("outbox", "drop", "x"); code != 1 || !strings.Contains(errOut, "not an email id") {
		t.Errorf("bad id: code %d %s", code, errOut)
	}
}
