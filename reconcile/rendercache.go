package reconcile

// The render cache: a full read renders only the entries that can have changed.
//
// Rendering 400,000 entries is most of a no-op plan, and in a no-op plan every one of
// them renders exactly what its objects already are. The cache, a file beside the state
// database, lists for each template the entries whose objects were settled at one state
// version: a hash of each entry's attributes (its DN, key, disabled flag and the
// attributes the template requests) and which objects it renders, with its user's email.
// A plan at that same state version, with the same template, repo parts and binary
// (fingerprint), finds an entry with the same hash there and marks its objects unchanged
// without rendering it: what rendering and comparing digests would find (dropUnchanged),
// exactly as incremental sync premarks the entries no change touched (sync.go). When an
// object the entry should have is not in the index, the entry is rendered after all.
//
// Which entries are settled (rendercache_record.go): after an apply, every entry that
// rendered without a warning or override, as sync.go decides which entries are pending;
// after a plan that changes nothing, those whose objects all rendered unchanged. The file
// is trusted only at the state version it names and while the database's meta row holds
// its random token (state.RenderCacheToken): any other write, a restored backup or a new
// database at the same path makes it stale, and the plan renders everything.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/roster-dev/roster/reconcile/directory"
	"github.com/roster-dev/roster/reconcile/internal/stablehash"
	"github.com/roster-dev/roster/schema"
	"github.com/roster-dev/roster/state"
)

const (
	renderCacheMagic  = "rosterRC"
	renderCacheFormat = 1
	// flags of a cached entry: the objects it renders.
	cachedVMR    = 1
	cachedDevice = 2
	cachedUser   = 4
	cachedNoMail = 8  // it warns no_email (its notice is made again)
	cachedAbsent = 16 // its user is disabled and has no account (never created)
)

// renderCache is one plan's view of the cache: what it read (for skipping) and what its
// render records (for the next file).
type renderCache struct {
	path    string
	seed    uint64                      // of the entry hashes: the read file's, or random
	version int64                       // state version of the read file (-1: none)
	loaded  map[string]*cachedTemplate  // by template, those whose fingerprint matches
	fps     map[string][32]byte         // this plan's templates' fingerprints
	csv     map[string]bool             // emails of users/*.csv rows (merged: never cached)
	mu      sync.Mutex                  // guards records (templates may render in turn)
	records map[string]*templateRecords // by template
	hits    atomic.Int64                // entries skipped
	ahead   atomic.Int64                // of which ahead of the index (rendercache_ahead.go)
}

// cachedTemplate is a template's settled entries as read, found by hash.
type cachedTemplate struct {
	entries []cachedEntry
	set     posTable
}

// find returns the position of the entry with hash h, looking at *at first (see near).
func (ct *cachedTemplate) find(h uint64, at *int32) (int32, bool) {
	return ct.set.findNear(at, len(ct.entries), h, func(i int32) bool { return ct.entries[i].hash == h })
}

type cachedEntry struct {
	hash  uint64
	flags uint8
	email string // the user's, when flags has cachedUser
}

// renderCachePath is the cache file of the database at dbPath ("" for none: in memory).
func renderCachePath(dbPath string) string {
	if dbPath == "" || dbPath == ":memory:" || strings.Contains(dbPath, "mode=memory") || strings.HasPrefix(dbPath, "file:") {
		return ""
	}
	return dbPath + ".render-cache"
}

