package policy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
	"unsafe"
)

// A snapshot file hands a snapshot from the daemon, which builds it, to the answering
// process, which maps it read-only and answers from the mapping: no copy, no object per
// room, and its pages shared with the page cache. Layout (little-endian):
//
//	header (headerSize bytes): magic, sequence, hash seed, counts, build time, section
//	                           lengths, file size, CRC-32C of the header and body
//	body:   room table, device table (uint64 entries, 8-aligned), tags (uvarint length +
//	        bytes each), version, arena
//
// A file is written beside its final name, synced and renamed over it: a reader opens a
// whole file or the previous one, never half of one. The checksum catches the rest (a
// disk error, a truncated copy): a bad file is refused and the snapshot served stays.
const (
	snapMagic  = "RSTRPOL\x01"
	headerSize = 128
)

// header field offsets
const (
	hSeq, hSeed                            = 8, 16
	hRooms, hDevices, hAliases, hCollision = 24, 32, 40, 48
	hBuiltAt, hBuildDuration               = 56, 64
	hRoomTable, hDeviceTable, hArena       = 72, 80, 88
	hTags, hVersion, hSize, hChecksum      = 96, 104, 112, 120
)

// snapTempPattern names a snapshot file being written.
const snapTempPattern = ".policy-snapshot-*"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// littleEndian: tables are written and mapped as the machine's own uint64s.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// WriteFile writes s to path as snapshot file number seq (the daemon's publication
// counter; the answering process reports which one it serves): a temporary file in the
// same directory, synced, then renamed over path.
func WriteFile(path string, s *Snapshot, seq uint64) (err error) {
	if !littleEndian {
		return errors.New("write policy snapshot file: only little-endian machines are supported")
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, snapTempPattern) // mode 0600: the file holds PINs and passwords
	if err != nil {
		return fmt.Errorf("write policy snapshot file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var tags []byte
	for _, t := range s.tags {
		tags = appendString(tags, t)
	}
	var h [headerSize]byte
	copy(h[:], snapMagic)
	le := binary.LittleEndian
	for _, f := range []struct {
		off int
		v   uint64
	}{
		{hSeq, seq}, {hSeed, s.seed}, {hRooms, uint64(s.rooms)}, {hDevices, uint64(s.devices)},
		{hAliases, uint64(s.roomAliases)}, {hCollision, uint64(s.collisions)},
		{hBuiltAt, uint64(s.builtAt.UnixNano())}, {hBuildDuration, uint64(s.buildDuration)},
		{hRoomTable, uint64(len(s.roomTable))}, {hDeviceTable, uint64(len(s.deviceTable))}, {hArena, uint64(len(s.arena))},
		{hTags, uint64(len(tags))}, {hVersion, uint64(len(s.version))},
	} {
		le.PutUint64(h[f.off:], f.v)
	}
	size := headerSize + 8*len(s.roomTable) + 8*len(s.deviceTable) + len(tags) + len(s.version) + len(s.arena)
	le.PutUint64(h[hSize:], uint64(size))
	crc := crc32.Update(0, castagnoli, h[:hChecksum])

	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(make([]byte, headerSize)) // the header once the checksum is known
	for _, part := range []string{tableBytes(s.roomTable), tableBytes(s.deviceTable), string(tags), s.version, s.arena} {
		crc = crc32.Update(crc, castagnoli, unsafe.Slice(unsafe.StringData(part), len(part)))
		w.WriteString(part)
	}
	le.PutUint64(h[hChecksum:], uint64(crc))
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write policy snapshot file: %w", err)
	}
	if _, err := f.WriteAt(h[:], 0); err != nil {
		return fmt.Errorf("write policy snapshot file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write policy snapshot file: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write policy snapshot file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write policy snapshot file: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // the rename itself survives a crash
		d.Sync()
		d.Close()
	}
	return nil
}

// tableBytes is a table's memory as a string (no copy).
func tableBytes(t []uint64) string {
	if len(t) == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(unsafe.SliceData(t))), 8*len(t))
}

