//! Committing: the only code that writes the file. A commit takes the records queued, encodes
//! them as one frame, appends it with one write and one `fdatasync`, and only then answers
//! their callers.
//!
//! Two kinds of committer take turns, one at a time, holding [`Core`]:
//! - the writer thread, which commits whatever is queued and, with many requests running,
//!   holds a commit open a little for more (group commit);
//! - at light load, the caller itself when it asks to ([`crate::Pending::commit_now`]) and
//!   nobody is committing (the *leader*, see [`Shared::lead`]). Its record reaches the disk without two
//!   hand-offs between threads, each a wake-up of an idle CPU, which at one request at a time
//!   cost about as much as the flush.
//!
//! Either way the frames follow the queue's order, which is the books' order: records leave
//! the queue only in order and only to the holder of the core, who commits them before
//! letting go of it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chain::{next_hash, Signer};
use crate::error::LedgerError;
use crate::ledger::{Job, Receipt, Shared, WRITER_STOPPED};
use crate::store::{Appender, FrameBuilder, Head};

/// What a commit needs, held by one committer at a time.
pub(crate) struct Core {
    /// `None` once the ledger is closed: the file is closed with it, even while reservations
    /// or records still refer to the ledger.
    appender: Option<Appender>,
    signer: Signer,
    /// The last committed record.
    head: Head,
    durable: bool,
    frame: Vec<u8>,
    hashes: Vec<[u8; 32]>,
    /// Why committing stopped for good (a failed or interrupted commit): the file may hold
    /// less than the books, so nothing more may be written.
    failed: Option<Arc<str>>,
}

impl Core {
    pub(crate) fn new(mut appender: Appender, signer: Signer, head: Head, durable: bool) -> Core {
        appender.set_durable(durable);
        Core {
            appender: Some(appender),
            signer,
            head,
            durable,
            frame: Vec::new(),
            hashes: Vec::new(),
            failed: None,
        }
    }

    /// Commits `batch` (taken from the front of the queue by the holder of this core) and
    /// answers each of its callers; empties `batch`. On failure the ledger stops and every
    /// caller, queued ones included, gets the error.
    pub(crate) fn commit_and_answer(&mut self, shared: &Shared, batch: &mut Vec<Job>) {
        match self.commit(shared, batch) {
            Ok(()) => {
                for (job, hash) in batch.drain(..).zip(&self.hashes) {
                    // A caller that stopped waiting is no error: its record is committed anyway.
                    let _ = job.reply.send(Ok(Receipt {
                        seqno: job.seqno,
                        hash: *hash,
                    }));
                }
            }
            Err(reason) => stop(shared, reason, batch),
        }
    }

    /// Encodes and chains `batch`, signs its end, and appends it as one frame.
    fn commit(&mut self, shared: &Shared, batch: &[Job]) -> Result<(), Arc<str>> {
        if let Some(reason) = &self.failed {
            return Err(reason.clone());
        }
        // Cleared below once the frame is on disk: a commit cut short by a panic leaves it
        // set, and nothing is written after it.
        self.failed = Some("a commit was interrupted".into());
        self.hashes.clear();
        FrameBuilder::start(&mut self.frame);
        let mut head = self.head;
        for job in batch {
            if job.seqno != head.seqno + 1 {
                return self.fail(format!(
                    "internal error: seqno {} queued after {}",
                    job.seqno, head.seqno
                ));
            }
            // Each row is seqno, len, h_n ‖ encoding; the hash is filled in once the encoding
            // exists.
            let value = FrameBuilder::row(&mut self.frame, job.seqno);
            job.record.encode(job.seqno, &mut self.frame);
            let hash = next_hash(&head.hash, &self.frame[value + 32..]);
            FrameBuilder::end_row(&mut self.frame, value, &hash);
            self.hashes.push(hash);
            head = Head {
                seqno: job.seqno,
                hash,
            };
        }
        let signature = self.signer.sign_batch(head.seqno, &head.hash);
        FrameBuilder::finish(&mut self.frame, batch.len() as u32, head.seqno, &signature);
        let Some(appender) = self.appender.as_mut() else {
            return self.fail("the ledger is closed");
        };
        let started = Instant::now();
        if let Err(e) = appender.append(&self.frame, self.head.seqno + 1) {
            return self.fail(format!("commit failed: {e}"));
        }
        shared.stats.record_flush(started.elapsed());
        self.failed = None;
        self.head = head;
        shared.lock().committed = head;
        shared.stats.record(batch.len());
        Ok(())
    }