// openRenderCache prepares the cache of one plan: the fingerprints of repo's templates
// and, when the file beside db is valid for the state now, its entries. It returns nil
// when the database has no file to keep a cache beside.
func openRenderCache(ctx context.Context, db *state.DB, cfg *schema.Config, repo *schema.Repo, secretKey []byte) *renderCache {
	path := renderCachePath(db.Path)
	if path == "" {
		return nil
	}
	rc := &renderCache{path: path, version: -1, fps: map[string][32]byte{}, csv: map[string]bool{}, records: map[string]*templateRecords{}}
	for _, r := range repo.Users {
		rc.csv[strings.ToLower(r.Email)] = true
	}
	global := sha256.New()
	exe := executableHash()
	key := sha256.Sum256(secretKey)
	emails := make([]string, 0, len(rc.csv))
	for e := range rc.csv {
		emails = append(emails, e)
	}
	slices.Sort(emails)
	fmt.Fprintf(global, "%d\x00%x\x00%x\x00", renderCacheFormat, exe, key)
	for _, v := range []any{repo.Overrides, repo.TrackingCodes, emails} {
		b, _ := json.Marshal(v) // plain data: cannot fail
		global.Write(b)
		global.Write([]byte{0})
	}
	for _, t := range repo.Templates {
		h := sha256.New()
		h.Write(global.Sum(nil))
		tb, _ := json.Marshal(t)
		db, _ := json.Marshal(cfg.Directories[t.Source])
		h.Write(tb)
		h.Write([]byte{0})
		h.Write(db)
		rc.fps[t.Name] = [32]byte(h.Sum(nil))
	}
	if err := rc.read(ctx, db); err != nil {
		rc.loaded, rc.version = nil, -1
	}
	if rc.loaded == nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		rc.seed = binary.LittleEndian.Uint64(b[:])
	}
	return rc
}

var (
	exeOnce sync.Once
	exeSum  [32]byte
)

// executableHash identifies the running binary: a new roster may render differently, so
// its cache starts anew. Random when the binary cannot be read (no cache across runs).
func executableHash() [32]byte {
	exeOnce.Do(func() {
		if err := func() error {
			p, err := os.Executable()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			exeSum = [32]byte(h.Sum(nil))
			return nil
		}(); err != nil {
			_, _ = rand.Read(exeSum[:])
		}
	})
	return exeSum
}

var errStaleCache = errors.New("render cache: stale")

