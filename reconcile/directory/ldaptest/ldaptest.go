// Package ldaptest starts a private OpenLDAP slapd for tests and benchmarks: mdb backend,
// a generated slapd.conf in a temporary folder, loopback ports, ldap:// and ldaps:// with a
// CA and server certificate made in Go. Without slapd, Start fails the test when CI=true
// and skips it otherwise.
//
// The directory holds dc=example,dc=com, ou=people under it, and a non-root reader
// (ReaderDN/ReaderPassword) to which size limits apply (the root DN has none).
package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/roster-dev/roster/reconcile/directory"
)

// SlapdPath and SlapaddPath are where the OpenLDAP binaries are looked for.
var (
	SlapdPath   = "/usr/sbin/slapd"
	SlapaddPath = "/usr/sbin/slapadd"
)

// Options configure a server.
type Options struct {
	// SizeLimit is slapd's global sizelimit (0 = slapd's default of 500, which paged
	// searches by a non-root user also obey in total).
	SizeLimit int
	// PagedUnlimited, with SizeLimit, lets paged searches return any number of entries in
	// total (size.prtotal=unlimited) while other searches keep the limit.
	PagedUnlimited bool
	// LDIF, when set, is slapadd-ed (after the bootstrap entries) before the first start.
	LDIF []byte
	// LDIFFile, when set, is a file slapadd-ed (after LDIF) before the first start.
	LDIFFile string
	// Index lists extra "index" lines (e.g. "uid eq").
	Index []string
	// Syncprov loads the syncprov overlay on the database, so RFC 4533 content
	// synchronization (refreshOnly, refreshAndPersist) works against it.
	Syncprov bool
	// SessionLog, with Syncprov, keeps a session log of that many operations (syncprov-
	// sessionlog), so a refresh from a recent cookie reports deletions as delete states;
	// 0 = none, and a refresh reports deletions through its present phase.
	SessionLog int
}

// Server is a running slapd.
type Server struct {
	URL            string // ldap://127.0.0.1:port
	LDAPSURL       string // ldaps://127.0.0.1:port
	BaseDN         string
	AdminDN        string // the root DN: no limits
	AdminPassword  string
	ReaderDN       string // an ordinary entry that can bind and read; limits apply
	ReaderPassword string
	CAFile         string // PEM of the CA that signed the server certificate
	Dir            string // the server's private folder (config, data, certificates)

	tb      testing.TB
	conf    string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     *bytes.Buffer
	waitErr error
}