    /// Stops committing for good, for `reason`.
    fn fail(&mut self, reason: impl Into<Arc<str>>) -> Result<(), Arc<str>> {
        let reason = reason.into();
        self.failed = Some(reason.clone());
        Err(reason)
    }
}

/// After a failed commit: the books hold records the file does not, so refuse everything from
/// now on and tell every waiting caller, this batch's and the queue's.
fn stop(shared: &Shared, reason: Arc<str>, batch: &mut Vec<Job>) {
    tracing::error!(%reason, "ledger stopped");
    let queued = {
        let mut state = shared.lock();
        state.stopped = Some(reason.clone());
        state.closed = true;
        let queued = std::mem::take(&mut state.queue);
        shared.unlock_and_wake(state);
        queued
    };
    let error = LedgerError::Unavailable { reason };
    for job in batch.drain(..).chain(queued) {
        let _ = job.reply.send(Err(error.clone()));
    }
}

/// The thread that commits what no caller commits itself.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) commit_delay: Duration,
    pub(crate) commit_siblings: usize,
}

impl Writer {
    /// Waits for queued records, takes them (up to `max_batch`), commits them, answers their
    /// callers; again until the ledger is closed and the queue empty, then flushes.
    pub(crate) fn run(self) -> Result<(), Arc<str>> {
        // If this thread ends any other way (a panic), nobody would commit what is queued:
        // the guard stops the ledger instead, so callers get an error and no hang.
        let _guard = StopOnExit(&self.shared);
        let max_batch = self.shared.max_batch;
        let mut batch: Vec<Job> = Vec::with_capacity(max_batch.min(1024));
        loop {
            {
                let mut state = self.shared.lock();
                let taken = loop {
                    if !state.queue.is_empty() {
                        break Instant::now();
                    }
                    if state.closed {
                        drop(state);
                        return self.finish();
                    }
                    state.writer_waiting = true;
                    state = self.shared.wait(state);
                };
                if self.should_wait(state.queue.len()) {
                    self.shared.stats.delayed.fetch_add(1, Ordering::Relaxed);
                    let until = taken + self.commit_delay;
                    while state.queue.len() < max_batch && !state.closed {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        state.writer_waiting = true;
                        state = self.shared.wait_timeout(state, left);
                    }
                    state.writer_waiting = false;
                }
            }
            let mut core = self.shared.core();
            self.shared.lock().take_batch(max_batch, &mut batch);
            // Empty when a leader took the queue while this thread waited for the core.
            if !batch.is_empty() {
                core.commit_and_answer(&self.shared, &mut batch);
            }
        }
    }

    /// Whether to hold a commit of `queued` records open for more: only with a delay set,
    /// room in the batch, and enough requests running that more charges are due soon.
    fn should_wait(&self, queued: usize) -> bool {
        !self.commit_delay.is_zero()
            && queued < self.shared.max_batch
            && self.shared.open_reservations.load(Ordering::Relaxed) >= self.commit_siblings
    }

    /// At close: reports a failure, or makes a not-durable ledger's writes durable; then
    /// closes the file.
    fn finish(&self) -> Result<(), Arc<str>> {
        let mut core = self.shared.core();
        let appender = core.appender.take();
        let result = match (&core.failed, &appender) {
            (Some(reason), _) => Err(reason.clone()),
            (None, Some(appender)) if !core.durable => appender
                .flush()
                .map_err(|e| -> Arc<str> { format!("flushing the ledger: {e}").into() }),
            (None, _) => Ok(()),
        };
        core.failed
            .get_or_insert_with(|| "the ledger is closed".into());
        drop(appender);
        result
    }
}

/// Stops the ledger when the writer thread ends without being asked to (see [`Writer::run`]).
struct StopOnExit<'a>(&'a Shared);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut batch = Vec::new();
        stop(self.0, WRITER_STOPPED.into(), &mut batch);
    }
}
