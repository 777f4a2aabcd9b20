package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"

	"github.com/roster-dev/roster/reconcile/daemon"
)

// Status is what /api/status and `roster status --format json` show.
type Status = daemon.Status

// PendingInvite is an invitation of the status.
type PendingInvite = daemon.PendingInvite

// listenAddrs receives serve's HTTP address per config path (serveListening hook).
var listenAddrs sync.Map // config path → chan string

func init() {
	serveListening = func(configPath, addr string) {
		if ch, ok := listenAddrs.Load(configPath); ok {
			select {
			case ch.(chan string) <- addr:
			default:
			}
		}
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gitRepo is a bare repository and a work clone that pushes to it.
type gitRepo struct {
	t          *testing.T
	bare, work string
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
		"-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newGitRepo makes a bare repo holding a copy of the shipped examples/ at its first commit.
func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is required: %v", err)
	}
	root := t.TempDir()
	r := &gitRepo{t: t, bare: filepath.Join(root, "remote.git"), work: filepath.Join(root, "work")}
	runGit(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	runGit(t, root, "clone", "-q", r.bare, r.work)
	runGit(t, r.work, "checkout", "-q", "-B", "main")
	copyTree(t, filepath.Join("..", "..", "examples"), r.work)
	return r
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// write sets files (path → content) in the work tree; "" deletes nothing, it writes empty.
func (r *gitRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commitPush commits everything in the work tree, pushes, and returns the commit.
func (r *gitRepo) commitPush(msg string) string {
	r.t.Helper()
	runGit(r.t, r.work, "add", "-A")
	runGit(r.t, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	runGit(r.t, r.work, "push", "-q", "origin", "HEAD:main")
	return runGit(r.t, r.work, "rev-parse", "HEAD")
}

func (r *gitRepo) read(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.work, filepath.FromSlash(name)))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

// serveConfig writes a config.cue for serve into a temp folder and returns its path.
type serveConfig struct {
	URL        string
	Interval   string
	SecretEnv  string
	MaxEmails  int
	ListenAddr string
	NoMail     bool   // no mail_dir (and no SMTP): emails stay in the outbox
	LDAPURL    string // the directory corp is this LDAP server instead of directory.ldif
	Extra      string // appended to config.cue (role, platforms)
}

func writeServeConfig(t *testing.T, c serveConfig) (cfgPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	if c.Interval == "" {
		c.Interval = "200ms"
	}
	if c.MaxEmails == 0 {
		c.MaxEmails = 1000
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:0"
	}
	secret := ""
	if c.SecretEnv != "" {
		secret = fmt.Sprintf(", webhook_secret_env: %q", c.SecretEnv)
	}
	mailDir := fmt.Sprintf("mail_dir: %q\n", filepath.Join(dir, "outbox"))
	if c.NoMail {
		mailDir = ""
	}
	corp := `ldif: "directory.ldif"`
	if c.LDAPURL != "" {
		corp = fmt.Sprintf(`url: %q, timeout: "2s"`, c.LDAPURL)
	}
	cfg := fmt.Sprintf(`repo: {url: %q, branch: "main", path: ".", interval: %q%s}
state: {driver: "sqlite", dsn: %q}
directories: corp: {%s, base_dn: "dc=example,dc=com"}
%shttp: listen: %q
safety: {max_delete_fraction: 0.25, max_delete_count: 500, max_emails: %d}
%s`, c.URL, c.Interval, secret, filepath.Join(dir, "roster.db"), corp, mailDir, c.ListenAddr, c.MaxEmails, c.Extra)
	cfgPath = filepath.Join(dir, "config.cue")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dir
}

// daemonUnderTest is a `roster serve` running in a goroutine.
type daemonUnderTest struct {
	t      *testing.T
	addr   string
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServe runs `roster serve --config cfgPath` and waits for its HTTP address.
func startServe(t *testing.T, cfgPath string, extra ...string) *daemonUnderTest {
	t.Helper()
	ch := make(chan string, 1)
	listenAddrs.Store(cfgPath, ch)
	t.Cleanup(func() { listenAddrs.Delete(cfgPath) })
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonUnderTest{t: t, log: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		var out syncBuffer
		d.done <- Run(ctx, append([]string{"serve", "--config", cfgPath, "--log-level", "debug"}, extra...), &out, d.log)
	}()
	select {
	case d.addr = <-ch:
	case err := <-d.done:
		cancel()
		t.Fatalf("serve exited before listening: %v\n%s", err, d.log)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("serve did not listen within 15s\n%s", d.log)
	}
	t.Cleanup(func() { d.stop() })
	return d
}

// stop cancels serve (as SIGTERM does) and returns what Run returned.
func (d *daemonUnderTest) stop() error {
	d.cancel()
	select {
	case err, ok := <-d.done:
		if ok {
			close(d.done)
		}
		return err
	case <-time.After(20 * time.Second):
		d.t.Errorf("serve did not stop within 20s\n%s", d.log)
		return nil
	}
}

func (d *daemonUnderTest) url(p string) string { return "http://" + d.addr + p }

func (d *daemonUnderTest) get(p string) (int, string) {
	d.t.Helper()
	resp, err := http.Get(d.url(p))
	if err != nil {
		d.t.Fatalf("GET %s: %v", p, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemonUnderTest) status() *Status {
	d.t.Helper()
	code, body := d.get("/api/status")
	if code != http.StatusOK {
		d.t.Fatalf("/api/status: %d %s", code, body)
	}
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		d.t.Fatalf("/api/status: %v\n%s", err, body)
	}
	if s.Daemon == nil {
		d.t.Fatalf("/api/status has no daemon section:\n%s", body)
	}
	return &s
}

// waitStatus polls /api/status until cond holds or timeout passes.
func (d *daemonUnderTest) waitStatus(what string, timeout time.Duration, cond func(*Status) bool) *Status {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := d.status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(s, "", "  ")
			d.t.Fatalf("timed out after %v waiting for %s; status:\n%s\nlog:\n%s", timeout, what, js, d.log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (d *daemonUnderTest) hook(sig string, body []byte) int {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.url("/hooks/git"), bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("POST /hooks/git: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// openDB opens the state database read-only, next to the daemon.
func openDB(t *testing.T, path string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(t *testing.T, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func queryString(t *testing.T, db *sqlx.DB, q string, args ...any) string {
	t.Helper()
	var s string
	if err := db.Get(&s, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}
