package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxSymlinkHops bounds symbolic-link resolution, like the kernel's ELOOP.
const maxSymlinkHops = 40

// treeFS is an fs.FS over a git tree object. Files opened are streams over their blobs
// (an LDIF export or a user list can be 100 MB+; see Open); ReadFile reads a file whole.
// The object store is read under the Git source's mutex, since go-git's store is not safe
// for concurrent use with a fetch. Symbolic links are followed when they stay inside the
// tree; absolute links and links out of it are errors.
type treeFS struct {
	mu    *sync.Mutex
	store storer.EncodedObjectStorer
	root  *object.Tree
	mtime time.Time
}

var (
	_ fs.FS         = (*treeFS)(nil)
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

// node is a resolved path: a folder (tree != nil) or a file blob.
type node struct {
	name string
	tree *object.Tree
	blob plumbing.Hash
	mode filemode.FileMode
}

func (n node) isDir() bool { return n.tree != nil }

var errEscape = errors.New("symbolic link leaves the tree")

// lookup resolves name (a valid fs path) to a node, following symbolic links.
// The caller holds the mutex.
func (t *treeFS) lookup(name string) (node, error) {
	if name == "." {
		return node{name: ".", tree: t.root, mode: filemode.Dir}, nil
	}
	hops := 0
	parts := strings.Split(name, "/")
restart:
	cur := t.root
	for i := 0; i < len(parts); i++ {
		e := findEntry(cur, parts[i])
		if e == nil {
			return node{}, fs.ErrNotExist
		}
		last := i == len(parts)-1
		switch e.Mode {
		case filemode.Symlink:
			hops++
			if hops > maxSymlinkHops {
				return node{}, errors.New("too many levels of symbolic links")
			}
			target, err := t.readBlob(e.Hash)
			if err != nil {
				return node{}, err
			}
			tgt := string(target)
			if path.IsAbs(tgt) {
				return node{}, errEscape
			}
			np := path.Join(path.Join(parts[:i]...), tgt, path.Join(parts[i+1:]...))
			if np == ".." || strings.HasPrefix(np, "../") {
				return node{}, errEscape
			}
			if np == "." {
				return node{name: path.Base(name), tree: t.root, mode: filemode.Dir}, nil
			}
			parts = strings.Split(np, "/")
			goto restart
		case filemode.Dir:
			sub, err := object.GetTree(t.store, e.Hash)
			if err != nil {
				return node{}, err
			}
			if last {
				return node{name: e.Name, tree: sub, mode: filemode.Dir}, nil
			}
			cur = sub
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			if !last {
				return node{}, fs.ErrNotExist // a file used as a folder
			}
			return node{name: e.Name, blob: e.Hash, mode: e.Mode}, nil
		default: // submodules have no content here
			return node{}, fs.ErrNotExist
		}
	}
	return node{}, fs.ErrNotExist
}

func findEntry(t *object.Tree, name string) *object.TreeEntry {
	for i := range t.Entries {
		if t.Entries[i].Name == name {
			return &t.Entries[i]
		}
	}
	return nil
}

func (t *treeFS) readBlob(h plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(t.store, h)
	if err != nil {
		return nil, err
	}
	return t.readWhole(b)
}

// readWhole reads a blob into one buffer of its size. The caller holds the mutex.
func (t *treeFS) readWhole(b *object.Blob) ([]byte, error) {
	r, err := t.blobReader(b)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, b.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read blob %s: %w", b.Hash, err)
	}
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("read blob %s: longer than its size %d", b.Hash, b.Size)
	}
	return data, nil
}

func (t *treeFS) blobSize(h plumbing.Hash) int64 {
	b, err := object.GetBlob(t.store, h)
	if err != nil {
		return 0
	}
	return b.Size
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// withNode resolves name under the mutex and returns f of its node. Every error, an
// invalid name's included, is an *fs.PathError of op, as io/fs asks.
func withNode[T any](t *treeFS, op, name string, f func(node) (T, error)) (T, error) {
	var zero T
	if !fs.ValidPath(name) {
		return zero, pathErr(op, name, fs.ErrInvalid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup(name)
	if err != nil {
		return zero, pathErr(op, name, err)
	}
	v, err := f(n)
	if err != nil {
		return zero, pathErr(op, name, err)
	}
	return v, nil
}

// Open opens the named file or folder. A file is a stream over its blob: sequential Reads
// decompress it block by block (for blobs above largeObject the object store never holds
// it whole; a blob stored as a delta is streamed over its base, see blobReader), each Read
// under the source's mutex. Seek to another offset or ReadAt reads the blob whole into
// memory once, and the file is served from there.
func (t *treeFS) Open(name string) (fs.File, error) {
	return withNode(t, "open", name, func(n node) (fs.File, error) {
		if n.isDir() {
			entries, err := t.entries(n.tree)
			if err != nil {
				return nil, err
			}
			return &dirFile{info: t.info(n, 0), entries: entries}, nil
		}
		b, err := object.GetBlob(t.store, n.blob)
		if err != nil {
			return nil, err
		}
		rc, err := t.blobReader(b)
		if err != nil {
			return nil, err
		}
		return &file{info: t.info(n, b.Size), t: t, blob: b, rc: rc}, nil
	})
}

// ReadFile reads the named file into one buffer of its size.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	return withNode(t, "readfile", name, func(n node) ([]byte, error) {
		if n.isDir() {
			return nil, errors.New("is a directory")
		}
		b, err := object.GetBlob(t.store, n.blob)
		if err != nil {
			return nil, err
		}
		return t.readWhole(b)
	})
}

