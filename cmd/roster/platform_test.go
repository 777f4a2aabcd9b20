package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip"
	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
)

// TestPlatformCommands: `roster apply` pushes the examples to a fake Pexip; `platform
// check` exits 0, then 2 with the drifted object after a hand edit; `platform adopt`
// finds nothing to adopt when roster owns everything already.
func TestPlatformCommands(t *testing.T) {
	w := newWorkspace(t)
	fake := pushToFake(t, w.cfg, "rate: 60000")
	if out, errOut, code := w.run("apply"); code != 0 || !strings.Contains(out, "Pexip:") {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := w.run("platform", "check"); code != 0 {
		t.Fatalf("check right after the push: exit %d\n%s\n%s", code, out, errOut)
	}
	c := fake.Objects(pexip.Conferences)[0]
	if err := fake.Edit(pexip.Conferences, c["id"].(int), map[string]any{"allow_guests": !c["allow_guests"].(bool)}); err != nil {
		t.Fatal(err)
	}
	out, _, code := w.run("platform", "check")
	if code != 2 || !strings.Contains(out, "changed") || !strings.Contains(out, c["name"].(string)) || !strings.Contains(out, "allow_guests") {
		t.Fatalf("check after a hand edit: exit %d\n%s", code, out)
	}
	if out, _, code := w.run("platform", "adopt"); code != 0 || !strings.Contains(out, "Nothing to adopt") {
		t.Fatalf("adopt: exit %d\n%s", code, out)
	}
	if out, errOut, code := w.run("apply"); code != 0 {
		t.Fatalf("repairing apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, _, code := w.run("platform", "check"); code != 0 {
		t.Fatalf("check after the repair: exit %d\n%s", code, out)
	}
}

// TestApplyPushTimeout: `roster apply` against a platform that throttles every request
// stops at push_timeout with exit 1 and says what stays queued; `roster status` shows
// the queue; the next apply, the platform healthy, pushes the rest and exits 0.
func TestApplyPushTimeout(t *testing.T) {
	w := newWorkspace(t)
	fake := pushToFake(t, w.cfg, `rate: 60000, push_timeout: "1s"`)
	fake.Storm(time.Hour, "600")
	out, errOut, code := w.run("apply")
	if code != 1 || !strings.Contains(errOut, "stopped after 1s (platforms.pexip.push_timeout)") || !strings.Contains(errOut, "still queued") {
		t.Fatalf("apply against a throttling platform: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, _, _ := w.run("status"); !strings.Contains(out, "Platform pexip:") || !strings.Contains(out, "pending") {
		t.Fatalf("status does not show the queue left:\n%s", out)
	}
	fake.Storm(0, "")
	if out, errOut, code := w.run("apply"); code != 0 || !strings.Contains(out, "Pexip:") {
		t.Fatalf("the resuming apply: exit %d\n%s\n%s", code, out, errOut)
	}
	if fake.Count(pexip.Conferences) == 0 {
		t.Fatal("nothing reached the platform")
	}
}

// pushToFake starts a fake Pexip and appends to the config file at cfgPath a platform in
// push mode to it, with more fields (such as the rate) given as CUE.
func pushToFake(t *testing.T, cfgPath, more string) *pexipfake.Server {
	t.Helper()
	fake := pexipfake.New("roster", "pw-cli")
	t.Cleanup(fake.Close)
	t.Setenv("PEXIP_PASSWORD", "pw-cli")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = fmt.Appendf(cfg, "platforms: pexip: {url: %q, username: \"roster\", password_env: \"PEXIP_PASSWORD\", mode: \"push\", %s}\n", fake.URL, more)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return fake
}
