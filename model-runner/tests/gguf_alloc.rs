//! Lying lengths and counts must not turn into large allocations: a counting global
//! allocator records the largest single request while malformed files are parsed.
//! (One test function, so no other test thread allocates concurrently.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bitnet_runner::gguf::{GgufError, parse};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged, only recording request sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(n_tensors.to_le_bytes());
    v.extend(n_kv.to_le_bytes());
    v
}

fn kv_header(key: &str, ty: u32) -> Vec<u8> {
    let mut v = header(0, 1);
    v.extend((key.len() as u64).to_le_bytes());
    v.extend(key.as_bytes());
    v.extend(ty.to_le_bytes());
    v
}

/// Largest single allocation made while parsing `bytes` (which must be rejected).
fn largest_alloc_while_rejecting(bytes: &[u8]) -> (usize, GgufError) {
    LARGEST.store(0, Ordering::Relaxed);
    let e = parse(bytes).expect_err("malformed input must be rejected");
    (LARGEST.load(Ordering::Relaxed), e)
}

#[test]
fn lying_lengths_and_counts_do_not_allocate() {
    const SMALL: usize = 64 << 10;

    // A string claiming 2^40 bytes.
    let mut s = kv_header("k", 8);
    s.extend((1u64 << 40).to_le_bytes());
    s.extend([0u8; 64]);
    let (largest, e) = largest_alloc_while_rejecting(&s);
    assert!(matches!(e, GgufError::StringTooLong { .. }), "{e}");
    assert!(largest < SMALL, "string: {largest} bytes allocated");

    // Counts of u64::MAX.
    for (t, k) in [(u64::MAX, 0), (0, u64::MAX), (u64::MAX, u64::MAX)] {
        let mut v = header(t, k);
        v.extend([0u8; 256]);
        let (largest, _) = largest_alloc_while_rejecting(&v);
        assert!(largest < SMALL, "counts {t}/{k}: {largest} bytes allocated");
    }

    // Arrays claiming u64::MAX / 2^40 elements of each element kind.
    for elem in [0u32, 5, 8, 9, 12] {
        for count in [u64::MAX, 1 << 40] {
            let mut v = kv_header("arr", 9);
            v.extend(elem.to_le_bytes());
            v.extend(count.to_le_bytes());
            v.extend([0u8; 256]);
            let (largest, e) = largest_alloc_while_rejecting(&v);
            assert!(matches!(e, GgufError::ArrayPastEnd { .. }), "{e}");
            assert!(
                largest < SMALL,
                "array type {elem} x {count}: {largest} bytes allocated"
            );
        }
    }

    // The largest tensor count that passes the size check, over 8 MiB of zeros: the
    // first info is invalid, so speculative capacity must stay capped.
    let zeros = 8 << 20;
    let mut v = header(zeros as u64 / 33, 0);
    v.resize(v.len() + zeros, 0);
    let (largest, e) = largest_alloc_while_rejecting(&v);
    assert!(matches!(e, GgufError::EmptyTensorName { .. }), "{e}");
    assert!(
        largest <= 8 << 20,
        "tensor count: {largest} bytes allocated"
    );
}
