//go:build unix

package policy

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only and shared: the answering process's snapshot
// lives in the page cache, not on its heap.
func mapFile(f *os.File, size int) ([]byte, func(), error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { syscall.Munmap(b) }, nil
}

// mapCounters maps the counters file read-write and shared: the answering process
// counts, the daemon reads the same words.
func mapCounters(f *os.File) (*Counters, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, CountersFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return CountersOver(b)
}
