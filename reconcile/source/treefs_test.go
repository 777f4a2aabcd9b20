package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/schema"
)

const bigName = "people.ldif"

// bigRepo is a remote whose main branch holds people.ldif (about size bytes of
// directory.GeneratePeople entries) and a small file, fetched into a clone.
type bigRepo struct {
	r      *remote
	data   []byte
	people int // entries in data
	commit string
	blob   plumbing.Hash
	g      *Git
}

func peopleLDIF(tb testing.TB, size int) ([]byte, int) {
	tb.Helper()
	n := size / 294 // GeneratePeople writes about 294 bytes an entry
	var b bytes.Buffer
	if err := directory.GeneratePeople(&b, n, "dc=example,dc=com"); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes(), n
}

func newBigRepo(tb testing.TB, size int) *bigRepo {
	tb.Helper()
	data, n := peopleLDIF(tb, size)
	r := newRemote(tb)
	c := r.commit("main", map[string]string{bigName: string(data), "small.txt": "small\n"})
	g, err := NewGit(schema.RepoConfig{URL: r.bare}, "", tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if got, err := g.Fetch(context.Background()); err != nil || got != c {
		tb.Fatalf("fetch = %s, %v; want %s", got, err, c)
	}
	blob := plumbing.NewHash(gitCmd(tb, r.work, "rev-parse", "HEAD:"+bigName))
	return &bigRepo{r: r, data: data, people: n, commit: c, blob: blob, g: g}
}

// cloneTree is the clone's tree (the blob is in a pack written by the fetch).
func (b *bigRepo) cloneTree(tb testing.TB) fs.FS {
	tb.Helper()
	tree, err := b.g.Tree(b.commit)
	if err != nil {
		tb.Fatal(err)
	}
	return tree
}

// remoteTree is a treeFS over the remote itself, where the push left the blob a loose
// object.
func (b *bigRepo) remoteTree(tb testing.TB) fs.FS {
	tb.Helper()
	h := b.blob.String()
	if _, err := os.Stat(filepath.Join(b.r.bare, "objects", h[:2], h[2:])); err != nil {
		tb.Fatalf("blob is not a loose object in the remote: %v", err)
	}
	return bareTree(tb, b.r.bare, b.commit)
}

func bareTree(tb testing.TB, dir, commit string) fs.FS {
	tb.Helper()
	repo, err := git.Open(openStorage(dir), nil)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		tb.Fatal(err)
	}
	root, err := c.Tree()
	if err != nil {
		tb.Fatal(err)
	}
	return &treeFS{mu: new(sync.Mutex), store: repo.Storer, root: root, mtime: c.Committer.When}
}

// allocated is the number of bytes fn allocates on the heap (MemStats.TotalAlloc, so
// a peak that the GC collects at once still counts).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestTreeFSBigFile(t *testing.T) {
	b := newBigRepo(t, 4<<20)
	if len(b.data) <= largeObject {
		t.Fatalf("test blob of %d bytes is not above largeObject", len(b.data))
	}
	for _, tc := range []struct {
		name string
		tree func(testing.TB) fs.FS
	}{
		{"packed in the clone", b.cloneTree},
		{"loose in the remote", b.remoteTree},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := tc.tree(t)

			// Sequential reads in small pieces.
			f, err := tree.Open(bigName)
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.Stat()
			if err != nil || st.Size() != int64(len(b.data)) || st.Name() != bigName || st.IsDir() {
				t.Fatalf("file Stat = %v, %v; want %s of %d bytes", st, err, bigName, len(b.data))
			}
			var got bytes.Buffer
			if _, err := io.CopyBuffer(&got, struct{ io.Reader }{f}, make([]byte, 7919)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), b.data) {
				t.Fatalf("Open+Read: %d bytes, differ from the %d committed", got.Len(), len(b.data))
			}
			if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("Read at the end = %d, %v; want 0, EOF", n, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("second Close = %v", err)
			}
			if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("Read after Close = %v, want ErrClosed", err)
			}

			data, err := fs.ReadFile(tree, bigName)
			if err != nil || !bytes.Equal(data, b.data) {
				t.Fatalf("ReadFile: %d bytes, %v; want the %d committed", len(data), err, len(b.data))
			}
			if st, err := fs.Stat(tree, bigName); err != nil || st.Size() != int64(len(b.data)) {
				t.Fatalf("fs.Stat = %v, %v; want size %d", st, err, len(b.data))
			}
			entries, err := fs.ReadDir(tree, ".")
			if err != nil || len(entries) != 2 || entries[0].Name() != bigName || entries[1].Name() != "small.txt" {
				t.Fatalf("ReadDir = %v, %v", entries, err)
			}
			if info, err := entries[0].Info(); err != nil || info.Size() != int64(len(b.data)) {
				t.Fatalf("ReadDir info = %v, %v; want size %d", info, err, len(b.data))
			}
			if s := readAll(t, tree, "small.txt"); s != "small\n" {
				t.Fatalf("small.txt = %q", s)
			}
		})
	}
}

