//! Handing the C library's free memory back to the system: the one place
//! refdesk calls C itself (everything else goes through safe crates), kept
//! in a crate of its own so that every other crate can
//! `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]

/// Gives the free pages of the C library's heaps back to the system, where
/// the C library is glibc (elsewhere it does nothing). SQLite allocates
/// through the C library's `malloc`, which keeps what is freed in the heap
/// (an arena per thread, up to 8 per core) for the next `malloc`, so a page
/// cache emptied by `sqlite3_db_release_memory` still counts in the
/// process's memory until this runs.
pub fn trim_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and may be called from any
    // thread at any time; it only returns free memory of glibc's arenas to
    // the kernel (it locks each arena while it looks).
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// The process's resident memory, in KiB (`/proc/self/smaps_rollup`,
    /// whatever the page size). The whole process's: this test must stay
    /// the crate's only one.
    fn rss_kib() -> usize {
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let line = rollup.lines().find(|l| l.starts_with("Rss:")).expect("an Rss line");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn freed_memory_in_the_middle_of_a_heap_goes_back_to_the_system_and_what_is_live_stays() {
        // 32 MiB in 1 KiB blocks (below glibc's mmap threshold, so in the
        // heap; tests use the C library's allocator), then one block after
        // them, kept, so that freeing them leaves a hole the C library keeps.
        let blocks: Vec<Vec<u8>> = (0..32 * 1024u32).map(|i| vec![(i % 251) as u8; 1024]).collect();
        let kept = vec![7u8; 1024];
        let live: Vec<Vec<u8>> = (0..16u32).map(|i| vec![i as u8; 1024]).collect();
        drop(blocks);
        let before = rss_kib();
        super::trim_c_heap();
        let after = rss_kib();
        assert!(after + 16 * 1024 < before, "RSS {before} KiB -> {after} KiB: the freed 32 MiB stayed");
        assert!(kept.iter().all(|&x| x == 7));
        for (i, b) in live.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8), "live block {i} changed");
        }
    }
}
