//go:build !linux

package daemon

// lowerPriority does nothing outside Linux (nice is per process elsewhere, and the
// answering process would inherit it).
func (d *daemon) lowerPriority() {}
