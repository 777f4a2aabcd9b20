package pattern

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

// stableBytes derives n bytes from HMAC-SHA256(key, domain|template|entry|field|block).
func stableBytes(key []byte, template, entryKey, field string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [4]byte
	for block := uint32(0); len(out) < n; block++ {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("roster/pattern/stable/v1\x00"))
		for _, s := range []string{template, entryKey, field} {
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(s)))
			m.Write(l[:])
			m.Write([]byte(s))
		}
		binary.BigEndian.PutUint32(ctr[:], block)
		m.Write(ctr[:])
		out = m.Sum(out)
	}
	return out[:n]
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
	out := make([]byte, 0, n)
	for round := 0; len(out) < n; round++ {
		f := field
		if round > 0 {
			f = field + "\x00more" + strconv.Itoa(round)
		}
		for _, c := range stableBytes(key, template, entryKey, f, 2*n+16) {
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