// read loads the file when it names the state version and token the database holds now.
func (rc *renderCache) read(ctx context.Context, db *state.DB) error {
	data, err := os.ReadFile(rc.path)
	if err != nil {
		return err
	}
	// header: magic, format, state version, token (16 bytes), seed, templates; crc at the end
	const head = 8 + 4 + 8 + 16 + 8 + 4
	if len(data) < head+4 || string(data[:8]) != renderCacheMagic || binary.LittleEndian.Uint32(data[8:]) != renderCacheFormat {
		return errStaleCache
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return errStaleCache
	}
	version := int64(binary.LittleEndian.Uint64(data[12:]))
	token := hex.EncodeToString(data[20:36])
	v, want, err := db.RenderCacheToken(ctx)
	if err != nil || v != version || want != token {
		return errStaleCache
	}
	rc.seed = binary.LittleEndian.Uint64(data[36:])
	n := int(binary.LittleEndian.Uint32(data[44:]))
	text := string(body) // one copy: the emails are substrings of it
	r := cacheReader{b: text, at: head}
	loaded := map[string]*cachedTemplate{}
	for range n {
		name := r.str(int(r.u16()))
		fp := r.str(32)
		count := int(r.u32())
		if r.bad || count > len(text)/10 {
			return errStaleCache
		}
		want, ok := rc.fps[name]
		keep := ok && fp == string(want[:])
		ct := &cachedTemplate{}
		if keep {
			ct.entries = make([]cachedEntry, 0, count)
		}
		for range count {
			h, flags := r.u64(), r.u8()
			email := r.str(int(r.u8()))
			if keep {
				ct.entries = append(ct.entries, cachedEntry{hash: h, flags: flags, email: email})
			}
		}
		if r.bad {
			return errStaleCache
		}
		if keep {
			ct.set = newPosTable(len(ct.entries))
			for i := range ct.entries {
				ct.set.insert(ct.entries[i].hash, int32(i))
			}
			loaded[name] = ct
		}
	}
	rc.loaded, rc.version = loaded, version
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cacheReader reads the little-endian fields of a cache file; bad once it ran short.
type cacheReader struct {
	b   string
	at  int
	bad bool
}

func (r *cacheReader) take(n int) string {
	if r.bad || n < 0 || r.at+n > len(r.b) {
		r.bad = true
		return ""
	}
	s := r.b[r.at : r.at+n]
	r.at += n
	return s
}

func (r *cacheReader) u8() uint8 {
	if s := r.take(1); s != "" {
		return s[0]
	}
	return 0
}

func (r *cacheReader) u16() uint16 { return uint16(r.uint(2)) }
func (r *cacheReader) u32() uint32 { return uint32(r.uint(4)) }
func (r *cacheReader) u64() uint64 { return r.uint(8) }

func (r *cacheReader) uint(n int) uint64 {
	s := r.take(n)
	var v uint64
	for i := len(s) - 1; i >= 0; i-- {
		v = v<<8 | uint64(s[i])
	}
	return v
}

func (r *cacheReader) str(n int) string { return r.take(n) }

// entryHash hashes what rendering e reads: its DN, key, disabled flag and attributes (the
// template's, as the search requested them). Attributes combine by sum, in any order (a
// map's); each one's values in their order.
func entryHash(seed uint64, e *directory.Entry) uint64 {
	var sum uint64
	for name, vals := range e.Attrs {
		h := strHash(seed, name)
		for _, v := range vals {
			h = mix(h^strHash(seed, v), hashK2)
		}
		sum += mix(h, hashK3)
	}
	h := mix(strHash(seed, e.DN)^hashK1, strHash(seed^hashK3, e.Key))
	if e.Disabled {
		h = mix(h, hashK2)
	}
	return mix(h^sum, hashK1^uint64(len(e.Attrs)))
}

const (
	hashK1 = 0xa0761d6478bd642f
	hashK2 = 0xe7037ed1a0b428db
	hashK3 = 0x8ebc6af09c88c6e3
)

// mix and strHash: a stable hash, since the cache outlives the process.
var mix, strHash = stablehash.Mix, stablehash.String

// write writes the cache file of state version from recs (template → entries to keep),
// then records its token in the database; a failure leaves no trusted cache.
func (rc *renderCache) write(ctx context.Context, db *state.DB, version int64, recs map[string][]cachedEntry) error {
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return fmt.Errorf("render cache: %w", err)
	}
	size := 64
	for name, es := range recs {
		size += len(name) + 40 + len(es)*10
		for i := range es {
			size += len(es[i].email)
		}
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(renderCacheMagic)
	b.Write(binary.LittleEndian.AppendUint32(nil, renderCacheFormat))
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(version)))
	b.Write(tok[:])
	b.Write(binary.LittleEndian.AppendUint64(nil, rc.seed))
	names := make([]string, 0, len(recs))
	for name := range recs {
		if _, ok := rc.fps[name]; ok && len(name) <= 0xffff {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(names))))
	var num [8]byte
	for _, name := range names {
		fp := rc.fps[name]
		b.Write(binary.LittleEndian.AppendUint16(num[:0], uint16(len(name))))
		b.WriteString(name)
		b.Write(fp[:])
		es := recs[name]
		b.Write(binary.LittleEndian.AppendUint32(num[:0], uint32(len(es))))
		for i := range es {
			b.Write(binary.LittleEndian.AppendUint64(num[:0], es[i].hash))
			b.WriteByte(es[i].flags)
			b.WriteByte(byte(len(es[i].email)))
			b.WriteString(es[i].email)
		}
	}
	b.Write(binary.LittleEndian.AppendUint32(num[:0], crc32.Checksum(b.Bytes(), castagnoli)))
	tmp := rc.path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("render cache: %w", err)
	}
	if err := os.Rename(tmp, rc.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("render cache: %w", err)
	}
	ok, err := db.SetRenderCacheToken(ctx, version, hex.EncodeToString(tok[:]))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("render cache: the state moved past version %d", version)
	}
	return nil
}
