package policy

import "math/bits"

// hashAlias hashes a folded alias under seed. It is deterministic for a given seed (unlike
// hash/maphash, whose seeds cannot be saved): the answering process probes tables that
// the daemon placed, reading the seed from the snapshot file. A random seed per snapshot
// keeps a directory's aliases from being chosen to collide.
//
// Eight bytes at a time, each block folded in with a 64×64→128-bit multiply (as wyhash
// does), then a final avalanche: the table uses both the low and the high 32 bits.
func hashAlias(seed uint64, s string) uint64 {
	const (
		k0 = 0xa0761d6478bd642f
		k1 = 0xe7037ed1a0b428db
	)
	h := seed ^ k0 ^ uint64(len(s))
	for ; len(s) >= 8; s = s[8:] {
		h = mix(h^le64(s), k1)
	}
	var tail uint64
	for i := len(s) - 1; i >= 0; i-- {
		tail = tail<<8 | uint64(s[i])
	}
	h = mix(h^tail, k1^uint64(len(s)))
	// splitmix64's finalizer
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// le64 reads the first eight bytes of s, little-endian (the compiler makes it one load).
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
