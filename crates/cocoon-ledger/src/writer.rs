//! The writer thread: the only code that writes the file. It takes everything queued, encodes
//! it as one frame, appends it with one write and one `fdatasync`, and only then answers the
//! callers.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::chain::{next_hash, Signer};
use crate::error::LedgerError;
use crate::ledger::{Job, Receipt, Shared};
use crate::store::{Appender, FrameBuilder, Head};

/// The thread that owns all writes.
pub(crate) struct Writer {
    pub(crate) appender: Appender,
    pub(crate) shared: Arc<Shared>,
    pub(crate) signer: Signer,
    pub(crate) durable: bool,
    pub(crate) max_batch: usize,
    pub(crate) commit_delay: Duration,
    pub(crate) commit_siblings: usize,
    pub(crate) head: Head,
}

impl Writer {
    /// Takes everything queued (up to `max_batch`), writes it as one frame, syncs, then
    /// answers every caller. Returns when every sender is gone, after a final flush.
    pub(crate) fn run(mut self, receiver: mpsc::Receiver<Job>) -> Result<(), Arc<str>> {
        self.appender.set_durable(self.durable);
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        let mut frame: Vec<u8> = Vec::new();
        let mut hashes: Vec<[u8; 32]> = Vec::new();
        while let Ok(first) = receiver.recv() {
            let taken = Instant::now();
            batch.push(first);
            while batch.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if self.should_wait(batch.len()) {
                self.shared.stats.delayed.fetch_add(1, Ordering::Relaxed);
                let until = taken + self.commit_delay;
                while batch.len() < self.max_batch {
                    let left = until.saturating_duration_since(Instant::now());
                    match receiver.recv_timeout(left) {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
            }
            if let Err(reason) = self.commit(&batch, &mut frame, &mut hashes) {
                return Err(self.stop(reason, batch, &receiver));
            }
            for (job, hash) in batch.drain(..).zip(&hashes) {
                // A caller that stopped waiting is no error: its record is committed anyway.
                let _ = job.reply.send(Ok(Receipt {
                    seqno: job.seqno,
                    hash: *hash,
                }));
            }
        }
        if !self.durable {
            self.appender
                .flush()
                .map_err(|e| -> Arc<str> { format!("flushing the ledger: {e}").into() })?;
        }
        Ok(())
    }

    /// Whether to hold a commit of `batch_len` records open for more: only with a delay set,
    /// room in the batch, and enough requests running that more charges are due soon.
    fn should_wait(&self, batch_len: usize) -> bool {
        !self.commit_delay.is_zero()
            && batch_len < self.max_batch
            && self.shared.open_reservations.load(Ordering::Relaxed) >= self.commit_siblings
    }

    /// Encodes and chains `batch`, signs its end, and appends it as one frame.
    fn commit(
        &mut self,
        batch: &[Job],
        frame: &mut Vec<u8>,
        hashes: &mut Vec<[u8; 32]>,
    ) -> Result<(), Arc<str>> {
        hashes.clear();
        FrameBuilder::start(frame);
        let mut head = self.head;
        for job in batch {
            if job.seqno != head.seqno + 1 {
                return Err(format!(
                    "internal error: seqno {} queued after {}",
                    job.seqno, head.seqno
                )
                .into());
            }
            // Each row is seqno, len, h_n ‖ encoding; the hash is filled in once the encoding
            // exists.
            let value = FrameBuilder::row(frame, job.seqno);
            job.record.encode(job.seqno, frame);
            let hash = next_hash(&head.hash, &frame[value + 32..]);
            FrameBuilder::end_row(frame, value, &hash);
            hashes.push(hash);
            head = Head {
                seqno: job.seqno,
                hash,
            };
        }
        let signature = self.signer.sign_batch(head.seqno, &head.hash);
        FrameBuilder::finish(frame, batch.len() as u32, head.seqno, &signature);
        self.appender
            .append(frame, self.head.seqno + 1)
            .map_err(|e| -> Arc<str> { format!("commit failed: {e}").into() })?;
        self.head = head;
        self.shared.lock().committed = head;
        self.shared.stats.record(batch.len());
        Ok(())
    }

    /// After a failed commit: the books hold records the file does not, so refuse everything
    /// from now on and tell every waiting caller.
    fn stop(&self, reason: Arc<str>, batch: Vec<Job>, receiver: &mpsc::Receiver<Job>) -> Arc<str> {
        tracing::error!(%reason, "ledger stopped");
        {
            let mut state = self.shared.lock();
            state.stopped = Some(reason.clone());
            state.sender = None;
        }
        let error = LedgerError::Unavailable {
            reason: reason.clone(),
        };
        // No sender is left, so this drains what was queued and ends.
        for job in batch.into_iter().chain(receiver.iter()) {
            let _ = job.reply.send(Err(error.clone()));
        }
        reason
    }
}
