// Package synctest is a directory.Syncer for tests and benchmarks, without a server: an
// LDIF text whose versions it diffs entry by entry (by entryUUID), so a test edits the
// directory as a file and the fake reports what changed since a cookie the way a
// syncprov server's refreshOnly does (changed entries in full, deleted ones by id).
// Searches go through the project's LDIF directory, so filters, the disabled filter and
// the entry key are evaluated exactly as a full read evaluates them.
package synctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/roster-dev/roster/reconcile/directory"
)

// Dir is a directory with a change log. Safe for concurrent use.
type Dir struct {
	mu     sync.Mutex
	baseDN string
	data   []byte
	blocks map[string]string // entryUUID → its LDIF record
	ver    int
	log    []map[string]bool // log[v-1]: the ids changed by version v
	// Expired: cookies of versions below it are rejected (the session log forgot them).
	expired int
	// Calls counts Changes and Baseline calls, for tests.
	Changed, Baselines int
	wake               chan struct{}
	// Protocol is what Mode answers ("syncrepl" by default; "" for full only).
	Protocol string
}

// New returns a directory holding ldif at version 1.
func New(baseDN string, ldif []byte) *Dir {
	d := &Dir{baseDN: baseDN, Protocol: "syncrepl", wake: make(chan struct{})}
	d.data, d.blocks = ldif, blocks(ldif)
	d.ver = 1
	d.log = []map[string]bool{{}}
	return d
}

// blocks splits an LDIF text into records by their entryUUID (records without one, such
// as the base entries, are left out: they are never people).
func blocks(ldif []byte) map[string]string {
	out := map[string]string{}
	for _, b := range strings.Split(string(ldif), "\n\n") {
		for _, line := range strings.Split(b, "\n") {
			if v, ok := strings.CutPrefix(line, "entryUUID: "); ok {
				out[strings.ToLower(strings.TrimSpace(v))] = b
				break
			}
		}
	}
	return out
}

// Update replaces the directory's content: the entries whose record differs, appeared or
// vanished are logged as changed at a new version. It returns how many changed.
func (d *Dir) Update(ldif []byte) int {
	nb := blocks(ldif)
	d.mu.Lock()
	changed := map[string]bool{}
	for u, b := range nb {
		if d.blocks[u] != b {
			changed[u] = true
		}
	}
	for u := range d.blocks {
		if _, ok := nb[u]; !ok {
			changed[u] = true
		}
	}
	d.data, d.blocks = ldif, nb
	d.ver++
	d.log = append(d.log, changed)
	wake := d.wake
	d.wake = make(chan struct{})
	d.mu.Unlock()
	close(wake) // persistent searches see the new version
	return len(changed)
}

// Expire makes every cookie before the current version invalid (a lost session log).
func (d *Dir) Expire() {
	d.mu.Lock()
	d.expired = d.ver
	d.mu.Unlock()
}

// Version is the current version.
func (d *Dir) Version() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ver
}

func (d *Dir) snapshot() (directory.Directory, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, _ := directory.NewLDIF(d.data, d.baseDN)
	return dir, d.ver
}

// Search reads the current content.
func (d *Dir) Search(ctx context.Context, req directory.Request, fn func(directory.Entry) error) error {
	dir, _ := d.snapshot()
	return dir.Search(ctx, req, fn)
}

// Close does nothing.
func (d *Dir) Close() error { return nil }

// Mode answers Protocol.
func (d *Dir) Mode(context.Context) (string, error) { return d.Protocol, nil }

func cookie(v int) []byte { return []byte("v" + strconv.Itoa(v)) }

func parseCookie(c []byte) (int, error) {
	s, ok := strings.CutPrefix(string(c), "v")
	if !ok {
		return 0, fmt.Errorf("bad cookie %q", c)
	}
	return strconv.Atoi(s)
}

// Baseline is the current version's cookie.
func (d *Dir) Baseline(context.Context, directory.Request) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Baselines++
	return cookie(d.ver), nil
}

// Changes returns the entries changed since cookie, each once, in its current state or
// nil when deleted or no longer matching the request.
// known is not needed: the fake's log has every deletion (it never answers with a present
// phase; past its log it rejects the cookie instead).
func (d *Dir) Changes(ctx context.Context, req directory.Request, c []byte, known iter.Seq[string]) (directory.SyncResult, error) {
	from, err := parseCookie(c)
	if err != nil {
		return directory.SyncResult{}, err
	}
	d.mu.Lock()
	d.Changed++
	if from < d.expired || from > d.ver {
		d.mu.Unlock()
		return directory.SyncResult{Refresh: true}, nil
	}
	ids := map[string]bool{}
	for v := from + 1; v <= d.ver; v++ {
		maps.Copy(ids, d.log[v-1])
	}
	// Only the changed records are searched (a directory of 400,000 is not read again):
	// an LDIF of them alone, through the project's LDIF directory.
	var part bytes.Buffer
	for u := range ids {
		if b, ok := d.blocks[u]; ok {
			part.WriteString(strings.TrimLeft(b, "\n") + "\n\n")
		}
	}
	ver := d.ver
	d.mu.Unlock()
	res := directory.SyncResult{Cookie: cookie(ver)}
	if len(ids) == 0 {
		return res, nil
	}
	dir, err := directory.NewLDIF(part.Bytes(), d.baseDN)
	if err != nil {
		return directory.SyncResult{}, err
	}
	found := map[string]*directory.Entry{}
	if err := dir.Search(ctx, req, func(e directory.Entry) error {
		found[strings.ToLower(firstValue(e.Attrs, "entryUUID"))] = &e
		return nil
	}); err != nil {
		return directory.SyncResult{}, err
	}
	for _, u := range slices.Sorted(maps.Keys(ids)) {
		res.Changes = append(res.Changes, directory.Change{UUID: u, Entry: found[u]})
	}
	return res, nil
}

// Persist calls fn with the changes of each new version after cookie until ctx ends.
func (d *Dir) Persist(ctx context.Context, req directory.Request, c []byte, known iter.Seq[string], fn func(directory.SyncResult) error) error {
	for {
		d.mu.Lock()
		wake := d.wake
		d.mu.Unlock()
		res, err := d.Changes(ctx, req, c, known)
		if err != nil {
			return err
		}
		if res.Refresh {
			return errors.New("persist: cookie rejected")
		}
		if len(res.Changes) > 0 {
			if err := fn(res); err != nil {
				return err
			}
		}
		c = res.Cookie
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

func firstValue(attrs map[string][]string, name string) string {
	for k, v := range attrs {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

var (
	_ directory.Directory = (*Dir)(nil)
	_ directory.Syncer    = (*Dir)(nil)
)
