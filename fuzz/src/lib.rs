//! Shared by every fuzz target: a global allocator with a cap, so that an
//! allocation sized by a length read from the wire is a crash even without
//! AddressSanitizer (`cargo fuzz run -s none`).

use std::alloc::{GlobalAlloc, Layout, System};

/// Larger single allocations abort the process (libFuzzer reports a crash).
pub const MAX_ALLOCATION: usize = 64 << 20;

/// The capped allocator.
pub struct CappedAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the only addition is the size check before allocating, which
// aborts instead of returning.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            std::process::abort();
        }
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` here.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            std::process::abort();
        }
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;
