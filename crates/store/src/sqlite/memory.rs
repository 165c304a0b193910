//! Handing the C library's free memory back to the system: the one place
//! this crate calls C itself (everything else goes through rusqlite).
#![allow(unsafe_code)]

/// Gives the free pages of the C library's heaps back to the system.
/// SQLite allocates through the C library's `malloc`, which keeps what is
/// freed in the heap (one arena per thread) for the next `malloc`, so a
/// page cache emptied by [`rusqlite::Connection::release_memory`] still
/// counts in the process's memory until this runs.
pub(super) fn trim_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and may be called from any
    // thread at any time; it only returns free memory of glibc's arenas to
    // the kernel (it locks each arena while it looks).
    unsafe {
        libc::malloc_trim(0);
    }
}
