//! A persistent team of threads for the many short fork-join calls of a forward pass
//! (~240 per decoded token, each 10–500 µs).
//!
//! The calling thread leads: it publishes the call, works as participant 0 and waits for
//! the others. Workers poll for the next call for [`SPIN`] after finishing one (calls follow
//! each other within microseconds during a decode), then poll between `sched_yield`s for
//! [`YIELD`] (any other runnable thread gets the core), then park: a team left idle costs
//! nothing after a millisecond, and a loaded machine gets the cores back at once. Waking a
//! parked worker is one `unpark`; a polling one needs nothing but the epoch store.
//!
//! Nested or concurrent use never blocks: a call made from inside a call, or while another
//! thread leads the team, runs its participants one after another on the calling thread.
//! Callers split work so that any order of participants gives the same bits.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker polls for the next call (spin-loop hints only).
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// How long it then keeps checking between `yield`s (other runnable threads get the core)
/// before it parks: the serial stretches of a prefill (norms, activations of 128 tokens)
/// last a few hundred microseconds, and a parked worker takes tens of microseconds to wake.
pub(crate) const YIELD: Duration = Duration::from_micros(1000);
/// Polls between clock reads while spinning.
const POLLS_PER_CLOCK: u32 = 64;
/// Polls the leader makes for stragglers before it starts yielding its core to them.
const LEADER_POLLS: u32 = 1 << 12;

/// One call's work: `f(participant)` for every participant `0..size`.
pub(crate) type Job<'a> = dyn Fn(usize) + Sync + 'a;

thread_local! {
    /// Set while this thread runs a participant of some call (and on every worker).
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
}

struct Shared {
    /// Bumped once per call; workers start a call when they see it move.
    epoch: AtomicU64,
    /// `*const &Job` of the current call, on the leader's stack; valid while `pending > 0`.
    job: AtomicPtr<()>,
    /// Workers that have not finished the current call.
    pending: AtomicUsize,
    /// A worker's participant panicked during the current call.
    panicked: AtomicBool,
    /// Worker `i` (participant `i + 1`) is parked or about to park.
    sleeping: Vec<AtomicBool>,
    shutdown: AtomicBool,
}

/// A leader slot plus `size - 1` parked-or-polling workers.
pub(crate) struct Team {
    size: usize,
    shared: Arc<Shared>,
    workers: Vec<Thread>,
    lead: Mutex<()>,
}

impl Team {
    /// A team of `size` participants (≥ 1): the caller of [`Team::run`] and `size - 1`
    /// spawned workers named `{name}-{i}`.
    pub(crate) fn new(size: usize, name: &str) -> std::io::Result<Team> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleeping: (1..size).map(|_| AtomicBool::new(false)).collect(),
            shutdown: AtomicBool::new(false),
        });
        let mut workers = Vec::with_capacity(size - 1);
        for i in 1..size {
            let s = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&s, i));
            match spawned {
                Ok(h) => workers.push(h.thread().clone()),
                Err(e) => {
                    stop(&shared, &workers);
                    return Err(e);
                }
            }
        }
        Ok(Team {
            size,
            shared,
            workers,
            lead: Mutex::new(()),
        })
    }

    /// Participants per call.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Runs `f(i)` once for every participant `i < size` and returns when all have
    /// returned; concurrently on the team, or serially on this thread when it is already
    /// inside a call or another thread leads the team. A panic in any participant is
    /// re-raised here after all have finished.
    pub(crate) fn run(&self, f: &Job<'_>) {
        let serial = || (0..self.size).for_each(f);
        if self.size == 1 || IN_CALL.get() {
            return serial();
        }
        let _lead = match self.lead.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return serial(),
        };
        let s = &*self.shared;
        s.pending.store(self.size - 1, Ordering::Relaxed);
        let job: *const &Job<'_> = &f;
        s.job.store(job as *mut (), Ordering::Release);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for (sleeping, t) in s.sleeping.iter().zip(&self.workers) {
            if sleeping.load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        IN_CALL.set(true);
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        IN_CALL.set(false);
        // `f` must outlive every worker's use of it: wait even if our own part panicked.
        let mut polls = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            if polls < LEADER_POLLS {
                polls += 1;
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        s.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        let theirs = s.panicked.swap(false, Ordering::Relaxed);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        assert!(!theirs, "a team worker panicked");
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        stop(&self.shared, &self.workers);
    }
}

