package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// A blob stored in a pack as a delta of another object is read by go-git by decompressing
// its base whole into memory (a 33 MB blob: ~190 MB of allocations). blobReader instead
// applies the delta to a stream of the base (deltaReader), as git's deltas allow when their
// copies read the base front to back, the common case for a file edited in place. A copy
// that goes back in the base restarts its stream from the start, so a delta chain whose
// copies would need more than maxDeltaPasses reads of the bottom base is applied in memory
// instead (deltaBlob.patch).

// maxDeltaPasses bounds the reads of the bottom base that streaming a delta chain may take.
const maxDeltaPasses = 4

// maxDeltaDepth bounds the delta chain followed (git packs use at most 50 by default).
const maxDeltaDepth = 100

// blobReader opens a stream over b. The caller holds the mutex, also while reading.
func (t *treeFS) blobReader(b *object.Blob) (io.ReadCloser, error) {
	if b.Size > largeObject {
		if ds, ok := t.store.(storer.DeltaObjectStorer); ok {
			obj, passes, err := deltaChain(ds, b.Hash, 0)
			if err != nil {
				return nil, err
			}
			if d, isDelta := obj.(*deltaBlob); isDelta && obj.Size() == b.Size {
				if passes <= maxDeltaPasses {
					return d.Reader()
				}
				data, err := d.patch()
				if err != nil {
					return nil, err
				}
				return io.NopCloser(bytes.NewReader(data)), nil
			}
		}
	}
	return b.Reader()
}

// patch applies the delta chain in memory: the bottom base and each result are held whole,
// one level at a time. (go-git's reader for a big delta would also hold the base whole, and
// after a copy back it reads the base again from the start for every later copy.)
func (o *deltaBlob) patch() ([]byte, error) {
	var base []byte
	if d, ok := o.base.(*deltaBlob); ok {
		var err error
		if base, err = d.patch(); err != nil {
			return nil, err
		}
	} else {
		r, err := o.base.Reader()
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.base.Hash(), err)
		}
		base = make([]byte, o.base.Size())
		_, err = io.ReadFull(r, base)
		_ = r.Close()
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", o.base.Hash(), err)
		}
	}
	data, err := packfile.PatchDelta(base, o.delta)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", o.hash, err)
	}
	if int64(len(data)) != o.size {
		return nil, fmt.Errorf("object %s: %w", o.hash, errBadDelta)
	}
	return data, nil
}

