//go:build !unix

package loop

import "errors"

// AcquireLock is not available on this platform: roster's daemon runs on unix.
func AcquireLock(path string) (release func() error, err error) {
	return nil, errors.New("lock " + path + ": file locks need a unix system")
}