// OpenFile maps the snapshot file at path read-only and returns the snapshot over the
// mapping and the file's sequence number. The snapshot holds one reference, which Index.Swap takes over:
// the mapping goes when the index and every request have let go of it. A file that is
// truncated, of another format or whose checksum does not match is refused.
func OpenFile(path string) (*Snapshot, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("open policy snapshot file: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("open policy snapshot file: %w", err)
	}
	if fi.Size() < headerSize {
		return nil, 0, fmt.Errorf("policy snapshot file %s: %d bytes, truncated (the header alone is %d)", path, fi.Size(), headerSize)
	}
	b, unmap, err := mapFile(f, int(fi.Size()))
	if err != nil {
		return nil, 0, fmt.Errorf("policy snapshot file %s: map: %w", path, err)
	}
	s, seq, err := snapshotOver(b)
	if err != nil {
		unmap()
		return nil, 0, fmt.Errorf("policy snapshot file %s: %w", path, err)
	}
	s.refs = newRefCount(unmap)
	return s, seq, nil
}

// snapshotOver checks the file's bytes b and makes a snapshot over them.
func snapshotOver(b []byte) (*Snapshot, uint64, error) {
	if !littleEndian {
		return nil, 0, errors.New("only little-endian machines are supported")
	}
	if string(b[:len(snapMagic)]) != snapMagic {
		return nil, 0, fmt.Errorf("not a policy snapshot of this version (magic %q)", b[:len(snapMagic)])
	}
	le := binary.LittleEndian
	u := func(off int) uint64 { return le.Uint64(b[off:]) }
	if size := u(hSize); size != uint64(len(b)) {
		return nil, 0, fmt.Errorf("%d bytes, the header says %d: truncated or overwritten", len(b), size)
	}
	lens := []uint64{8 * u(hRoomTable), 8 * u(hDeviceTable), u(hTags), u(hVersion), u(hArena)}
	total := uint64(headerSize)
	for _, n := range lens {
		if n > uint64(len(b)) {
			return nil, 0, fmt.Errorf("a section of %d bytes in a file of %d", n, len(b))
		}
		total += n
	}
	if total != uint64(len(b)) {
		return nil, 0, fmt.Errorf("sections of %d bytes in a file of %d", total, len(b))
	}
	crc := crc32.Update(0, castagnoli, b[:hChecksum])
	if crc = crc32.Update(crc, castagnoli, b[headerSize:]); uint64(crc) != u(hChecksum) {
		return nil, 0, fmt.Errorf("checksum %08x, the header says %08x: corrupted", crc, u(hChecksum))
	}
	var parts [5][]byte
	off := uint64(headerSize)
	for i, n := range lens {
		parts[i] = b[off : off+n]
		off += n
	}
	s := &Snapshot{
		seed: u(hSeed), rooms: int(u(hRooms)), devices: int(u(hDevices)), roomAliases: int(u(hAliases)),
		collisions: int(u(hCollision)), builtAt: time.Unix(0, int64(u(hBuiltAt))), buildDuration: time.Duration(u(hBuildDuration)),
		roomTable: mappedTable(parts[0]), deviceTable: mappedTable(parts[1]),
		version: string(parts[3]), // copies: the status reads them after the mapping may be gone
	}
	tr := reader{s: string(parts[2])}
	for tr.i < len(tr.s) {
		s.tags = append(s.tags, tr.str())
	}
	if len(parts[4]) > 0 {
		s.arena = unsafe.String(unsafe.SliceData(parts[4]), len(parts[4]))
	}
	return s, u(hSeq), nil
}

// mappedTable is a table section as []uint64 over the mapping (8-aligned: the header
// is 128 bytes and the mapping starts on a page).
func mappedTable(b []byte) []uint64 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}
