package persistence

// ReleaseMapped tells the kernel that this process does not need fsm.db's mapped pages
// resident. bbolt reads the file through a shared, read-only mmap, and every page a read
// touched stays mapped, counted in the process's RSS, until the kernel reclaims it. The
// full passes over the file (the check at start, a Raft snapshot, the health prober's
// first read) touch all of it, so without this the whole file, most of which steady
// operation never reads again, sits in RSS.
//
// The pages stay in the page cache: the next read that needs one maps it again without
// going to disk. Nothing is lost (the mapping is read-only; writes go through the
// file), so this only moves clean file pages out of this process's resident set. It is
// best-effort and does nothing on systems without madvise.
func (s *Store) ReleaseMapped() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return
	}
	// A read transaction holds bbolt's mmap lock, so the mapping cannot move or grow
	// while it is advised; its size is the file's as of this transaction.
	btx, err := s.db.Begin(false)
	if err != nil {
		return
	}
	defer func() { _ = btx.Rollback() }()
	releaseMapped(s.db.Info().Data, btx.Size())
}
