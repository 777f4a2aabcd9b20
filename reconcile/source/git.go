package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/roster-dev/roster/schema"
)

// cloneDirName is the folder inside dataDir that holds the bare clone.
const cloneDirName = "repo.git"

// markerName is the file in the clone that records which URL and branch it was made for
// (as a hash, so a credential in the URL never lands on disk through us).
const markerName = "roster-source"

// largeObject is the size above which the clone's object store reads an object as a
// stream from its pack or loose file (go-git's LargeObjectThreshold) instead of
// decompressing it whole into memory, and so keeps it out of its object cache: a big file
// (an LDIF export, a user list) is then read through treeFS in blocks. Smaller objects are
// read whole and cached.
const largeObject = 1 << 20

// openStorage returns the object and reference store of the git folder dir (bare).
func openStorage(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{LargeObjectThreshold: largeObject})
}

// Git is a Source backed by a bare clone of a Git repository in a data folder.
// Fetch and Tree may be called from several goroutines.
type Git struct {
	url     string // as go-git sees it: absolute local path or URL
	shown   string // scrubbed, for logs and errors
	branch  string
	subPath string // cleaned, slash-separated; "." for the root
	dir     string // the bare clone
	auth    transport.AuthMethod
	secrets []string // values to scrub from errors besides URL credentials
	logger  *slog.Logger

	mu   sync.Mutex
	repo *git.Repository
	last string // last fetched commit, for logging changes
}

// NewGit returns a Git source for cfg. A relative local url resolves against baseDir;
// the clone lives in dataDir/repo.git. Credentials are read here, from the environment
// variable named by cfg.Auth.PasswordEnv and the files it names; nothing touches the
// network until Fetch.
//
// URLs: a local path, file://, http(s):// (username + password/token), ssh:// and
// scp-like user@host:path (key file, host keys checked against known_hosts). Local and
// file:// remotes use the git-upload-pack program of an installed git, like go-git does.
func NewGit(cfg schema.RepoConfig, baseDir string, dataDir string, logger *slog.Logger) (*Git, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" {
		return nil, errors.New("git source: repo.url is empty")
	}
	if dataDir == "" {
		return nil, errors.New("git source: no data folder for the clone")
	}
	g := &Git{
		url:    cfg.URL,
		branch: cfg.Branch,
		logger: logger,
		dir:    filepath.Join(dataDir, cloneDirName),
	}
	if g.branch == "" {
		g.branch = "main"
	}
	if !plumbing.NewBranchReferenceName(g.branch).IsBranch() || strings.ContainsAny(g.branch, " ~^:?*[\\") || strings.Contains(g.branch, "..") {
		return nil, fmt.Errorf("git source: invalid branch name %q", g.branch)
	}
	sub, err := cleanSubPath(cfg.Path)
	if err != nil {
		return nil, err
	}
	g.subPath = sub

	if isLocal(cfg.URL) {
		p := cfg.URL
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("git source: resolve %s: %w", cfg.URL, err)
		}
		g.url = abs
	}
	g.shown = Scrub(g.url)

	ep, err := transport.NewEndpoint(g.url)
	if err != nil {
		return nil, scrubErr("git source: parse url "+g.shown, err)
	}
	if ep.Password != "" {
		g.secrets = append(g.secrets, ep.Password)
	}
	switch ep.Protocol {
	case "file":
	case "http", "https":
		if err := g.httpAuth(cfg.Auth, ep); err != nil {
			return nil, err
		}
	case "ssh":
		if err := g.sshAuth(cfg.Auth, ep); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("git source: unsupported url scheme %q in %s (use a local path, file://, https://, ssh:// or user@host:path)", ep.Protocol, g.shown)
	}
	return g, nil
}

// cleanSubPath turns the configured sub-path into a clean slash path inside the repo.
func cleanSubPath(p string) (string, error) {
	if p == "" {
		return ".", nil
	}
	c := path.Clean(strings.ReplaceAll(p, "\\", "/"))
	c = strings.TrimPrefix(c, "./")
	if c == "/" {
		c = "."
	}
	if !fs.ValidPath(c) {
		return "", fmt.Errorf("git source: repo.path %q must be a relative path inside the repository", p)
	}
	return c, nil
}

func (g *Git) password(a *schema.RepoAuth) (string, error) {
	if a == nil || a.PasswordEnv == "" {
		return "", nil
	}
	v, ok := os.LookupEnv(a.PasswordEnv)
	if !ok || v == "" {
		return "", fmt.Errorf("git source: environment variable %s (repo.auth.password_env) is not set", a.PasswordEnv)
	}
	g.secrets = append(g.secrets, v)
	return v, nil
}

func (g *Git) httpAuth(a *schema.RepoAuth, ep *transport.Endpoint) error {
	pw, err := g.password(a)
	if err != nil {
		return err
	}
	user := ep.User
	if a != nil && a.Username != "" {
		user = a.Username
	}
	if pw == "" {
		pw = ep.Password
	}
	if pw == "" && user == "" {
		return nil // anonymous
	}
	if user == "" {
		user = "git" // token auth: hosts accept any non-empty user name
	}
	g.auth = &githttp.BasicAuth{Username: user, Password: pw}
	return nil
}

