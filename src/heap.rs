//! The process's allocator: mimalloc (LiveView renders are allocation-bound, and glibc's
//! malloc took a third of the server's CPU on a move fanned out to 50 boards).
//!
//! Built with the `heap-stats` feature it also counts the bytes in use, shown at `/metrics`
//! as `demiurge_heap_live_bytes`: the board bench reads it for the memory an open board costs
//! (the resident size moves with what the allocator keeps or returns, not with what is used).
//! Off by default: the count is an atomic add on every allocation.

use std::alloc::{GlobalAlloc, Layout};
#[cfg(feature = "heap-stats")]
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// The global allocator the binary installs.
pub struct Allocator;

#[cfg(feature = "heap-stats")]
static LIVE: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn counted(_grow: isize) {
    #[cfg(feature = "heap-stats")]
    {
        if _grow >= 0 {
            LIVE.fetch_add(_grow as usize, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(_grow.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to mimalloc with the caller's arguments; the count on the
// side touches no memory the allocator hands out.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which MiMalloc shares.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            counted(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        unsafe { MiMalloc.dealloc(ptr, layout) };
        counted(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid for `layout`'s alignment.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Bytes in use through [`Allocator`], when the binary counts them (`heap-stats`).
pub fn live_bytes() -> Option<usize> {
    #[cfg(feature = "heap-stats")]
    {
        Some(LIVE.load(Ordering::Relaxed))
    }
    #[cfg(not(feature = "heap-stats"))]
    {
        None
    }
}
