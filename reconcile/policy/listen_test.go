package policy_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roster-dev/roster/reconcile/policy"
	"github.com/roster-dev/roster/reconcile/policy/policytest"
)

func TestListenRefuses(t *testing.T) {
	cert := policytest.SelfSigned(t, t.TempDir())
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr, cert, key, want string
	}{
		{"plain on every interface", "0.0.0.0:0", "", "", "loopback"},
		{"plain with no host", ":0", "", "", "loopback"},
		{"plain on another address", "192.0.2.10:8443", "", "", "loopback"},
		{"plain on a name", "policy.example.com:8443", "", "", "loopback"},
		{"certificate without key", "127.0.0.1:0", cert.CertFile, "", "both"},
		{"key without certificate", "0.0.0.0:0", "", cert.KeyFile, "both"},
		{"unreadable certificate", "127.0.0.1:0", garbage, cert.KeyFile, "load certificate"},
		{"missing key", "127.0.0.1:0", cert.CertFile, filepath.Join(t.TempDir(), "none.key"), "load certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := policy.Listen(tc.addr, tc.cert, tc.key)
			if err == nil {
				ln.Close()
				t.Fatalf("Listen(%q) succeeded", tc.addr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestListenPlainLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		ln, err := policy.Listen(addr, "", "")
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// TestListenTLS: the HTTPS listener answers a client that trusts its certificate, and
// neither a plain-HTTP client nor one that does not trust it.
func TestListenTLS(t *testing.T) {
	p := startServer(t, "continue", false)
	p.publish(t, "v1", policytest.LoadEstate(t, "testdata/estate.json"))
	ctx := context.Background()
	if d := p.node.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil); d.Kind != policytest.Conference {
		t.Fatalf("trusted HTTPS client: %v %s", d.Kind, d.Reason)
	}
	plain := *p.node
	plain.BaseURL = "http://" + strings.TrimPrefix(p.node.BaseURL, "https://")
	plain.Client = &http.Client{}
	if d := plain.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil); d.Kind != policytest.Fallback || d.HTTPStatus == http.StatusOK {
		t.Errorf("plain HTTP to the TLS listener: %v HTTP %d", d.Kind, d.HTTPStatus)
	}
	untrusting := *p.node
	untrusting.Client = &http.Client{}
	if d := untrusting.ServiceConfiguration(ctx, "meet.alice.smith@example.com", nil); d.Kind != policytest.Fallback || !strings.Contains(d.Reason, "certificate") {
		t.Errorf("client not trusting the certificate: %v %q", d.Kind, d.Reason)
	}
}