func (g *Git) sshAuth(a *schema.RepoAuth, ep *transport.Endpoint) error {
	user := ep.User
	if a != nil && a.Username != "" {
		user = a.Username
	}
	if user == "" {
		user = "git"
	}
	khFile := ""
	if a != nil {
		khFile = a.KnownHostsFile
	}
	if khFile == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("git source: no repo.auth.known_hosts_file and no home folder for ~/.ssh/known_hosts: %w", err)
		}
		khFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if _, err := os.Stat(khFile); err != nil {
		return fmt.Errorf("git source: ssh host keys are checked, but the known_hosts file %s cannot be read (set repo.auth.known_hosts_file; e.g. ssh-keyscan HOST > FILE, then verify it): %w", khFile, err)
	}
	db, err := gitssh.NewKnownHostsDb(khFile)
	if err != nil {
		return fmt.Errorf("git source: read known_hosts %s: %w", khFile, err)
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(port))
	helper := gitssh.HostKeyCallbackHelper{
		HostKeyCallback:   db.HostKeyCallback(),
		HostKeyAlgorithms: db.HostKeyAlgorithms(hostPort),
	}

	if a != nil && a.SSHKeyFile != "" {
		pass, err := g.password(a) // the key's passphrase, if any
		if err != nil {
			return err
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, pass)
		if err != nil {
			return scrubErr("git source: ssh key "+a.SSHKeyFile, err, g.secrets...)
		}
		keys.HostKeyCallbackHelper = helper
		g.auth = keys
		return nil
	}
	// No key file: use the ssh agent (SSH_AUTH_SOCK), still checking host keys.
	agent, err := gitssh.NewSSHAgentAuth(user)
	if err != nil {
		return fmt.Errorf("git source: no repo.auth.ssh_key_file and no ssh agent: %w", err)
	}
	agent.HostKeyCallbackHelper = helper
	g.auth = agent
	return nil
}

func (g *Git) marker() string {
	sum := sha256.Sum256([]byte(g.url + "\n" + g.branch))
	return hex.EncodeToString(sum[:]) + "\n"
}

func (g *Git) remoteRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", g.branch)
}

// open opens the clone, making it anew when it is missing, broken, or was made for
// another URL or branch. Called with g.mu held.
func (g *Git) open() (*git.Repository, error) {
	if g.repo != nil {
		return g.repo, nil
	}
	want := g.marker()
	if have, err := os.ReadFile(filepath.Join(g.dir, markerName)); err == nil && string(have) == want {
		if repo, err := git.Open(openStorage(g.dir), nil); err == nil {
			g.repo = repo
			return repo, nil
		}
		g.logger.Warn("git source: clone unreadable, cloning again", "dir", g.dir)
	} else if _, statErr := os.Stat(g.dir); statErr == nil {
		g.logger.Info("git source: url or branch changed, cloning again", "url", g.shown, "branch", g.branch)
	}
	if err := os.RemoveAll(g.dir); err != nil {
		return nil, fmt.Errorf("git source: remove old clone: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(g.dir), 0o755); err != nil {
		return nil, fmt.Errorf("git source: data folder: %w", err)
	}
	repo, err := git.Init(openStorage(g.dir), nil) // no work tree: bare
	if err != nil {
		return nil, fmt.Errorf("git source: init clone in %s: %w", g.dir, err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, markerName), []byte(want), 0o644); err != nil {
		return nil, fmt.Errorf("git source: write marker: %w", err)
	}
	g.repo = repo
	return repo, nil
}

// Fetch fetches the branch into the clone (cloning first when needed) and returns its
// commit. A fetch that finds nothing new costs one ref advertisement.
func (g *Git) Fetch(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	repo, err := g.open()
	if err != nil {
		return "", err
	}
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(g.branch), g.remoteRef()))
	remote := git.NewRemote(repo.Storer, &config.RemoteConfig{
		Name:  "origin",
		URLs:  []string{g.url},
		Fetch: []config.RefSpec{spec},
	})
	start := time.Now()
	err = remote.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{spec},
		Auth:       g.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		return "", fmt.Errorf("git fetch %s: branch %q not found", g.shown, g.branch)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return "", fmt.Errorf("git fetch %s: repository is empty (no commits)", g.shown)
	default:
		return "", scrubErr("git fetch "+g.shown, err, g.secrets...)
	}
	ref, err := repo.Reference(g.remoteRef(), true)
	if err != nil {
		return "", scrubErr(fmt.Sprintf("git fetch %s: branch %q", g.shown, g.branch), err, g.secrets...)
	}
	commit := ref.Hash().String()
	if commit != g.last {
		g.logger.Info("git source: new commit", "url", g.shown, "branch", g.branch, "commit", commit, "previous", g.last, "took", time.Since(start))
		g.last = commit
	} else {
		g.logger.Debug("git source: up to date", "url", g.shown, "branch", g.branch, "commit", commit, "took", time.Since(start))
	}
	return commit, nil
}

// Tree returns the files of commit under the configured sub-path, read from the
// clone's object store. The commit must have been fetched.
func (g *Git) Tree(commit string) (fs.FS, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	repo, err := g.open()
	if err != nil {
		return nil, err
	}
	if !plumbing.IsHash(commit) {
		return nil, fmt.Errorf("git tree: %q is not a commit hash", commit)
	}
	h := plumbing.NewHash(commit)
	if h.IsZero() {
		return nil, fmt.Errorf("git tree: %q is not a commit hash", commit)
	}
	c, err := repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("git tree: commit %s: %w", commit, err)
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("git tree: commit %s: %w", commit, err)
	}
	t := &treeFS{mu: &g.mu, store: repo.Storer, root: root, mtime: c.Committer.When}
	if g.subPath != "." {
		n, err := t.lookup(g.subPath)
		if err != nil || !n.isDir() {
			return nil, fmt.Errorf("git tree: repo.path %q is not a folder at commit %s", g.subPath, shortHash(commit))
		}
		t.root = n.tree
	}
	return t, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// String describes the source without credentials.
func (g *Git) String() string {
	return fmt.Sprintf("git %s branch %s path %s", g.shown, g.branch, g.subPath)
}