// deltaChain returns object h, as a *deltaBlob when it is stored as a delta, and how many
// times reading it reads its bottom base.
func deltaChain(ds storer.DeltaObjectStorer, h plumbing.Hash, depth int) (plumbing.EncodedObject, int, error) {
	if depth > maxDeltaDepth {
		return nil, 0, fmt.Errorf("object %s: delta chain longer than %d", h, maxDeltaDepth)
	}
	obj, err := ds.DeltaObject(plumbing.AnyObject, h)
	if err != nil {
		return nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	d, ok := obj.(plumbing.DeltaObject)
	if !ok {
		return obj, 1, nil
	}
	r, err := d.Reader()
	if err != nil {
		return nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	delta, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	srcSize, size, back, err := scanDelta(delta)
	if err != nil {
		return nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	base, passes, err := deltaChain(ds, d.BaseHash(), depth+1)
	if err != nil {
		return nil, 0, err
	}
	if base.Size() != srcSize {
		return nil, 0, fmt.Errorf("object %s: delta for a base of %d bytes, base %s has %d", h, srcSize, d.BaseHash(), base.Size())
	}
	passes *= 1 + back
	if passes > maxDeltaPasses {
		passes = maxDeltaPasses + 1 // the chain will not be streamed; stop multiplying
	}
	return &deltaBlob{hash: h, typ: base.Type(), size: size, base: base, delta: delta}, passes, nil
}

var errBadDelta = errors.New("invalid delta")

// scanDelta reads a git delta's header and commands: the base and result sizes and how
// many copies start before the end of the previous copy from the base (each one restarts
// a stream of the base).
func scanDelta(d []byte) (srcSize, size int64, back int, err error) {
	uvarint := func() (int64, bool) {
		var v uint64
		for shift := uint(0); len(d) > 0 && shift < 64; shift += 7 {
			c := d[0]
			d = d[1:]
			v |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return int64(v), v <= 1<<62
			}
		}
		return 0, false
	}
	var ok bool
	if srcSize, ok = uvarint(); !ok {
		return 0, 0, 0, errBadDelta
	}
	if size, ok = uvarint(); !ok {
		return 0, 0, 0, errBadDelta
	}
	var pos int64 // end of the last copy in the base
	for len(d) > 0 {
		cmd := d[0]
		d = d[1:]
		switch {
		case cmd&0x80 != 0:
			var off, n int64
			for i := uint(0); i < 7; i++ {
				if cmd&(1<<i) == 0 {
					continue
				}
				if len(d) == 0 {
					return 0, 0, 0, errBadDelta
				}
				if i < 4 {
					off |= int64(d[0]) << (8 * i)
				} else {
					n |= int64(d[0]) << (8 * (i - 4))
				}
				d = d[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off < pos {
				back++
			}
			pos = off + n
		case cmd != 0:
			if int(cmd) > len(d) {
				return 0, 0, 0, errBadDelta
			}
			d = d[cmd:]
		default:
			return 0, 0, 0, errBadDelta
		}
	}
	return srcSize, size, back, nil
}

// deltaBlob is an object stored as a delta whose Reader applies the delta to a stream of
// its base.
type deltaBlob struct {
	hash  plumbing.Hash
	typ   plumbing.ObjectType
	size  int64
	base  plumbing.EncodedObject // an object of the store or another *deltaBlob
	delta []byte
}

var _ plumbing.EncodedObject = (*deltaBlob)(nil)

func (o *deltaBlob) Hash() plumbing.Hash             { return o.hash }
func (o *deltaBlob) Type() plumbing.ObjectType       { return o.typ }
func (o *deltaBlob) SetType(plumbing.ObjectType)     {}
func (o *deltaBlob) Size() int64                     { return o.size }
func (o *deltaBlob) SetSize(int64)                   {}
func (o *deltaBlob) Writer() (io.WriteCloser, error) { return nil, errors.New("read-only object") }

func (o *deltaBlob) Reader() (io.ReadCloser, error) {
	d := o.delta
	for i := 0; i < 2; i++ { // skip the sizes, checked by scanDelta
		for len(d) > 0 && d[0]&0x80 != 0 {
			d = d[1:]
		}
		if len(d) > 0 {
			d = d[1:]
		}
	}
	return &deltaReader{base: o.base, ops: d, left: o.size}, nil
}

// deltaReader applies a delta (checked by scanDelta) to a stream of its base, opened at the
// first copy and opened again when a copy starts before the stream's position. (go-git's
// packfile.ReaderFromDelta does the same in a goroutine, but after a copy back it opens the
// base again for every later copy.)
type deltaReader struct {
	base   plumbing.EncodedObject
	ops    []byte // commands not yet started
	left   int64  // result bytes not yet returned
	rc     io.ReadCloser
	br     *bufio.Reader
	pos    int64  // position of br in the base
	copy   int64  // bytes of the current copy not yet returned
	insert []byte // bytes of the current insert not yet returned
}

func (r *deltaReader) Read(p []byte) (int, error) {
	for len(r.insert) == 0 && r.copy == 0 {
		if len(r.ops) == 0 {
			if r.left != 0 {
				return 0, errBadDelta
			}
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	if len(r.insert) > 0 {
		n = copy(p, r.insert)
		r.insert = r.insert[n:]
	} else {
		if int64(len(p)) > r.copy {
			p = p[:r.copy]
		}
		var err error
		n, err = r.br.Read(p)
		r.pos += int64(n)
		r.copy -= int64(n)
		if err == io.EOF && r.copy > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return n, err
		}
	}
	r.left -= int64(n)
	if r.left < 0 {
		return n, errBadDelta
	}
	return n, nil
}

// next starts the next command.
func (r *deltaReader) next() error {
	cmd := r.ops[0]
	r.ops = r.ops[1:]
	if cmd&0x80 == 0 {
		r.insert = r.ops[:cmd] // scanDelta checked the length
		r.ops = r.ops[cmd:]
		return nil
	}
	var off, n int64
	for i := uint(0); i < 7; i++ {
		if cmd&(1<<i) != 0 {
			if i < 4 {
				off |= int64(r.ops[0]) << (8 * i)
			} else {
				n |= int64(r.ops[0]) << (8 * (i - 4))
			}
			r.ops = r.ops[1:]
		}
	}
	if n == 0 {
		n = 0x10000
	}
	if off+n > r.base.Size() {
		return errBadDelta
	}
	if r.rc == nil || off < r.pos {
		if r.rc != nil {
			_ = r.rc.Close()
		}
		rc, err := r.base.Reader()
		if err != nil {
			return err
		}
		r.rc, r.pos = rc, 0
		if r.br == nil {
			r.br = bufio.NewReaderSize(rc, 64<<10)
		} else {
			r.br.Reset(rc)
		}
	}
	for off > r.pos {
		k, err := r.br.Discard(int(min(off-r.pos, 1<<30)))
		r.pos += int64(k)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	r.copy = n
	return nil
}

func (r *deltaReader) Close() error {
	r.ops, r.insert, r.copy = nil, nil, 0
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}
