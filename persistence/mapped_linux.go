package persistence

import "syscall"

// releaseMapped drops addr..addr+n (a shared file mapping) from the resident set:
// MADV_DONTNEED on a shared file mapping unmaps the pages; later accesses map them
// again from the page cache, with the file's current contents.
func releaseMapped(addr uintptr, n int64) {
	if addr == 0 || n <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_DONTNEED)
}