// Start starts a slapd, stopped automatically when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if _, err := os.Stat(SlapdPath); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("ldaptest: slapd not found at %s (install slapd and ldap-utils): %v", SlapdPath, err)
		}
		tb.Skipf("ldaptest: slapd not found at %s; install slapd to run this test", SlapdPath)
	}
	dir := tb.TempDir()
	s := &Server{
		BaseDN:         "dc=example,dc=com",
		AdminDN:        "cn=admin,dc=example,dc=com",
		AdminPassword:  "admin-secret",
		ReaderDN:       "cn=reader,dc=example,dc=com",
		ReaderPassword: "reader-secret",
		Dir:            dir,
		tb:             tb,
	}
	if err := s.setup(opts); err != nil {
		tb.Fatalf("ldaptest: %v", err)
	}
	if opts.LDIF != nil {
		p := filepath.Join(dir, "initial.ldif")
		if err := os.WriteFile(p, opts.LDIF, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := s.slapadd(p); err != nil {
			tb.Fatalf("ldaptest: %v", err)
		}
	}
	if opts.LDIFFile != "" {
		if err := s.slapadd(opts.LDIFFile); err != nil {
			tb.Fatalf("ldaptest: %v", err)
		}
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.pickPorts(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("ldaptest: start slapd: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) setup(opts Options) error {
	if err := s.writeCerts(); err != nil {
		return err
	}
	data := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	var c strings.Builder
	for _, sch := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&c, "include /etc/ldap/schema/%s.schema\n", sch)
	}
	fmt.Fprintf(&c, "pidfile %s\nargsfile %s\n", filepath.Join(s.Dir, "slapd.pid"), filepath.Join(s.Dir, "slapd.args"))
	c.WriteString("modulepath /usr/lib/ldap\nmoduleload back_mdb\n")
	if opts.Syncprov {
		c.WriteString("moduleload syncprov\n")
	}
	fmt.Fprintf(&c, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
		s.CAFile, filepath.Join(s.Dir, "server.pem"), filepath.Join(s.Dir, "server-key.pem"))
	if opts.SizeLimit > 0 {
		if opts.PagedUnlimited {
			fmt.Fprintf(&c, "sizelimit size=%d size.prtotal=unlimited\n", opts.SizeLimit)
		} else {
			fmt.Fprintf(&c, "sizelimit %d\n", opts.SizeLimit)
		}
	} else {
		c.WriteString("sizelimit unlimited\n")
	}
	c.WriteString("database mdb\nmaxsize 8589934592\n")
	fmt.Fprintf(&c, "suffix %q\nrootdn %q\nrootpw %s\ndirectory %s\n", s.BaseDN, s.AdminDN, s.AdminPassword, data)
	c.WriteString("index objectClass eq\n")
	for _, ix := range opts.Index {
		fmt.Fprintf(&c, "index %s\n", ix)
	}
	if opts.Syncprov {
		c.WriteString("index entryUUID,entryCSN eq\n")
	}
	c.WriteString("access to attrs=userPassword by self write by anonymous auth by * none\n")
	c.WriteString("access to * by * read\n")
	if opts.Syncprov {
		// The checkpoint writes contextCSN to the suffix entry every operation, so a restart
		// (even after kill -9) keeps the cookie valid.
		c.WriteString("overlay syncprov\nsyncprov-checkpoint 1 1\n")
		if opts.SessionLog > 0 {
			fmt.Fprintf(&c, "syncprov-sessionlog %d\n", opts.SessionLog)
		}
	}
	s.conf = filepath.Join(s.Dir, "slapd.conf")
	if err := os.WriteFile(s.conf, []byte(c.String()), 0o600); err != nil {
		return err
	}
	boot := fmt.Sprintf(`dn: %[1]s
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,%[1]s
objectClass: organizationalUnit
ou: people

dn: %[2]s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: %[3]s
`, s.BaseDN, s.ReaderDN, s.ReaderPassword)
	p := filepath.Join(s.Dir, "bootstrap.ldif")
	if err := os.WriteFile(p, []byte(boot), 0o600); err != nil {
		return err
	}
	return s.slapadd(p)
}

func (s *Server) slapadd(path string) error {
	out, err := exec.Command(SlapaddPath, "-q", "-f", s.conf, "-l", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("slapadd %s: %w: %s", filepath.Base(path), err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) pickPorts() error {
	p1, err := freePort()
	if err != nil {
		return err
	}
	p2, err := freePort()
	if err != nil {
		return err
	}
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(p1)
	s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(p2)
	return nil
}

// start runs slapd in the foreground (-d 0) and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("already running")
	}
	cmd := exec.Command(SlapdPath, "-f", s.conf, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.cmd, s.done, s.log = cmd, done, log
	go func() { s.waitErr = cmd.Wait(); close(done) }()
	addr := strings.TrimPrefix(s.URL, "ldap://")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("slapd exited: %v: %s", s.waitErr, log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stopLocked(syscall.SIGKILL)
	return fmt.Errorf("slapd did not listen on %s within 15s: %s", addr, log.String())
}

func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Stop shuts slapd down cleanly (SIGTERM); it is a no-op when it is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
}

// Kill stops slapd abruptly (SIGKILL), as a crash or a dropped connection would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

// Restart stops slapd if it runs and starts it again on the same ports and data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.tb.Fatalf("ldaptest: restart slapd: %v", err)
	}
}

// PID returns slapd's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// SlapAdd loads an LDIF file offline with slapadd (fast for large files): slapd is stopped
// for the load and restarted afterwards if it was running.
func (s *Server) SlapAdd(path string) {
	s.tb.Helper()
	running := s.PID() != 0
	s.Stop()
	if err := s.slapadd(path); err != nil {
		s.tb.Fatalf("ldaptest: %v", err)
	}
	if running {
		if err := s.start(); err != nil {
			s.tb.Fatalf("ldaptest: restart slapd after slapadd: %v", err)
		}
	}
}

// Add adds the content records of an LDIF text over LDAP as the root DN.
func (s *Server) Add(ldif string) {
	s.tb.Helper()
	recs, err := directory.ParseLDIF([]byte(ldif))
	if err != nil {
		s.tb.Fatalf("ldaptest: add: %v", err)
	}
	c := s.Conn()
	defer c.Close()
	for _, r := range recs {
		req := ldap.NewAddRequest(r.DN, nil)
		for _, a := range r.Attrs {
			req.Attribute(a.Name, a.Values)
		}
		if err := c.Add(req); err != nil {
			s.tb.Fatalf("ldaptest: add %s: %v", r.DN, err)
		}
	}
}

// Conn returns a connection bound as the root DN; the caller closes it.
func (s *Server) Conn() *ldap.Conn {
	s.tb.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		s.tb.Fatalf("ldaptest: dial: %v", err)
	}
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		c.Close()
		s.tb.Fatalf("ldaptest: bind: %v", err)
	}
	return c
}

// Log returns what slapd has written so far (for failure messages).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func (s *Server) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ldaptest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	files := []struct {
		name, typ string
		der       []byte
	}{
		{"ca.pem", "CERTIFICATE", caDER},
		{"server.pem", "CERTIFICATE", der},
		{"server-key.pem", "EC PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(s.Dir, f.name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// WriteOtherCA writes the PEM of a freshly made CA that did not sign the server's
// certificate, for tests of verification failures, and returns its path.
func WriteOtherCA(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}
