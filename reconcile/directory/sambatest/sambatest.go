// Package sambatest starts a private Samba Active Directory domain controller for tests:
// the real DirSync control, uSNChanged, highestCommittedUSN, invocationId, objectGUID,
// tombstones and userAccountControl of AD, served by Samba's own LDAP server.
//
// The domain AD.EXAMPLE.TEST (NetBIOS ADEX) is provisioned once per machine and Samba
// version into the user's cache folder (samba-tool domain provision takes ~12 s, 7 s of
// CPU) with an ordinary account "reader" beside Administrator; each Start copies that
// provisioned database into a temporary folder (0.2 s) and runs `samba -i -M single` with
// only its LDAP service on a loopback address of its own (127.x.y.z, port 389: Samba's LDAP
// port is not configurable, so each server gets its own address), ready in ~2-4 s.
//
// Samba needs root (it binds port 389 and sets file ownership). Without the binaries, or
// as another user, Start fails the test when CI=true and skips it otherwise.
package sambatest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Paths of the Samba binaries.
var (
	SambaPath     = "/usr/sbin/samba"
	SambaToolPath = "/usr/bin/samba-tool"
)

// The provisioned domain.
const (
	Realm          = "AD.EXAMPLE.TEST"
	BaseDN         = "DC=ad,DC=example,DC=test"
	AdminBind      = "Administrator@ad.example.test" // may use DirSync (Domain Admins)
	AdminPassword  = "Adm1n-Secret!"
	ReaderBind     = "reader@ad.example.test" // an ordinary user: no Replicating Directory Changes
	ReaderPassword = "Read3r-Secret!"
)

// Server is a running Samba AD DC.
type Server struct {
	URL  string // ldap://127.x.y.z
	Addr string // its loopback address
	Dir  string // its private folder (smb.conf, database, log)

	tb   testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	out  string // samba's stdout and stderr
	once sync.Once
}

// Start starts a Samba AD DC, stopped when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if err := usable(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("sambatest: %v (.ci/install-deps installs samba, samba-ad-dc and samba-ad-provision)", err)
		}
		tb.Skipf("sambatest: %v; install samba, samba-ad-dc and samba-ad-provision and run as root for this test", err)
	}
	start := time.Now()
	prov, err := provisioned()
	if err != nil {
		tb.Fatalf("sambatest: %v", err)
	}
	s := &Server{Dir: tb.TempDir(), tb: tb}
	if out, err := exec.Command("cp", "-a", prov+"/.", s.Dir).CombinedOutput(); err != nil {
		tb.Fatalf("sambatest: copy the provisioned domain: %v: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		addr, aerr := freeAddr()
		if aerr != nil {
			tb.Fatalf("sambatest: %v", aerr)
		}
		if err = s.start(addr); err == nil || attempt == 4 {
			break
		}
	}
	if err != nil {
		tb.Fatalf("sambatest: %v", err)
	}
	tb.Cleanup(s.Stop)
	tb.Logf("sambatest: Samba AD DC at %s ready in %v", s.URL, time.Since(start).Round(time.Millisecond))
	return s
}

// usable says why Samba cannot run here, if it cannot.
func usable() error {
	for _, p := range []string{SambaPath, SambaToolPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s not found: %w", p, err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("samba needs root to bind port 389")
	}
	return nil
}

var (
	provOnce sync.Once
	provDir  string
	provErr  error
)

// provisioned returns the folder of the provisioned domain, provisioning it the first
// time on this machine for this Samba version.
func provisioned() (string, error) {
	provOnce.Do(func() { provDir, provErr = provision() })
	return provDir, provErr
}

func provision() (string, error) {
	ver, err := exec.Command(SambaPath, "-V").Output()
	if err != nil {
		return "", fmt.Errorf("samba -V: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	name := "roster-sambatest-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' {
			return r
		}
		return '-'
	}, strings.TrimSpace(string(ver))) + "-1"
	final := filepath.Join(cache, name)
	if _, err := os.Stat(filepath.Join(final, "private", "sam.ldb")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cache, name+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	run := func(args ...string) error {
		cmd := exec.Command(SambaToolPath, args...)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("samba-tool %s: %w: %s", args[0]+" "+args[1], err, tail(out))
		}
		return nil
	}
	if err := run("domain", "provision", "--targetdir="+tmp, "--realm="+Realm, "--domain=ADEX",
		"--server-role=dc", "--dns-backend=NONE", "--adminpass="+AdminPassword,
		"--option=interfaces=lo", "--option=bind interfaces only=yes"); err != nil {
		return "", err
	}
	// The ordinary account, written into the database directly (no server runs yet).
	if err := run("user", "create", "reader", ReaderPassword, "-H", filepath.Join(tmp, "private", "sam.ldb"),
		"-s", filepath.Join(tmp, "etc", "smb.conf")); err != nil {
		return "", err
	}
	// Another package's test may have provisioned meanwhile: either copy serves.
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, "private", "sam.ldb")); serr != nil {
			return "", fmt.Errorf("keep the provisioned domain: %w", err)
		}
	}
	return final, nil
}

