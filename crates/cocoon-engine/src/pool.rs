//! A small thread pool for the forward pass: the caller and `n - 1` workers run one closure
//! together, each with its own index. A token's forward pass is some 150 such runs of tens of
//! microseconds each, so workers spin between runs (and sleep after a few idle milliseconds):
//! waking a sleeping thread costs more than the work.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Bumped for every run.
    epoch: AtomicUsize,
    /// The current run's closure, valid while `remaining > 0` (lifetime erased).
    job: Mutex<Option<&'static Job>>,
    /// Workers still running the current run.
    remaining: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The pool. Dropping it stops the workers.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(3);

impl Pool {
    /// A pool of `threads` (at least 1: the caller).
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: Mutex::new(None),
            remaining: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("cocoon-engine-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("spawn an engine thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Threads, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(i)` for every thread index `i` in `0..threads()`, the caller taking 0, and
    /// returns when all are done.
    pub fn run<'a>(&self, job: &'a (dyn Fn(usize) + Sync + 'a)) {
        if self.workers.is_empty() {
            job(0);
            return;
        }
        // SAFETY: the reference is only used by workers during this run, and this function
        // does not return before every worker has finished it (`remaining` reaches 0).
        let erased: &'static Job =
            unsafe { std::mem::transmute::<&'a (dyn Fn(usize) + Sync + 'a), &'static Job>(job) };
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(erased);
        self.shared
            .remaining
            .store(self.workers.len(), Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        // A panic in the caller's share must not leave workers holding `job`.
        let caller = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while self.shared.remaining.load(Ordering::Acquire) != 0 {
            pause(&mut spins);
        }
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(panic) = caller {
            std::panic::resume_unwind(panic);
        }
    }
}

/// One wait in a spin loop: a pause instruction at first, then giving the core away, so that
/// with more runnable threads than cores (tests in parallel, a busy machine) the thread being
/// waited for gets to run.
#[inline]
fn pause(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        let idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let epoch = shared.epoch.load(Ordering::SeqCst);
            if epoch != seen {
                seen = epoch;
                break;
            }
            if spins % 1024 != 1023 || idle_since.elapsed() < SPIN {
                pause(&mut spins);
                continue;
            }
            let mut guard = shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            while shared.epoch.load(Ordering::SeqCst) == seen && !shared.stop.load(Ordering::SeqCst)
            {
                guard = shared.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        let job = *shared.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = job {
            // A panicking share is reported by the caller's missing results, never by a hung
            // pool.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index)));
        }
        shared.remaining.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The part of `0..n` that thread `i` of `threads` takes, in multiples of `align`.
pub fn share(n: usize, i: usize, threads: usize, align: usize) -> std::ops::Range<usize> {
    let units = n.div_ceil(align);
    let start = (units * i / threads * align).min(n);
    let end = (units * (i + 1) / threads * align).min(n);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once_per_run() {
        let pool = Pool::new(3);
        for round in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(round + 1, Ordering::Relaxed);
            });
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), round + 1);
            }
        }
        // After the workers went to sleep, a run still wakes them.
        std::thread::sleep(Duration::from_millis(20));
        let hits = AtomicUsize::new(0);
        pool.run(&|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn shares_cover_the_range() {
        for n in [0, 1, 7, 64, 1000] {
            for threads in 1..5 {
                let mut next = 0;
                for i in 0..threads {
                    let r = share(n, i, threads, 4);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
