package pattern

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

const stableDomain = "roster/pattern/stable/v1\x00"

// stableBytesAppend appends n bytes derived from
// HMAC-SHA256(key, domain|template|entry|field|block) to dst, block = 0, 1, …
// (each string prefixed with its 64-bit big-endian length, block a 32-bit
// big-endian counter). It computes HMAC by hand over stack buffers so that
// the hot path (a PIN per rendered pattern) does not allocate; TestStableHMAC
// checks it against crypto/hmac.
func stableBytesAppend(dst, key []byte, template, entryKey, field string, n int) []byte {
	const block = 64 // SHA-256 block size
	var k [block]byte
	if len(key) > block {
		s := sha256.Sum256(key)
		copy(k[:], s[:])
	} else {
		copy(k[:], key)
	}
	var mbuf [256]byte
	m := mbuf[:0]
	for _, c := range k {
		m = append(m, c^0x36)
	}
	m = append(m, stableDomain...)
	for _, s := range [3]string{template, entryKey, field} {
		m = binary.BigEndian.AppendUint64(m, uint64(len(s)))
		m = append(m, s...)
	}
	ctr := len(m)
	m = append(m, 0, 0, 0, 0)
	var outer [block + sha256.Size]byte
	for i, c := range k {
		outer[i] = c ^ 0x5c
	}
	start := len(dst)
	for b := uint32(0); len(dst)-start < n; b++ {
		binary.BigEndian.PutUint32(m[ctr:], b)
		inner := sha256.Sum256(m)
		copy(outer[block:], inner[:])
		sum := sha256.Sum256(outer[:])
		dst = append(dst, sum[:]...)
	}
	return dst[:start+n]
}

// StableSecret returns n characters drawn uniformly from alphabet, derived
// with HMAC-SHA256 from key and (template, entryKey, field). The same inputs
// always give the same value, so re-rendering never rotates a PIN or a
// generated device password; different inputs give unrelated values. It
// returns "" when n < 1 or alphabet is empty. alphabet is taken byte-wise
// and should be ASCII.
func StableSecret(key []byte, template, entryKey, field string, n int, alphabet string) string {
	if n < 1 || len(alphabet) == 0 {
		return ""
	}
	if len(alphabet) > 256 {
		alphabet = alphabet[:256]
	}
	limit := 256 - 256%len(alphabet) // reject bytes >= limit: no modulo bias
	var obuf [64]byte
	var bbuf [160]byte
	out := obuf[:0]
	for round := 0; len(out) < n; round++ {
		f := field
		if round > 0 {
			f = field + "\x00more" + strconv.Itoa(round)
		}
		for _, c := range stableBytesAppend(bbuf[:0], key, template, entryKey, f, 2*n+16) {
			if int(c) < limit {
				out = append(out, alphabet[int(c)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}
