//! A counting global allocator, for tests that bound what reading a hostile file may allocate.
//!
//! Install it in the test binary (`#[global_allocator] static A: Counting = Counting;`) and keep
//! that binary to one `#[test]`: the counters are process-wide, so concurrent tests would blur
//! them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting live bytes, their peak and the largest single request.
pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }
}

/// What `f` allocated while it ran: the peak of live bytes above what was live before, and the
/// largest single allocation (or reallocation) it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    pub peak: usize,
    pub largest: usize,
}

/// Runs `f` and measures its allocations. Meaningful only with [`Counting`] installed as the
/// global allocator; otherwise both figures are 0.
pub fn measure<R>(f: impl FnOnce() -> R) -> (Allocated, R) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    let out = f();
    let allocated =
        Allocated { peak: PEAK.load(Relaxed).saturating_sub(base), largest: LARGEST.load(Relaxed) };
    (allocated, out)
}

/// Declared counts no file of a few KiB can back: what the allocation-bound tests put in every
/// size field of a header.
pub const HOSTILE_COUNTS: [(&str, u64); 5] = [
    ("2^40", 1 << 40),
    ("2^48", 1 << 48),
    ("2^62", 1 << 62),
    ("2^63", 1 << 63),
    ("u64::MAX", u64::MAX),
];
