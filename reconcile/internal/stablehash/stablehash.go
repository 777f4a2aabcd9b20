// Package stablehash is a seeded 64-bit string hash that gives the same value in every
// process for the same seed, for tables and digests written to files that another process
// (or a later run) reads: hash/maphash's seeds cannot be saved. A random seed per file
// keeps its keys from being chosen to collide.
package stablehash

import "math/bits"

const (
	k0 = 0xa0761d6478bd642f
	k1 = 0xe7037ed1a0b428db
)

// String hashes s under seed: eight bytes at a time, each block folded in with a
// 64×64→128-bit multiply (as wyhash does), then a final avalanche, so that both the low
// and the high 32 bits can index a table.
func String(seed uint64, s string) uint64 {
	h := seed ^ k0 ^ uint64(len(s))
	for ; len(s) >= 8; s = s[8:] {
		h = Mix(h^le64(s), k1)
	}
	var tail uint64
	for i := len(s) - 1; i >= 0; i-- {
		tail = tail<<8 | uint64(s[i])
	}
	h = Mix(h^tail, k1^uint64(len(s)))
	// splitmix64's finalizer
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// Mix folds two words into one: the two halves of their 128-bit product, xored.
func Mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// le64 reads the first eight bytes of s, little-endian (the compiler makes it one load).
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
