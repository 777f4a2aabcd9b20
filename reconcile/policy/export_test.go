package policy

// Tell asks the answering process to load the snapshot file as it is now, as Publish
// does after writing it: a test puts a damaged file there first.
func (s *Supervisor) Tell(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tellLocked(seq)
}