// A file read partly and then asked for random access switches to a whole read and keeps
// its offset.
func TestTreeFSSeekAndReadAtAfterStreaming(t *testing.T) {
	b := newBigRepo(t, 2<<20)
	for _, tc := range []struct {
		name string
		tree func(testing.TB) fs.FS
	}{
		{"packed in the clone", b.cloneTree},
		{"loose in the remote", b.remoteTree},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.tree(t).Open(bigName)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head := make([]byte, 1000)
			if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, b.data[:1000]) {
				t.Fatalf("first 1000 bytes: %v", err)
			}
			s := f.(io.Seeker)
			if off, err := s.Seek(0, io.SeekCurrent); err != nil || off != 1000 {
				t.Fatalf("Seek(0, current) = %d, %v; want 1000", off, err)
			}
			if off, err := s.Seek(1000, io.SeekStart); err != nil || off != 1000 {
				t.Fatalf("Seek(1000, start) = %d, %v; want 1000", off, err)
			}
			if f.(*file).r != nil {
				t.Fatal("a Seek to the current offset read the file whole")
			}
			if _, err := s.Seek(0, 42); err == nil {
				t.Fatal("Seek with a bad whence succeeded")
			}
			at := make([]byte, 500)
			if n, err := f.(io.ReaderAt).ReadAt(at, 1<<20); n != 500 || err != nil || !bytes.Equal(at, b.data[1<<20:1<<20+500]) {
				t.Fatalf("ReadAt(1 MiB) = %d, %v", n, err)
			}
			next := make([]byte, 1000)
			if _, err := io.ReadFull(f, next); err != nil || !bytes.Equal(next, b.data[1000:2000]) {
				t.Fatalf("Read after ReadAt does not continue at 1000: %v", err)
			}
			if off, err := s.Seek(-10, io.SeekEnd); err != nil || off != int64(len(b.data))-10 {
				t.Fatalf("Seek(-10, end) = %d, %v", off, err)
			}
			tail, err := io.ReadAll(f)
			if err != nil || !bytes.Equal(tail, b.data[len(b.data)-10:]) {
				t.Fatalf("tail = %q, %v", tail, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.(io.ReaderAt).ReadAt(at, 0); !errors.Is(err, fs.ErrClosed) {
				t.Fatalf("ReadAt after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// Open+Read of a 32 MB blob streams it: the bytes allocated while reading it through are
// a small fraction of it, while ReadFile allocates it whole (which shows the measure sees
// a whole read).
func TestTreeFSOpenDoesNotReadWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("32 MB repository")
	}
	b := newBigRepo(t, 32<<20)
	d := newDeltaRepo(t, 32<<20, deltaEdits[0].edit)
	if d.passes > maxDeltaPasses {
		t.Fatalf("git's delta for an edit in place takes %d passes over its base: it will not be streamed", d.passes)
	}
	deltaTree, err := d.g.Tree(d.commit)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4<<20) // the LDIF directory's block size
	for _, tc := range []struct {
		name string
		tree fs.FS
		size uint64
	}{
		{"packed in the clone", b.cloneTree(t), uint64(len(b.data))},
		{"loose in the remote", b.remoteTree(t), uint64(len(b.data))},
		{"delta in the clone", deltaTree, uint64(len(d.data))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree, size := tc.tree, tc.size
			var n int64
			var err error
			streamed := allocated(func() {
				f, openErr := tree.Open(bigName)
				if openErr != nil {
					err = openErr
					return
				}
				n, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				_ = f.Close()
			})
			if err != nil || n != int64(size) {
				t.Fatalf("Open+Read = %d bytes, %v; want %d", n, err, size)
			}
			whole := allocated(func() {
				var data []byte
				data, err = fs.ReadFile(tree, bigName)
				n = int64(len(data))
			})
			if err != nil || n != int64(size) {
				t.Fatalf("ReadFile = %d bytes, %v; want %d", n, err, size)
			}
			t.Logf("%d-byte blob: Open+Read allocated %d bytes, ReadFile %d", size, streamed, whole)
			if streamed > size/16 {
				t.Errorf("Open+Read of a %d-byte blob allocated %d bytes: it is not streamed", size, streamed)
			}
			if whole < size {
				t.Errorf("ReadFile of a %d-byte blob allocated only %d bytes: the measure is broken", size, whole)
			}
		})
	}
}

// The LDIF directory reads a Git-hosted file through Open, once to check it and once per
// Search, without holding it whole.
func TestTreeFSLDIFDirectory(t *testing.T) {
	b := newBigRepo(t, 4<<20)
	tree := b.cloneTree(t)
	var dir directory.Directory
	var err error
	var found, disabled int
	alloc := allocated(func() {
		dir, err = directory.OpenLDIF(func() (io.ReadCloser, error) { return tree.Open(bigName) }, "dc=example,dc=com")
		if err != nil {
			return
		}
		err = dir.Search(context.Background(), directory.Request{
			SearchDN:       "ou=people",
			Filter:         "(objectClass=inetOrgPerson)",
			DisabledFilter: "(employeeType=disabled)",
			KeyAttribute:   "uid",
			Attributes:     []string{"mail"},
		}, func(e directory.Entry) error {
			found++
			if e.Disabled {
				disabled++
			}
			if !strings.HasSuffix(e.Attrs["mail"][0], "@example.com") {
				return errors.New("bad mail " + e.Attrs["mail"][0])
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if found != b.people || disabled != b.people/50 {
		t.Fatalf("search found %d entries (%d disabled), want %d (%d)", found, disabled, b.people, b.people/50)
	}
	t.Logf("OpenLDIF + one Search over a %d-byte Git-hosted file: %d entries, %d bytes allocated", len(b.data), found, alloc)
}

// BenchmarkTreeFSOpenRead reads a 32 MB blob from the clone through Open in 4 MiB blocks
// (as the LDIF directory does); B/op is what one read allocates. BenchmarkTreeFSReadFile
// is the whole read, for comparison.
func BenchmarkTreeFSOpenRead(b *testing.B) {
	r := newBigRepo(b, 32<<20)
	tree := r.cloneTree(b)
	buf := make([]byte, 4<<20)
	b.SetBytes(int64(len(r.data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := tree.Open(bigName)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
	}
}

func BenchmarkTreeFSReadFile(b *testing.B) {
	r := newBigRepo(b, 32<<20)
	tree := r.cloneTree(b)
	b.SetBytes(int64(len(r.data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.ReadFile(tree, bigName); err != nil {
			b.Fatal(err)
		}
	}
}

// deltaRepo is a clone of a remote whose two commits hold two versions of people.ldif,
// packed by git with one stored as a delta of the other (its commit is commit).
type deltaRepo struct {
	g      *Git
	commit string
	data   []byte
	passes int // reads of the base that streaming the delta takes
	blob   *deltaBlob
}

func newDeltaRepo(tb testing.TB, size int, edit func([]byte) []byte) *deltaRepo {
	tb.Helper()
	v1, _ := peopleLDIF(tb, size)
	v2 := edit(bytes.Clone(v1))
	r := newRemote(tb)
	c1 := r.commit("main", map[string]string{bigName: string(v1)})
	c2 := r.commit("main", map[string]string{bigName: string(v2)})
	gitCmd(tb, r.bare, "repack", "-q", "-a", "-d", "-f")
	g, err := NewGit(schema.RepoConfig{URL: r.bare}, "", tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := g.Fetch(context.Background()); err != nil {
		tb.Fatal(err)
	}
	repo, err := g.open()
	if err != nil {
		tb.Fatal(err)
	}
	ds := repo.Storer.(storer.DeltaObjectStorer)
	for _, v := range []struct {
		commit string
		data   []byte
	}{{c1, v1}, {c2, v2}} {
		h := plumbing.NewHash(gitCmd(tb, r.work, "rev-parse", v.commit+":"+bigName))
		obj, passes, err := deltaChain(ds, h, 0)
		if err != nil {
			tb.Fatal(err)
		}
		if d, ok := obj.(*deltaBlob); ok {
			return &deltaRepo{g: g, commit: v.commit, data: v.data, passes: passes, blob: d}
		}
	}
	tb.Fatal("git stored neither version as a delta")
	return nil
}

// Edits that git packs as a delta: in place (the copies read the base mostly in order),
// halves swapped (a copy goes back) and 32 pieces reversed (copies go back often). Git's
// deltas also copy repeated lines from earlier in the base, so how many passes over the
// base streaming takes depends a little on git's choices: both ways of applying the delta
// are checked directly, and treeFS uses the one blobReader picks.
var deltaEdits = []struct {
	name string
	edit func([]byte) []byte
}{
	{"edited in place", func(b []byte) []byte {
		copy(b[len(b)/2:], "# changed\n")
		return append(b, "dn: uid=extra,ou=people,dc=example,dc=com\nuid: extra\n\n"...)
	}},
	{"halves swapped", func(b []byte) []byte {
		m := bytes.Index(b[len(b)/2:], []byte("\n\n")) + len(b)/2 + 2
		return append(bytes.Clone(b[m:]), b[:m]...)
	}},
	{"32 pieces reversed", func(b []byte) []byte {
		var out []byte
		end := len(b)
		for i := 31; i >= 0; i-- {
			start := 0
			if i > 0 {
				start = bytes.Index(b[i*len(b)/32:], []byte("\n\n")) + i*len(b)/32 + 2
			}
			out = append(out, b[start:end]...)
			end = start
		}
		return out
	}},
}

func TestTreeFSDeltaBlob(t *testing.T) {
	for _, tc := range deltaEdits {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeltaRepo(t, 4<<20, tc.edit)
			t.Logf("streaming the delta takes %d passes over its base (at most %d are streamed)", d.passes, maxDeltaPasses)
			rc, err := d.blob.Reader()
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(streamed, d.data) {
				t.Fatalf("delta streamed: %d bytes, %v; want the %d committed", len(streamed), err, len(d.data))
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			if patched, err := d.blob.patch(); err != nil || !bytes.Equal(patched, d.data) {
				t.Fatalf("delta patched in memory: %d bytes, %v; want the %d committed", len(patched), err, len(d.data))
			}

			tree, err := d.g.Tree(d.commit)
			if err != nil {
				t.Fatal(err)
			}
			f, err := tree.Open(bigName)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := io.CopyBuffer(&got, struct{ io.Reader }{f}, make([]byte, 65521)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), d.data) {
				t.Fatalf("Open+Read of the delta: %d bytes, differ from the %d committed", got.Len(), len(d.data))
			}
			if data, err := fs.ReadFile(tree, bigName); err != nil || !bytes.Equal(data, d.data) {
				t.Fatalf("ReadFile of the delta: %d bytes, %v", len(data), err)
			}
			if st, err := fs.Stat(tree, bigName); err != nil || st.Size() != int64(len(d.data)) {
				t.Fatalf("Stat = %v, %v; want size %d", st, err, len(d.data))
			}
			// Closing a delta stream part way stops its goroutine and files.
			f, err = tree.Open(bigName)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(f, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestScanDelta(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delta     []byte
		src, size int64
		back      int
		wantErr   bool
	}{
		{"copy then insert", []byte{0x10, 12, 0x91, 0, 10, 2, 'a', 'b'}, 16, 12, 0, false},
		{"copy back", []byte{100, 20, 0x91, 50, 10, 0x91, 0, 10}, 100, 20, 1, false},
		{"size 0 means 64 KiB", []byte{0x80, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80, 0x80}, 1 << 16, 1 << 16, 1, false},
		{"zero command", []byte{1, 1, 0}, 0, 0, 0, true},
		{"short insert", []byte{1, 3, 3, 'a'}, 0, 0, 0, true},
		{"short copy", []byte{1, 3, 0x91, 0}, 0, 0, 0, true},
		{"no header", []byte{0x80}, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, size, back, err := scanDelta(tc.delta)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (src != tc.src || size != tc.size || back != tc.back) {
				t.Fatalf("= %d, %d, %d; want %d, %d, %d", src, size, back, tc.src, tc.size, tc.back)
			}
		})
	}
}
