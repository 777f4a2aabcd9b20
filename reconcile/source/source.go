// Package source yields the desired-state tree of roster at a commit: from a Git
// repository cloned into a data folder (Git), or from a plain working folder (Dir).
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"

	"github.com/roster-dev/roster/schema"
)

// Source yields the desired-state tree at a commit.
type Source interface {
	// Fetch brings the source up to date and returns the current commit of the branch
	// ("" for a plain folder that is not a git work tree).
	Fetch(ctx context.Context) (commit string, err error)
	// Tree returns the files at commit, rooted at the configured sub-path.
	Tree(commit string) (fs.FS, error)
}

var (
	_ Source = (*Git)(nil)
	_ Source = (*Dir)(nil)
)

// Dir is a plain working folder (the --repo flag): what is on disk is the desired state,
// committed or not.
type Dir struct {
	dir string
}

// NewDir returns a Source for the folder dir.
func NewDir(dir string) *Dir { return &Dir{dir: dir} }

// Fetch returns the HEAD commit when dir is inside a git work tree, else "".
// It never changes anything on disk.
func (d *Dir) Fetch(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	st, err := os.Stat(d.dir)
	if err != nil {
		return "", fmt.Errorf("source folder: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("source folder %s: not a directory", d.dir)
	}
	repo, err := git.PlainOpenWithOptions(d.dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		// Not a git work tree (or one go-git cannot read): a plain folder has no commit.
		return "", nil
	}
	head, err := repo.Head()
	if err != nil {
		// A repository without commits yet.
		return "", nil
	}
	return head.Hash().String(), nil
}

// Tree returns the folder as it is on disk; commit is ignored.
func (d *Dir) Tree(string) (fs.FS, error) {
	st, err := os.Stat(d.dir)
	if err != nil {
		return nil, fmt.Errorf("source folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("source folder %s: not a directory", d.dir)
	}
	return os.DirFS(d.dir), nil
}

var (
	// scheme://userinfo@ — userinfo never contains '/', '@' or whitespace.
	reURLUser = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)([^/@\s"'<>]+)@`)
	// ?token=… &password=… and similar query parameters.
	reQuerySecret = regexp.MustCompile(`(?i)([?&](?:access_token|private_token|token|password|passwd|pass|pwd|secret|api_key|apikey|key|sig|signature|auth|code)=)[^&#\s"'<>]*`)
)

// Scrub removes credentials from the URLs in s: the userinfo of scheme://user:pass@host
// becomes ***@ (an ssh:// user name alone is kept: it is not a secret), and the values of
// query parameters such as token=, password=, access_token= become ***.
func Scrub(s string) string {
	s = reURLUser.ReplaceAllStringFunc(s, func(m string) string {
		sub := reURLUser.FindStringSubmatch(m)
		scheme, user := sub[1], sub[2]
		if strings.EqualFold(scheme, "ssh://") && !strings.Contains(user, ":") {
			return m
		}
		return scheme + "***@"
	})
	return reQuerySecret.ReplaceAllString(s, "${1}***")
}

// scrubbedError carries a scrubbed message. It does not unwrap (the original message may
// hold a credential) but answers errors.Is for the original chain.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string        { return e.msg }
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }

// scrubErr wraps err with op, removing URL credentials and every one of secrets.
func scrubErr(op string, err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := Scrub(op + ": " + err.Error())
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return &scrubbedError{msg: msg, err: err}
}

// isLocal reports whether url names a local path (no scheme, not scp-like).
func isLocal(url string) bool {
	if strings.Contains(url, "://") {
		return false
	}
	return !reSCP.MatchString(url) || filepath.IsAbs(url)
}

// reSCP matches scp-like addresses: [user@]host:path (host without '/').
var reSCP = regexp.MustCompile(`^(?:[^@/\s]+@)?[^@/:\s]+:[^\s]+$`)

// New returns the Source for cfg: a Git clone, except that a local url naming a folder
// that is not itself a git repository (for example the shipped "./examples", a folder
// inside the roster checkout) is read as a plain folder (Dir) at cfg.Path.
func New(cfg schema.RepoConfig, baseDir, dataDir string, logger *slog.Logger) (Source, error) {
	if cfg.URL != "" && isLocal(cfg.URL) {
		p := cfg.URL
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		if _, err := git.PlainOpen(p); errors.Is(err, git.ErrRepositoryNotExists) {
			sub, err := cleanSubPath(cfg.Path)
			if err != nil {
				return nil, err
			}
			if logger != nil {
				logger.Debug("source: local folder is not a git repository, reading it as a plain folder", "dir", p)
			}
			return NewDir(filepath.Join(p, filepath.FromSlash(sub))), nil
		}
	}
	return NewGit(cfg, baseDir, dataDir, logger)
}
