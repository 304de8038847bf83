//! Per-thread buffers kept between calls, so that once warm a decode step allocates nothing:
//! a call borrows its thread's buffer (grown as needed, never shrunk); a nested call on the
//! same thread, which finds it borrowed, gets a fresh one instead.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::act::{ActsI8, BlockQ8K};

type Buf<T> = RefCell<Vec<T>>;

thread_local! {
    static I8: Buf<i8> = const { RefCell::new(Vec::new()) };
    static I32: Buf<i32> = const { RefCell::new(Vec::new()) };
    static F32: Buf<f32> = const { RefCell::new(Vec::new()) };
    static BLOCKS: Buf<BlockQ8K> = const { RefCell::new(Vec::new()) };
    static ACTS: RefCell<ActsI8> = const { RefCell::new(ActsI8::empty()) };
}

/// Runs `f` on this thread's reusable `len`-long i8 buffer (contents unspecified).
pub(crate) fn with_i8<R>(len: usize, f: impl FnOnce(&mut [i8]) -> R) -> R {
    with(&I8, len, 0, f)
}

/// Runs `f` on this thread's reusable `len`-long i32 buffer (contents unspecified).
pub(crate) fn with_i32<R>(len: usize, f: impl FnOnce(&mut [i32]) -> R) -> R {
    with(&I32, len, 0, f)
}

/// Runs `f` on this thread's reusable `len`-long f32 buffer (contents unspecified).
pub(crate) fn with_f32<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with(&F32, len, 0.0, f)
}

/// Runs `f` on this thread's reusable `len`-long Q8_K block buffer (contents unspecified).
pub(crate) fn with_blocks<R>(len: usize, f: impl FnOnce(&mut [BlockQ8K]) -> R) -> R {
    let zero = BlockQ8K {
        d: 0.0,
        qs: [0; 256],
        bsums: [0; 16],
    };
    with(&BLOCKS, len, zero, f)
}

fn with<T: Copy, R>(
    key: &'static LocalKey<Buf<T>>,
    len: usize,
    fill: T,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, fill);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![fill; len]),
    })
}

/// Runs `f` on this thread's reusable activations (contents unspecified).
pub(crate) fn with_acts<R>(f: impl FnOnce(&mut ActsI8) -> R) -> R {
    ACTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut a) => f(&mut a),
        Err(_) => f(&mut ActsI8::empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer is reused at its grown size; a nested borrow gets its own.
    #[test]
    fn reused_and_nested() {
        let p1 = with_i8(100, |b| {
            b.fill(7);
            b.as_ptr() as usize
        });
        let p2 = with_i8(50, |b| {
            assert_eq!(b.len(), 50);
            let inner = with_i8(10, |c| c.as_ptr() as usize);
            assert_ne!(inner, b.as_ptr() as usize);
            b.as_ptr() as usize
        });
        assert_eq!(p1, p2);
    }
}
