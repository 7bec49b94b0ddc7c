//! The writer thread: the only code that writes the file. It takes everything queued, writes
//! it in one transaction, commits (one fsync), and only then answers the callers.

use std::sync::{mpsc, Arc};

use redb::Database;

use crate::chain::{next_hash, Signer};
use crate::error::LedgerError;
use crate::ledger::{Job, Receipt, Shared};
use crate::store::{self, Head};

/// The thread that owns all writes.
pub(crate) struct Writer {
    pub(crate) db: Arc<Database>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) signer: Signer,
    pub(crate) durability: redb::Durability,
    pub(crate) max_batch: usize,
    pub(crate) head: Head,
}

impl Writer {
    /// Takes everything queued (up to `max_batch`), writes it in one transaction, commits,
    /// then answers every caller. Returns when every sender is gone, after a final flush.
    pub(crate) fn run(mut self, receiver: mpsc::Receiver<Job>) -> Result<(), Arc<str>> {
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        let mut buffer: Vec<u8> = Vec::new();
        let mut hashes: Vec<(usize, usize, [u8; 32])> = Vec::new();
        while let Ok(first) = receiver.recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if let Err(reason) = self.commit(&batch, &mut buffer, &mut hashes) {
                return Err(self.stop(reason, batch, &receiver));
            }
            for (job, (_, _, hash)) in batch.drain(..).zip(&hashes) {
                // A caller that stopped waiting is no error: its record is committed anyway.
                let _ = job.reply.send(Ok(Receipt {
                    seqno: job.seqno,
                    hash: *hash,
                }));
            }
        }
        if matches!(self.durability, redb::Durability::None) {
            store::flush(&self.db).map_err(|e| -> Arc<str> { e.to_string().into() })?;
        }
        Ok(())
    }

    /// Encodes and chains `batch`, signs its end, writes it in one transaction and commits.
    fn commit(
        &mut self,
        batch: &[Job],
        buffer: &mut Vec<u8>,
        hashes: &mut Vec<(usize, usize, [u8; 32])>,
    ) -> Result<(), Arc<str>> {
        buffer.clear();
        hashes.clear();
        let mut head = self.head;
        for job in batch {
            if job.seqno != head.seqno + 1 {
                return Err(format!(
                    "internal error: seqno {} queued after {}",
                    job.seqno, head.seqno
                )
                .into());
            }
            // Each row is h_n ‖ encoding; the hash is filled in once the encoding exists.
            let start = buffer.len();
            buffer.extend_from_slice(&[0; 32]);
            job.record.encode(job.seqno, buffer);
            let hash = next_hash(&head.hash, &buffer[start + 32..]);
            buffer[start..start + 32].copy_from_slice(&hash);
            hashes.push((start, buffer.len(), hash));
            head = Head {
                seqno: job.seqno,
                hash,
            };
        }
        let signature = self.signer.sign_batch(head.seqno, &head.hash);
        let rows: Vec<(u64, &[u8])> = batch
            .iter()
            .zip(hashes.iter())
            .map(|(job, (start, end, _))| (job.seqno, &buffer[*start..*end]))
            .collect();
        store::write_batch(&self.db, self.durability, &rows, (head.seqno, &signature))
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