/// Tells the workers to exit and wakes them.
fn stop(shared: &Shared, workers: &[Thread]) {
    shared.shutdown.store(true, Ordering::SeqCst);
    shared.epoch.fetch_add(1, Ordering::SeqCst);
    workers.iter().for_each(Thread::unpark);
}

fn worker(s: &Shared, participant: usize) {
    IN_CALL.set(true);
    let mut seen = 0u64;
    loop {
        seen = wait_for_call(s, participant - 1, seen);
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        let job = s.job.load(Ordering::Acquire) as *const &Job<'_>;
        // SAFETY: the leader stored a pointer to its `&Job` (on its stack) before moving
        // the epoch we just saw (Release/Acquire), and keeps both alive until `pending`
        // reaches zero, which cannot happen before our `fetch_sub` below.
        let f: &Job<'_> = unsafe { *job };
        if catch_unwind(AssertUnwindSafe(|| f(participant))).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

/// Polls for an epoch other than `seen` for [`SPIN`], then between yields for [`YIELD`],
/// then parks until one arrives.
fn wait_for_call(s: &Shared, slot: usize, seen: u64) -> u64 {
    let start = Instant::now();
    let mut polls = 0u32;
    let mut yielding = false;
    loop {
        let e = s.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        if yielding {
            if start.elapsed() > SPIN + YIELD {
                break;
            }
            thread::yield_now();
            continue;
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(POLLS_PER_CLOCK) && start.elapsed() > SPIN {
            yielding = true;
        }
        std::hint::spin_loop();
    }
    // Sleep. The leader moves the epoch, then reads `sleeping`; we set `sleeping`, then read
    // the epoch (all SeqCst): one of us sees the other, so no call is missed.
    let sleeping = &s.sleeping[slot];
    sleeping.store(true, Ordering::SeqCst);
    let mut e = s.epoch.load(Ordering::SeqCst);
    while e == seen {
        thread::park();
        e = s.epoch.load(Ordering::SeqCst);
    }
    sleeping.store(false, Ordering::Relaxed);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Every participant runs exactly once per call, on distinct threads, over many
    /// back-to-back calls and after the workers have parked.
    #[test]
    fn every_participant_runs_once_per_call() {
        for size in 1..=4 {
            let team = Team::new(size, "test").unwrap();
            for round in 0..200 {
                let hits: Vec<AtomicU32> = (0..size).map(|_| AtomicU32::new(0)).collect();
                team.run(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "round {round}"
                );
                if round % 50 == 0 {
                    thread::sleep((SPIN + YIELD) * 2);
                }
            }
        }
    }

    /// A call from inside a call runs serially instead of deadlocking.
    #[test]
    fn nested_calls_run_serially() {
        let team = Team::new(2, "test").unwrap();
        let total = AtomicU32::new(0);
        team.run(&|_| {
            team.run(&|_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 4);
    }

    /// Several threads sharing one team all complete; a panic in a participant reaches the
    /// caller and leaves the team usable.
    #[test]
    fn concurrent_callers_and_panics() {
        let team = Team::new(3, "test").unwrap();
        let total = AtomicU32::new(0);
        thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..100 {
                        team.run(&|_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 100 * 3);
        for bad in 0..3 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                team.run(&|i| assert_ne!(i, bad, "participant {i} fails"));
            }));
            assert!(r.is_err(), "participant {bad}'s panic is re-raised");
        }
        let after = AtomicU32::new(0);
        team.run(&|_| {
            after.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(after.load(Ordering::Relaxed), 3);
    }
}