// ReadDir lists the named folder, sorted by name.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return withNode(t, "readdir", name, func(n node) ([]fs.DirEntry, error) {
		if !n.isDir() {
			return nil, errors.New("not a directory")
		}
		return t.entries(n.tree)
	})
}

// Stat describes the named file or folder (following symbolic links).
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	return withNode(t, "stat", name, func(n node) (fs.FileInfo, error) {
		var size int64
		if !n.isDir() {
			size = t.blobSize(n.blob)
		}
		return t.info(n, size), nil
	})
}

// entries lists a tree; symbolic links are listed as such (Stat/Open follow them),
// submodules are left out. The caller holds the mutex.
func (t *treeFS) entries(tr *object.Tree) ([]fs.DirEntry, error) {
	out := make([]fs.DirEntry, 0, len(tr.Entries))
	for _, e := range tr.Entries {
		var fi fileInfo
		switch e.Mode {
		case filemode.Dir:
			fi = fileInfo{name: e.Name, mode: fs.ModeDir | 0o555, mtime: t.mtime}
		case filemode.Symlink:
			fi = fileInfo{name: e.Name, mode: fs.ModeSymlink | 0o777, mtime: t.mtime, size: t.blobSize(e.Hash)}
		case filemode.Regular, filemode.Deprecated:
			fi = fileInfo{name: e.Name, mode: 0o444, mtime: t.mtime, size: t.blobSize(e.Hash)}
		case filemode.Executable:
			fi = fileInfo{name: e.Name, mode: 0o555, mtime: t.mtime, size: t.blobSize(e.Hash)}
		default:
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (t *treeFS) info(n node, size int64) fileInfo {
	fi := fileInfo{name: n.name, size: size, mtime: t.mtime, mode: 0o444}
	switch {
	case n.isDir():
		fi.mode = fs.ModeDir | 0o555
	case n.mode == filemode.Executable:
		fi.mode = 0o555
	}
	return fi
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.mtime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

// file is an open blob: a sequential stream (rc) until a Seek elsewhere or a ReadAt
// needs random access, then the whole content (r).
type file struct {
	info   fileInfo
	t      *treeFS // its mutex is held while rc reads the object store
	blob   *object.Blob
	rc     io.ReadCloser // nil once r is set or the file is closed
	off    int64         // bytes read from rc
	r      *bytes.Reader
	closed bool
}

var (
	_ io.Seeker   = (*file)(nil)
	_ io.ReaderAt = (*file)(nil)
)

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, pathErr("read", f.info.name, fs.ErrClosed)
	}
	if f.r != nil {
		return f.r.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.t.mu.Lock()
	n, err := f.rc.Read(p)
	f.t.mu.Unlock()
	f.off += int64(n)
	switch {
	case f.off > f.info.size:
		return n, pathErr("read", f.info.name, fmt.Errorf("blob %s longer than its size %d", f.blob.Hash, f.info.size))
	case err == io.EOF && f.off < f.info.size:
		return n, pathErr("read", f.info.name, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		return n, pathErr("read", f.info.name, err)
	}
	return n, err
}

// Seek reports the offset without reading anything when asked for the current one (or
// to move to it); any other move reads the whole blob into memory (see whole).
func (f *file) Seek(off int64, whence int) (int64, error) {
	if f.closed {
		return 0, pathErr("seek", f.info.name, fs.ErrClosed)
	}
	if f.r == nil {
		abs := off
		switch whence {
		case io.SeekStart:
		case io.SeekCurrent:
			abs += f.off
		case io.SeekEnd:
			abs += f.info.size
		default:
			return 0, pathErr("seek", f.info.name, fs.ErrInvalid)
		}
		if abs == f.off {
			return abs, nil
		}
		if err := f.whole(); err != nil {
			return 0, err
		}
	}
	return f.r.Seek(off, whence)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, pathErr("read", f.info.name, fs.ErrClosed)
	}
	if f.r == nil {
		if err := f.whole(); err != nil {
			return 0, err
		}
	}
	return f.r.ReadAt(p, off)
}

// whole switches the file to an in-memory copy of the blob, at the stream's offset.
func (f *file) whole() error {
	f.t.mu.Lock()
	data, err := f.t.readWhole(f.blob)
	f.t.mu.Unlock()
	if err != nil {
		return pathErr("read", f.info.name, err)
	}
	_ = f.rc.Close()
	f.rc = nil
	f.r = bytes.NewReader(data)
	_, _ = f.r.Seek(f.off, io.SeekStart)
	return nil
}

// Close releases the stream; it may be called more than once.
func (f *file) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.r = nil
	if f.rc == nil {
		return nil
	}
	f.t.mu.Lock()
	err := f.rc.Close()
	f.t.mu.Unlock()
	f.rc = nil
	if err != nil {
		return pathErr("close", f.info.name, err)
	}
	return nil
}

type dirFile struct {
	info    fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fmt.Errorf("is a directory")}
}
func (d *dirFile) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
