//! Memory per key, measured with a counting allocator: the heap the store holds for N keys
//! of 16 bytes with 100-byte values, against their raw size. The default run uses 200 000
//! keys; `cargo test -p zhub-kvstore --release --test memory -- --ignored` runs 1 000 000.
//!
//! Bytes counted are the bytes asked of the allocator. The allocator adds its own: glibc's
//! malloc rounds every block up to a multiple of 16 with 8 bytes of header (a 16-byte key
//! takes 32, a 100-byte value 112), which the printed "with malloc rounding" figure includes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use zhub_eventlog::Fsync;
use zhub_kvstore::{KvConfig, KvStore};

/// Counts live bytes, as asked and as malloc would round them.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static LIVE_ROUNDED: AtomicI64 = AtomicI64::new(0);
static BLOCKS: AtomicU64 = AtomicU64::new(0);

fn rounded(size: usize) -> i64 {
    // glibc: size + 8 bytes of header, rounded up to 16, at least 32.
    (((size + 8 + 15) & !15).max(32)) as i64
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        LIVE_ROUNDED.fetch_add(rounded(layout.size()), Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_ROUNDED.fetch_sub(rounded(layout.size()), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        LIVE_ROUNDED.fetch_add(
            rounded(new_size) - rounded(layout.size()),
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const T0: i64 = 1_700_000_000_000_000;

/// Key `i`, visited in a scattered order (as real keys arrive) or in order.
fn key(i: u64, scattered: bool) -> String {
    // 1_000_003 is prime, so for i below it i -> i * 7919 mod p never repeats.
    let j = if scattered { (i * 7919) % 1_000_003 } else { i };
    format!("key/{j:012}") // 16 bytes
}

/// (bytes asked, bytes with malloc rounding) held per key beyond nothing, after `n` puts,
/// and again after a reopen from a snapshot.
fn measure(n: u64, scattered: bool) -> [(f64, f64); 2] {
    let dir = tempfile::tempdir().unwrap();
    let config = KvConfig::default().fsync(Fsync::Never).snapshot_every(0);
    let base = (
        LIVE.load(Ordering::Relaxed),
        LIVE_ROUNDED.load(Ordering::Relaxed),
    );
    let mut kv = KvStore::open(dir.path(), config.clone()).unwrap();
    let value = [0x5Au8; 100];
    for i in 0..n {
        kv.put(&key(i, scattered), &value, None, T0).unwrap();
    }
    let live = (
        LIVE.load(Ordering::Relaxed),
        LIVE_ROUNDED.load(Ordering::Relaxed),
    );
    let grown = ((live.0 - base.0) as f64, (live.1 - base.1) as f64);
    kv.snapshot().unwrap();
    drop(kv);
    let base = (
        LIVE.load(Ordering::Relaxed),
        LIVE_ROUNDED.load(Ordering::Relaxed),
    );
    let kv = KvStore::open(dir.path(), config).unwrap();
    let live = (
        LIVE.load(Ordering::Relaxed),
        LIVE_ROUNDED.load(Ordering::Relaxed),
    );
    assert_eq!(kv.len() as u64, n);
    let reopened = ((live.0 - base.0) as f64, (live.1 - base.1) as f64);
    let per = |(a, r): (f64, f64)| (a / n as f64, r / n as f64);
    [per(grown), per(reopened)]
}

fn check(n: u64) {
    let raw = 16.0 + 100.0;
    for scattered in [false, true] {
        let [grown, reopened] = measure(n, scattered);
        for (what, (asked, rounded)) in [("after puts", grown), ("after reopen", reopened)] {
            println!(
                "{n} keys, {} order, {what}: {asked:.1} B/key asked ({:.2}x raw), \
                 {rounded:.1} B/key with malloc rounding ({:.2}x raw)",
                if scattered { "scattered" } else { "sequential" },
                asked / raw,
                rounded / raw,
            );
            assert!(asked <= 2.0 * raw, "{asked} bytes a key");
            assert!(
                rounded <= 2.0 * raw,
                "{rounded} bytes a key with malloc rounding"
            );
        }
    }
}

// One test per binary, so that no other test's allocations are counted.
#[test]
fn memory_per_key_is_at_most_twice_the_raw_bytes() {
    check(200_000);
}

#[test]
#[ignore = "a million keys: run in release with --ignored"]
fn memory_per_key_for_a_million_keys() {
    check(1_000_000);
}
