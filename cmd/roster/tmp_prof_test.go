//go:build unix

package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/roster-dev/roster/reconcile/platform/pexip/pexipfake"
)

func TestTmpPushSpeed(t *testing.T) {
	if os.Getenv("TMPPROF") == "" {
		t.Skip()
	}
	fake := pexipfake.New("roster", "Pexip-S3cret!")
	t.Cleanup(fake.Close)
	mails := &pushMailbox{fake: fake, got: map[string]int{}}
	smtpPort, _ := startSMTP(t, mails, "127.0.0.1:0")
	smtpCfg := fmt.Sprintf(`smtp: default: {host: "127.0.0.1", port: %d, security: "none", username: "roster", password_env: "ROSTER_FAULT_SMTP_PASSWORD", from: "roster@example.com"}
`, smtpPort)
	if os.Getenv("TMPPROF") == "nomail" {
		smtpCfg = ""
	}
	w := newFaultWorkspace(t, t.TempDir(), killPushPeople, "", fmt.Sprintf(`platforms: pexip: {url: %q, username: "roster", password_env: "ROSTER_FAULT_PEXIP_PASSWORD", mode: "push", rate: 6000000}
%shttp: listen: "127.0.0.1:0"
`, fake.URL, smtpCfg))
	if out, errOut, code := w.run(t, "apply", "--no-send"); code != 0 {
		t.Fatalf("apply --no-send: exit %d\n%s\n%s", code, tail(out, 500), errOut)
	}
	q := openQueue(t, w.db)
	d := startDaemon(t, w)
	for q.count(t, `SELECT COUNT(*) FROM platform_ops WHERE status != 'done'`) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("pushed in %v", time.Since(d.started))
	d.stop(t)
	os.WriteFile("/tmp/kp-speed.log", []byte(d.log.String()), 0o644)
}
