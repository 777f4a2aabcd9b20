package directory

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"unsafe"
)

// ldifBlockSize is the size of the blocks an LDIF file is read in (a variable for tests).
// A record longer than a block gets a larger block.
var ldifBlockSize = 4 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockReader reads an LDIF text in blocks that end at a record boundary: just after a blank
// line that the next line does not continue, or at the end of the text. Every block starts
// at the beginning of a line, so a scanner that carries its line count from one block to the
// next reports the same line numbers as over the whole text, and no record, folded line or
// comment is split between two blocks. One buffer is reused: a block is valid until the
// next call of next.
type blockReader struct {
	r    io.Reader
	size int    // buffer size, grown for records longer than a block
	buf  []byte // buf[:end] was read; buf[cut:end] is not returned yet
	cut  int
	end  int
	eof  bool
	read int64  // bytes read so far
	crc  uint32 // CRC-32C of those bytes
}

func newBlockReader(r io.Reader) *blockReader {
	return &blockReader{r: r, size: max(ldifBlockSize, 1)}
}

// next returns the next block, or "" at the end of the text.
func (b *blockReader) next() (string, error) {
	for {
		if b.eof {
			s := b.buf[b.cut:b.end]
			b.cut = b.end
			return unsafe.String(unsafe.SliceData(s), len(s)), nil
		}
		if err := b.fill(); err != nil {
			return "", err
		}
		if b.eof {
			continue
		}
		if p := lastBoundary(b.buf[b.cut:b.end]); p > 0 {
			s := b.buf[b.cut : b.cut+p]
			b.cut += p
			return unsafe.String(unsafe.SliceData(s), len(s)), nil
		}
		b.size *= 2 // one record fills the whole buffer
	}
}

// fill moves the bytes not yet returned to the start of the buffer (a new one when it must
// grow) and reads until the buffer is full or the text ends.
func (b *blockReader) fill() error {
	pending := b.buf[b.cut:b.end]
	buf := b.buf
	if len(buf) < b.size {
		buf = make([]byte, b.size)
	}
	n := copy(buf, pending)
	b.buf, b.cut, b.end = buf, 0, n
	for b.end < len(b.buf) {
		m, err := b.r.Read(b.buf[b.end:])
		b.end += m
		if err == io.EOF {
			b.eof = true
			break
		}
		if err != nil {
			return fmt.Errorf("ldif: read: %w", err)
		}
	}
	b.read += int64(b.end - n)
	b.crc = crc32.Update(b.crc, castagnoli, b.buf[n:b.end])
	return nil
}

// lastBoundary returns the largest p, 0 < p < len(s), such that s[:p] ends with a blank line
// (empty but for a "\r") and s[p] does not continue it (is not a space); or -1. s starts at
// the beginning of a line.
func lastBoundary(s []byte) int {
	for i := len(s) - 2; i >= 0; i-- {
		i = bytes.LastIndexByte(s[:i+1], '\n')
		if i < 0 {
			return -1
		}
		if s[i+1] == ' ' {
			continue
		}
		j := i
		if j > 0 && s[j-1] == '\r' {
			j--
		}
		if j == 0 || s[j-1] == '\n' {
			return i + 1
		}
	}
	return -1
}

// ldifStream scans the records of an LDIF text read in blocks, with one scanner whose line
// count, version-line state and attribute-name cache carry over from block to block.
type ldifStream struct {
	sc *ldifScanner
	br *blockReader
}

// next reads the next record into the scanner (see ldifScanner.next).
func (st *ldifStream) next() (bool, error) {
	for {
		ok, err := st.sc.next()
		if ok || err != nil {
			return ok, err
		}
		src, err := st.br.next()
		if err != nil {
			return false, err
		}
		if src == "" {
			return false, nil
		}
		st.sc.src, st.sc.pos = src, 0
	}
}
