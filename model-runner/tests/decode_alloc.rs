//! A decode step allocates nothing once warm: every buffer of the forward pass (activations,
//! arranged activations, attention scratch, KV cache, logits) is preallocated or reused.
//! Counted by a global allocator over all threads (the team's workers included), on both
//! tiny models and on synthetic I2_S and TQ2_0 models large enough for every projection and
//! the head to be split across threads; every ISA, 1 and 2 threads, both heads and both KV
//! cache types.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bitnet_kernels::{Exec, Isa};
use bitnet_runner::gguf::GgufFile;
use bitnet_runner::model::{HeadMode, KvType, Model};
use bitnet_runner::synth::{SynthSpec, SynthType, write_model};

/// Counts allocations (and reallocations) while `COUNTING` is set; forwards everything to
/// the system allocator unchanged.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's own arguments, so `System`'s
// guarantees are ours; the counters are atomics touched without allocating.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded caller contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded caller contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded caller contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Shapes whose projections (≥ 1024 × 1024) and head reach the threads' split threshold.
fn split_spec() -> SynthSpec {
    SynthSpec {
        name: "synth-split".into(),
        hidden: 1024,
        n_layer: 2,
        n_head: 8,
        n_head_kv: 4,
        ffn: 2048,
        vocab: 2048,
        context: 64,
        first_special: 2046,
        bos: 2046,
        eos: 2047,
        ..SynthSpec::tiny()
    }
}

#[test]
fn decode_steps_do_not_allocate() {
    let dir = std::env::temp_dir();
    let mut paths: Vec<(String, bool)> = ["tiny-b158-i2s.gguf", "tiny-b158-tq2.gguf"]
        .iter()
        .map(|n| (format!("{}/models/{n}", env!("CARGO_MANIFEST_DIR")), false))
        .collect();
    for ty in [SynthType::I2s, SynthType::Tq2_0, SynthType::Tq1_0] {
        let p = dir.join(format!(
            "bitnet-decode-alloc-{}-{ty:?}.gguf",
            std::process::id()
        ));
        write_model(&split_spec(), ty, 5, &p, |_, _| {}).unwrap();
        paths.push((p.to_string_lossy().into_owned(), true));
    }
    for (path, temporary) in &paths {
        let file = GgufFile::open(path).unwrap();
        for isa in Isa::available() {
            for threads in [1, 2] {
                for head in [HeadMode::Stored, HeadMode::Int8] {
                    for kv in [KvType::F32, KvType::F16] {
                        let n = count_decode_allocations(
                            &file,
                            Exec::new(isa, threads).unwrap(),
                            head,
                            kv,
                        );
                        assert_eq!(
                            n, 0,
                            "{path} {isa} {threads}T head {head:?} kv {kv:?}: {n} allocations in 4 decode steps"
                        );
                    }
                }
            }
        }
        drop(file);
        if *temporary {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Allocations during 4 decode steps after a 4-token prompt and 2 warm-up steps.
fn count_decode_allocations(file: &GgufFile, exec: Exec, head: HeadMode, kv: KvType) -> usize {
    let mut model = Model::load(file).unwrap();
    model.set_exec(exec);
    model.set_head_mode(head).unwrap();
    model.set_kv_type(kv);
    let mut state = model.new_state(32).unwrap();
    let mut logits = vec![0f32; model.config.vocab_size];
    model
        .forward(&mut state, &[1, 45, 496, 310], Some(&mut logits))
        .unwrap();
    // Warm-up: every thread's reused buffers reach their size.
    for tok in [71, 13] {
        model
            .forward(&mut state, &[tok], Some(&mut logits))
            .unwrap();
    }
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    for tok in [450, 1000, 7, 99] {
        model
            .forward(&mut state, &[tok], Some(&mut logits))
            .unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::Relaxed)
}