// start writes smb.conf for the loopback address addr and runs samba until its LDAP
// server answers.
func (s *Server) start(addr string) error {
	s.Addr, s.URL = addr, "ldap://"+addr
	run := filepath.Join(s.Dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(s.Dir, "etc", "smb.conf")
	var c strings.Builder
	c.WriteString("[global]\n")
	for _, kv := range [][2]string{
		{"netbios name", "ROSTERDC"},
		{"realm", Realm},
		{"workgroup", "ADEX"},
		{"server role", "active directory domain controller"},
		{"server services", "ldap"},     // no SMB, RPC, KDC, DNS, replication: only what the tests read
		{"dcerpc endpoint servers", ""}, // nor their endpoints
		{"interfaces", addr + "/8"},
		{"bind interfaces only", "yes"},
		{"ldap server require strong auth", "no"}, // simple binds over ldap://, as roster's tests make
		{"private dir", filepath.Join(s.Dir, "private")},
		{"state directory", filepath.Join(s.Dir, "state")},
		{"cache directory", filepath.Join(s.Dir, "cache")},
		{"lock directory", s.Dir},
		{"binddns dir", filepath.Join(s.Dir, "bind-dns")},
		{"pid directory", run},
		{"ncalrpc dir", filepath.Join(run, "ncalrpc")},
		{"winbindd socket directory", filepath.Join(run, "winbindd")},
		{"ntp signd socket directory", filepath.Join(run, "ntp_signd")},
		{"log file", filepath.Join(s.Dir, "log.%m")},
		{"log level", "1"},
	} {
		fmt.Fprintf(&c, "\t%s = %s\n", kv[0], kv[1])
	}
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		return err
	}
	s.out = filepath.Join(s.Dir, "samba.out")
	out, err := os.Create(s.out)
	if err != nil {
		return err
	}
	defer out.Close() // samba holds its own descriptor
	cmd := exec.Command(SambaPath, "-i", "-M", "single", "-s", conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so Stop ends whatever it started
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start samba: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("samba exited before answering on %s: %s", addr, tail(s.log()))
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("samba did not answer on %s within 60 s: %v: %s", addr, err, tail(s.log()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping binds as the reader and reads the root DSE.
func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	if err := c.Bind(ReaderBind, ReaderPassword); err != nil {
		return err
	}
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN"}, nil))
	return err
}

// freeAddr picks a loopback address whose LDAP ports nothing listens on.
func freeAddr() (string, error) {
	var b [3]byte
	for range 20 {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.%d.%d.%d", 100+int(b[0])%150, b[1], 1+int(b[2])%250)
		free := true
		for _, port := range []string{"389", "636", "3268", "3269"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(addr, port))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return addr, nil
		}
	}
	return "", errors.New("no free loopback address for samba's LDAP ports")
}

// Admin returns a connection bound as Administrator, closed when the test ends.
func (s *Server) Admin(tb testing.TB) *ldap.Conn {
	tb.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		tb.Fatalf("sambatest: dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Bind(AdminBind, AdminPassword); err != nil {
		tb.Fatalf("sambatest: bind as administrator: %v", err)
	}
	return c
}

// Stop ends samba (SIGTERM to its process group, SIGKILL after 10 s).
func (s *Server) Stop() { s.once.Do(s.stop) }

// Restart stops samba and starts it again on the same address and database: the DC keeps
// its invocationId and USNs, as a restarted domain controller does.
func (s *Server) Restart() {
	s.tb.Helper()
	s.stop()
	if err := s.start(s.Addr); err != nil {
		s.tb.Fatalf("sambatest: restart: %v", err)
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
}

// log is what samba printed.
func (s *Server) log() []byte {
	b, _ := os.ReadFile(s.out)
	return b
}

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// PID is samba's process id (for CPU figures from /proc).
func (s *Server) PID() int { return s.cmd.Process.Pid }
