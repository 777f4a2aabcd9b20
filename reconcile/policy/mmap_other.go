//go:build !unix

package policy

import (
	"errors"
	"io"
	"os"
)

// mapFile reads the file where mmap is not available.
func mapFile(f *os.File, size int) ([]byte, func(), error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}

func mapCounters(*os.File) (*Counters, error) {
	return nil, errors.New("shared counters need mmap (unix)")
}
