//! Reuse of large message buffers (gRPC-Go's `mem.BufferPool`).
//!
//! A 1 MiB call fills two fresh 1 MiB buffers on each side: the received message assembled
//! from its DATA frames, and the frame a message is encoded into. Fresh memory of that size
//! costs more than the copy into it: glibc serves it from the top of the heap (or a new
//! mapping) and gives it back to the kernel when freed, so every call pays a page fault and a
//! zeroed page per 4 KiB, and the unmapping: about a fifth of the server's CPU per 1 MiB call
//! (perf, h2load at c=4), which this pool took from 2.35 to 1.26-1.40 ms. Buffers from it
//! keep their pages: a message frozen from one returns the buffer here when the last
//! [`Bytes`] slice of it drops.
//!
//! Only buffers of at least [`MIN_POOLED`] bytes are pooled (smaller ones reuse freed heap
//! chunks without faulting), in power-of-two size classes up to 16 MiB, and the pool holds
//! at most [`MAX_POOLED_BYTES`] in all: that is what an idle process keeps after a burst of
//! large messages. A buffer that finds the pool full is freed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// The smallest buffer the pool keeps: 32 KiB.
pub(crate) const MIN_POOLED: usize = 1 << MIN_CLASS;
/// The most the pool holds at once, across size classes: 16 MiB.
pub(crate) const MAX_POOLED_BYTES: usize = 16 << 20;

const MIN_CLASS: u32 = 15;
const MAX_CLASS: u32 = 24;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
/// Room past each class's power of two, so that a message of exactly 2^k bytes and its
/// 5-byte gRPC prefix fit class k, not twice the size.
const SLACK: usize = 64;

/// The process's pool, as gRPC-Go's default one: shared by every channel and server.
static POOL: Pool = Pool::new();

struct Pool {
    classes: [Mutex<Vec<Vec<u8>>>; CLASSES],
    /// Capacity of the buffers held, summed.
    held: AtomicUsize,
}

/// The capacity of size class `class`.
fn class_size(class: usize) -> usize {
    (1usize << (MIN_CLASS as usize + class)) + SLACK
}

/// The smallest class whose buffers hold `len` bytes, if one does.
fn class_for_len(len: usize) -> Option<usize> {
    (0..CLASSES).find(|&c| class_size(c) >= len)
}

/// The largest class a buffer of capacity `cap` can serve, if any.
fn class_for_capacity(cap: usize) -> Option<usize> {
    (0..CLASSES).rev().find(|&c| class_size(c) <= cap)
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            classes: [const { Mutex::new(Vec::new()) }; CLASSES],
            held: AtomicUsize::new(0),
        }
    }

    fn take(&self, class: usize) -> Option<Vec<u8>> {
        let vec = self.classes[class].lock().ok()?.pop()?;
        self.held.fetch_sub(vec.capacity(), Ordering::Relaxed);
        Some(vec)
    }

    fn give(&self, mut vec: Vec<u8>) {
        let Some(class) = class_for_capacity(vec.capacity()) else {
            return;
        };
        let cap = vec.capacity();
        // Reserve the room first, so that racing returns never push the total past the cap.
        if self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held + cap <= MAX_POOLED_BYTES).then_some(held + cap)
            })
            .is_err()
        {
            return;
        }
        vec.clear();
        match self.classes[class].lock() {
            Ok(mut list) => list.push(vec),
            Err(_) => {
                self.held.fetch_sub(cap, Ordering::Relaxed);
            }
        }
    }
}

/// An empty vector with room for at least `len` bytes: a pooled one for `len` of at least
/// [`MIN_POOLED`] (freeze it with [`freeze`] to return it), else a fresh one to the byte.
pub(crate) fn vec_with_capacity(len: usize) -> Vec<u8> {
    POOL.vec_with_capacity(len)
}

/// Gives `vec` back to the pool (if it is of a pooled size and the pool has room).
pub(crate) fn recycle(vec: Vec<u8>) {
    POOL.give(vec);
}

/// `vec`'s bytes as [`Bytes`]; its buffer goes back to the pool when the last slice of them
/// drops, if it is of a pooled size. Smaller ones convert as `Bytes::from` does.
pub(crate) fn freeze(vec: Vec<u8>) -> Bytes {
    POOL.freeze(vec)
}

impl Pool {
    fn vec_with_capacity(&self, len: usize) -> Vec<u8> {
        if len < MIN_POOLED {
            return Vec::with_capacity(len);
        }
        match class_for_len(len) {
            Some(class) => self
                .take(class)
                .unwrap_or_else(|| Vec::with_capacity(class_size(class))),
            None => Vec::with_capacity(len),
        }
    }

    fn freeze(&'static self, vec: Vec<u8>) -> Bytes {
        if vec.capacity() < MIN_POOLED {
            return Bytes::from(vec);
        }
        Bytes::from_owner(Pooled { vec, pool: self })
    }
}

/// A pooled buffer behind a [`Bytes`]: back to its pool on drop.
struct Pooled {
    vec: Vec<u8>,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.vec
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.vec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_fit_a_prefixed_power_of_two() {
        assert_eq!(class_for_len(MIN_POOLED), Some(0));
        // A 1 MiB message and its 5-byte prefix take the 1 MiB class, not the 2 MiB one.
        let c = class_for_len((1 << 20) + 5).unwrap();
        assert_eq!(class_size(c), (1 << 20) + SLACK);
        assert_eq!(
            class_for_len((1 << 20) + SLACK + 1).map(class_size),
            Some((2 << 20) + SLACK)
        );
        assert_eq!(class_for_len((16 << 20) + SLACK + 1), None);
        assert_eq!(class_for_capacity(MIN_POOLED - 1), None);
        assert_eq!(
            class_for_capacity((3 << 20) + 100).map(class_size),
            Some((2 << 20) + SLACK)
        );
    }

    #[test]
    fn small_buffers_are_exact_and_not_pooled() {
        let v = vec_with_capacity(100);
        assert_eq!(v.capacity(), 100);
        let b = freeze(b"abc".to_vec());
        assert_eq!(&b[..], b"abc");
    }

    #[test]
    fn a_frozen_buffer_comes_back_when_its_last_slice_drops() {
        // A pool of its own, so that tests running at once do not interfere.
        static POOL: Pool = Pool::new();
        let len = (1 << 20) + 5;
        let mut v = POOL.vec_with_capacity(len);
        v.extend_from_slice(&[7; 1000]);
        let ptr = v.as_ptr();
        let whole = POOL.freeze(v);
        let part = whole.slice(10..20);
        drop(whole);
        assert_eq!(&part[..], &[7; 10]);
        drop(part);
        let again = POOL.vec_with_capacity(len);
        assert_eq!(again.as_ptr(), ptr, "the same buffer, reused");
        assert!(again.is_empty());
        // A buffer that is never frozen can be handed back too.
        POOL.give(again);
        let third = POOL.vec_with_capacity(len);
        assert_eq!(third.as_ptr(), ptr);
        assert_eq!(POOL.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_pool_never_holds_more_than_its_cap() {
        let pool = Pool::new();
        for _ in 0..(MAX_POOLED_BYTES / MIN_POOLED + 10) {
            pool.give(Vec::with_capacity(class_size(0)));
        }
        assert!(pool.held.load(Ordering::Relaxed) <= MAX_POOLED_BYTES);
        let n = pool.classes[0].lock().unwrap().len();
        assert_eq!(n * class_size(0), pool.held.load(Ordering::Relaxed));
    }
}
