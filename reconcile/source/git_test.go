package source

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/roster-dev/roster/schema"
)

// remote is a bare repository made with the git CLI plus a work clone to commit from.
type remote struct {
	t    testing.TB
	bare string
	work string
}

func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRemote(t testing.TB) *remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git CLI is needed for these tests: %v", err)
	}
	root := t.TempDir()
	r := &remote{t: t, bare: filepath.Join(root, "remote.git"), work: filepath.Join(root, "work")}
	gitCmd(t, root, "init", "-q", "--bare", "-b", "main", r.bare)
	gitCmd(t, root, "init", "-q", "-b", "main", r.work)
	gitCmd(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

// commit writes files (path → content; "" deletes; "->target" makes a symlink),
// commits them on branch and pushes; it returns the commit hash.
func (r *remote) commit(branch string, files map[string]string) string {
	t := r.t
	t.Helper()
	gitCmd(t, r.work, "checkout", "-q", "-B", branch)
	for p, content := range files {
		full := filepath.Join(r.work, filepath.FromSlash(p))
		_ = os.Remove(full)
		if content == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitCmd(t, r.work, "add", "-A")
	gitCmd(t, r.work, "commit", "-q", "--allow-empty", "-m", "change")
	gitCmd(t, r.work, "push", "-q", "-f", "origin", branch)
	return gitCmd(t, r.work, "rev-parse", "HEAD")
}

func readAll(t *testing.T, fsys fs.FS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func TestGitCloneFetchTree(t *testing.T) {
	r := newRemote(t)
	c1 := r.commit("main", map[string]string{
		"settings.yaml":        "a: 1\n",
		"templates/staff.yaml": "name: staff\n",
		"templates/x/y.txt":    "deep\n",
		"link.yaml":            "->settings.yaml",
	})

	cases := []struct{ name, url, base string }{
		{"absolute path", r.bare, ""},
		{"relative path", "remote.git", filepath.Dir(r.bare)},
		{"file url", "file://" + r.bare, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGit(schema.RepoConfig{URL: tc.url}, tc.base, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != c1 {
				t.Fatalf("commit = %s, want %s", got, c1)
			}
			tree, err := g.Tree(got)
			if err != nil {
				t.Fatal(err)
			}
			if s := readAll(t, tree, "settings.yaml"); s != "a: 1\n" {
				t.Fatalf("settings.yaml = %q", s)
			}
			if s := readAll(t, tree, "link.yaml"); s != "a: 1\n" {
				t.Fatalf("symlink read = %q", s)
			}
			if err := fstest.TestFS(tree, "settings.yaml", "templates/staff.yaml", "templates/x/y.txt", "link.yaml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGitNewCommitUnchangedAndReclone(t *testing.T) {
	r := newRemote(t)
	c1 := r.commit("main", map[string]string{"a.txt": "one\n"})
	data := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := NewGit(schema.RepoConfig{URL: r.bare, Branch: "main"}, "", data, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := g.Fetch(ctx); err != nil || got != c1 {
		t.Fatalf("first fetch = %s, %v; want %s", got, err, c1)
	}
	// Unchanged: same commit again.
	if got, err := g.Fetch(ctx); err != nil || got != c1 {
		t.Fatalf("unchanged fetch = %s, %v; want %s", got, err, c1)
	}
	c2 := r.commit("main", map[string]string{"a.txt": "two\n", "b.txt": "new\n"})
	got, err := g.Fetch(ctx)
	if err != nil || got != c2 {
		t.Fatalf("fetch after commit = %s, %v; want %s", got, err, c2)
	}
	// Both commits stay readable.
	t1, err := g.Tree(c1)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := g.Tree(c2)
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, t1, "a.txt") != "one\n" || readAll(t, t2, "a.txt") != "two\n" {
		t.Fatal("trees of the two commits differ from what was committed")
	}
	if _, err := fs.Stat(t1, "b.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("b.txt at c1: %v, want not exist", err)
	}
	if !strings.Contains(logs.String(), "new commit") {
		t.Fatalf("no 'new commit' log line:\n%s", logs.String())
	}

	// A new Git on the same data folder reuses the clone (no re-clone).
	markerBefore, _ := os.Stat(filepath.Join(data, cloneDirName, markerName))
	g2, _ := NewGit(schema.RepoConfig{URL: r.bare}, "", data, nil)
	if got, err := g2.Fetch(ctx); err != nil || got != c2 {
		t.Fatalf("reopen fetch = %s, %v", got, err)
	}
	markerAfter, _ := os.Stat(filepath.Join(data, cloneDirName, markerName))
	if !markerBefore.ModTime().Equal(markerAfter.ModTime()) {
		t.Fatal("clone was made anew though url and branch are unchanged")
	}

	// Another branch on the same data folder: cloned anew, yields that branch.
	c3 := r.commit("prod", map[string]string{"a.txt": "prod\n"})
	g3, _ := NewGit(schema.RepoConfig{URL: r.bare, Branch: "prod"}, "", data, logger)
	got, err = g3.Fetch(ctx)
	if err != nil || got != c3 {
		t.Fatalf("prod fetch = %s, %v; want %s", got, err, c3)
	}
	tp, _ := g3.Tree(c3)
	if readAll(t, tp, "a.txt") != "prod\n" {
		t.Fatal("wrong content on branch prod")
	}
	if !strings.Contains(logs.String(), "cloning again") {
		t.Fatalf("branch change did not re-clone:\n%s", logs.String())
	}
	repo, err := git.PlainOpen(filepath.Join(data, cloneDirName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true); err == nil {
		t.Fatal("clone for prod still has origin/main: it was not made anew")
	}
}

func TestGitSubPathAndBranchErrors(t *testing.T) {
	r := newRemote(t)
	c := r.commit("main", map[string]string{
		"config/settings.yaml": "sub\n",
		"config/t/a.yaml":      "a\n",
		"secret.txt":           "outside\n",
		"config/up.txt":        "->../secret.txt",
		"config/abs.txt":       "->/etc/passwd",
		"config/loop":          "->loop",
	})
	g, err := NewGit(schema.RepoConfig{URL: r.bare, Path: "./config/"}, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Fetch(context.Background())
	if err != nil || got != c {
		t.Fatalf("fetch = %s, %v", got, err)
	}
	tree, err := g.Tree(got)
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, tree, "settings.yaml") != "sub\n" {
		t.Fatal("sub-path not applied")
	}
	for _, name := range []string{"../secret.txt", "/secret.txt", "t/../../secret.txt", "up.txt", "abs.txt", "loop", "secret.txt", "settings.yaml/x"} {
		if _, err := fs.ReadFile(tree, name); err == nil {
			t.Errorf("read %q succeeded; must not leave the sub-path", name)
		}
	}
	ents, err := fs.ReadDir(tree, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "abs.txt,loop,settings.yaml,t,up.txt" {
		t.Fatalf("ReadDir = %v", names)
	}

	// Invalid sub-paths are refused up front; a missing one when reading the tree.
	if _, err := NewGit(schema.RepoConfig{URL: r.bare, Path: "../x"}, "", t.TempDir(), nil); err == nil {
		t.Fatal("path ../x accepted")
	}
	gm, _ := NewGit(schema.RepoConfig{URL: r.bare, Path: "nope"}, "", t.TempDir(), nil)
	if _, err := gm.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := gm.Tree(c); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing sub-path: %v", err)
	}

	// A missing branch says so.
	gb, _ := NewGit(schema.RepoConfig{URL: r.bare, Branch: "nosuch"}, "", t.TempDir(), nil)
	if _, err := gb.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), `branch "nosuch" not found`) {
		t.Fatalf("missing branch: %v", err)
	}
	if _, err := g.Tree("not-a-hash"); err == nil {
		t.Fatal("Tree accepted a non-hash")
	}
}

func TestGitCredentialsNeverShown(t *testing.T) {
	t.Setenv("ROSTER_TEST_TOKEN", "tok3nvalue")
	cases := []struct {
		name string
		cfg  schema.RepoConfig
	}{
		{"userinfo", schema.RepoConfig{URL: "https://user:secret@127.0.0.1:1/x.git"}},
		{"query and env", schema.RepoConfig{URL: "https://127.0.0.1:1/x.git?token=secret",
			Auth: &schema.RepoAuth{Username: "u", PasswordEnv: "ROSTER_TEST_TOKEN"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			g, err := NewGit(tc.cfg, "", t.TempDir(), logger)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = g.Fetch(ctx)
			if err == nil {
				t.Fatal("fetch from 127.0.0.1:1 succeeded")
			}
			t.Logf("error: %v", err)
			all := err.Error() + "\n" + logs.String() + "\n" + g.String()
			for _, secret := range []string{"secret", "tok3nvalue"} {
				if strings.Contains(all, secret) {
					t.Fatalf("%q leaked: %s", secret, all)
				}
			}
			if !strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Fatalf("error does not name the host: %v", err)
			}
		})
	}
}

func TestGitPasswordEnvMissing(t *testing.T) {
	_, err := NewGit(schema.RepoConfig{URL: "https://example.com/x.git",
		Auth: &schema.RepoAuth{PasswordEnv: "ROSTER_TEST_UNSET_VAR"}}, "", t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "ROSTER_TEST_UNSET_VAR") {
		t.Fatalf("err = %v", err)
	}
}

func TestGitSSHNeedsKnownHosts(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	key := filepath.Join(home, "id")
	// Any file will do: the known_hosts check comes first.
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"git@git.example.com:org/repo.git", "ssh://git@git.example.com:2222/org/repo.git"} {
		_, err := NewGit(schema.RepoConfig{URL: url, Auth: &schema.RepoAuth{SSHKeyFile: key}}, "", t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "known_hosts") || !strings.Contains(err.Error(), filepath.Join(home, ".ssh", "known_hosts")) {
			t.Fatalf("%s: err = %v, want a clear known_hosts error", url, err)
		}
	}
	// With a known_hosts file, a bad key file is the next clear error.
	kh := filepath.Join(home, "kh")
	if err := os.WriteFile(kh, []byte("git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewGit(schema.RepoConfig{URL: "git@git.example.com:org/repo.git",
		Auth: &schema.RepoAuth{SSHKeyFile: key, KnownHostsFile: kh}}, "", t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "ssh key") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestUnsupportedScheme(t *testing.T) {
	if _, err := NewGit(schema.RepoConfig{URL: "ftp://example.com/x.git"}, "", t.TempDir(), nil); err == nil {
		t.Fatal("ftp accepted")
	}
}

func TestScrub(t *testing.T) {
	cases := []struct{ in, want string }{
		{"fetch https://user:pass@host/x.git: boom", "fetch https://***@host/x.git: boom"},
		{"https://tok@github.com/o/r", "https://***@github.com/o/r"},
		{"ssh://git@host/x", "ssh://git@host/x"},
		{"ssh://git:pw@host/x", "ssh://***@host/x"},
		{"git@github.com:o/r.git", "git@github.com:o/r.git"},
		{"https://h/x?token=abc&b=1", "https://h/x?token=***&b=1"},
		{"https://h/x?a=1&access_token=abc#f", "https://h/x?a=1&access_token=***#f"},
		{"no url here", "no url here"},
		{`"http://a:b@h" and "https://c:d@i/p"`, `"http://***@h" and "https://***@i/p"`},
	}
	for _, c := range cases {
		if got := Scrub(c.in); got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDir(t *testing.T) {
	ctx := context.Background()
	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDir(plain)
	if c, err := d.Fetch(ctx); err != nil || c != "" {
		t.Fatalf("plain folder fetch = %q, %v", c, err)
	}
	tree, err := d.Tree("")
	if err != nil || readAll(t, tree, "a.txt") != "x" {
		t.Fatalf("tree: %v", err)
	}

	// A folder inside a git work tree reports HEAD.
	r := newRemote(t)
	c := r.commit("main", map[string]string{"examples/a.txt": "y"})
	d = NewDir(filepath.Join(r.work, "examples"))
	if got, err := d.Fetch(ctx); err != nil || got != c {
		t.Fatalf("work tree fetch = %q, %v; want %s", got, err, c)
	}

	if _, err := NewDir(filepath.Join(plain, "missing")).Fetch(ctx); err == nil {
		t.Fatal("missing folder accepted")
	}

	// New picks Dir for a local folder that is not a repository, Git for a repository.
	s, err := New(schema.RepoConfig{URL: "examples"}, r.work, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Dir); !ok {
		t.Fatalf("New for a plain folder = %T, want *Dir", s)
	}
	s, err = New(schema.RepoConfig{URL: r.bare}, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Git); !ok {
		t.Fatalf("New for a bare repo = %T, want *Git", s)
	}
}

func BenchmarkFetchUnchanged(b *testing.B) {
	root := b.TempDir()
	bare := filepath.Join(root, "r.git")
	work := filepath.Join(root, "w")
	run := func(dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	run(root, "init", "-q", "--bare", "-b", "main", bare)
	run(root, "init", "-q", "-b", "main", work)
	for i := 0; i < 50; i++ {
		if err := os.WriteFile(filepath.Join(work, "f"+string(rune('a'+i%26))+".yaml"), []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
			b.Fatal(err)
		}
		run(work, "add", "-A")
		run(work, "commit", "-q", "-m", "c")
	}
	run(work, "push", "-q", bare, "main")
	g, err := NewGit(schema.RepoConfig{URL: bare}, "", b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGitConcurrentTreeAndFetch(t *testing.T) {
	r := newRemote(t)
	c1 := r.commit("main", map[string]string{"a.txt": "one\n", "d/b.txt": "b\n"})
	g, err := NewGit(schema.RepoConfig{URL: r.bare}, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	tree, err := g.Tree(c1)
	if err != nil {
		t.Fatal(err)
	}
	r.commit("main", map[string]string{"a.txt": "two\n"})
	done := make(chan error, 4)
	for i := 0; i < 3; i++ {
		go func() {
			for j := 0; j < 50; j++ {
				if b, err := fs.ReadFile(tree, "a.txt"); err != nil || string(b) != "one\n" {
					done <- errors.New("bad read of a pinned commit: " + string(b))
					return
				}
				if _, err := fs.ReadDir(tree, "d"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		for j := 0; j < 5; j++ {
			if _, err := g.Fetch(context.Background()); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
