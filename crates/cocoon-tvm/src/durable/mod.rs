//! A durable local network: a [`Network`] whose inputs are journalled on disk, so it survives
//! restarts and crashes and several processes can share it (the devnet and `cocoon wallet`).
//!
//! # Files
//!
//! A directory holds two files:
//! - `journal`: a header, then one record per input that changed the network (the genesis,
//!   time changes, faucet mints and balances, the random seed, internal messages injected as
//!   the sandbox does or paid for by a code-less wallet, external messages, deploys among
//!   them). Each record carries the time the
//!   network was set to before it and the lt it left, and is framed with its length and
//!   CRC-32s (`journal.rs`). A record is appended with one write and `fdatasync`ed before the
//!   call returns: nothing is acknowledged that is not durable. Inputs that fail and change
//!   nothing are not journalled; an external the contract refuses is, since it uses up an lt
//!   step.
//! - `snapshot`: the whole network and its transaction history as of some record (written
//!   atomically every [`Options::snapshot_every`] records), so opening replays only the
//!   journal's tail. The journal is never shortened by a snapshot (it is the source of truth;
//!   deleting the snapshot replays everything).
//!
//! # Replay
//!
//! The executor is deterministic given the time, lt and seed, and all three are in the
//! journal, so replaying it rebuilds the network exactly (the same snapshot bytes, balances,
//! get-method results and history). Each record's lt is checked on replay: a journal that no
//! longer replays identically (after an executor upgrade, say) is an [`Error::Replay`], not a
//! silently different network.
//!
//! # Crashes and damage
//!
//! A torn last record (a crash during an append) is cut off when the journal is next read, and
//! the network is as it was before that call (which never returned). Any other damage — a
//! record that fails its checksum with data after it, a record that does not decode, a snapshot
//! that does not check or does not match its journal — is an [`Error::Corrupt`] naming the file
//! and the byte offset. Nothing panics on a bad file and nothing is dropped silently.
//!
//! # Several processes
//!
//! Every call takes an exclusive `flock` on the journal, first reads what other handles (in
//! this or another process) appended since this handle last looked, then acts. Reads catch up
//! too, so every handle sees every write that returned before it.
//!
//! # Time
//!
//! Time never goes backwards. With [`Clock::System`] (the default) each write runs at the
//! later of the wall clock and the network's time; with [`Clock::Manual`] time moves only with
//! [`LocalNetwork::set_now`]. Either way the time is in the record, so replay does not depend
//! on the clock.
//!
//! # History
//!
//! Every account's transactions are kept for reading back ([`LocalNetwork::transactions`]),
//! the newest [`Options::history_limit`] per account (default
//! [`history::DEFAULT_HISTORY_LIMIT`]); the history is in the snapshot and rebuilt by replay.

mod codec;
pub mod history;
mod journal;
mod record;
mod snapshot;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use self::history::{AccountTransaction, History, DEFAULT_HISTORY_LIMIT};
use self::journal::{corrupt, io_error, Next, Scanner};
pub use self::record::Genesis;
use self::record::{Applied, Input, Record};
use crate::error::{Error, Result};
use crate::{AccountInfo, Address, GetMethodResult, InternalMessage, Network, StackValue, Trace};

/// The journal's file name in a network's directory.
pub const JOURNAL_FILE: &str = "journal";
/// The snapshot's file name in a network's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// Records between snapshots by default. Replaying a thousand records takes well under a
/// second; writing a snapshot of a devnet's few accounts takes milliseconds.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000;

/// Where a write's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The later of the wall clock and the network's time.
    #[default]
    System,
    /// The network's time, moved only by [`LocalNetwork::set_now`] (tests, scripted runs).
    Manual,
}

/// How a handle behaves. Per handle, not stored: two handles on one directory may differ.
#[derive(Debug, Clone)]
pub struct Options {
    /// Write a snapshot when this many records were appended since the last one (0: never).
    pub snapshot_every: u64,
    /// Transactions kept per account.
    pub history_limit: usize,
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            history_limit: DEFAULT_HISTORY_LIMIT,
            clock: Clock::System,
        }
    }
}

/// The network as replayed up to `offset`.
struct State {
    network: Network,
    history: History,
    /// Bytes of the journal applied.
    offset: u64,
    /// Records applied, the genesis included.
    records: u64,
    /// Where the last applied record starts, and its checksum (what a snapshot is tied to).
    last_start: u64,
    last_crc: u32,
    /// The records the newest snapshot this handle knows of covers.
    snapshot_records: u64,
    /// Memory changed but the journal did not (a failed append): reload before the next call.
    stale: bool,
}

struct Inner {
    journal: File,
    /// `None` when memory may be ahead of or behind the files (a failed append or replay): the
    /// next call reloads from disk.
    state: Option<State>,
}

/// A [`Network`] journalled in a directory, shareable between processes. See the module
/// documentation for the files and guarantees.
pub struct LocalNetwork {
    journal_path: PathBuf,
    snapshot_path: PathBuf,
    options: Options,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetwork")
            .field("journal", &self.journal_path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn wall_clock() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl LocalNetwork {
    /// Creates a network in `dir` (created if missing) with default options. Fails with
    /// [`Error::AlreadyExists`] if the directory already holds a journal.
    pub fn create(dir: impl AsRef<Path>, genesis: &Genesis) -> Result<Self> {
        Self::create_with(dir, genesis, Options::default())
    }

    /// [`LocalNetwork::create`] with options.
    pub fn create_with(dir: impl AsRef<Path>, genesis: &Genesis, options: Options) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let journal_path = dir.join(JOURNAL_FILE);
        if journal_path.exists() {
            return Err(Error::AlreadyExists(journal_path));
        }
        // Checked before anything is written: the genesis must make a network.
        genesis.network()?;
        let record = Record {
            now: genesis.now,
            lt_after: 0,
            input: Input::Genesis(genesis.clone()),
        };
        let mut bytes = journal::file_header().to_vec();
        bytes.extend(journal::frame(&record.encode())?);
        // Written whole under a temporary name and linked into place: another process never
        // sees a journal without its genesis, and of two racing creators one wins.
        let temporary = dir.join(format!("{JOURNAL_FILE}.new.{}", std::process::id()));
        std::fs::write(&temporary, &bytes).map_err(io_error(&temporary))?;
        let linked = File::open(&temporary)
            .and_then(|f| f.sync_all())
            .and_then(|()| {
                // A snapshot without its journal belongs to some earlier network.
                match std::fs::remove_file(dir.join(SNAPSHOT_FILE)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            })
            .and_then(|()| std::fs::hard_link(&temporary, &journal_path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(journal_path))
            }
            Err(e) => return Err(io_error(&journal_path)(e)),
        }
        snapshot::sync_directory(&journal_path)?;
        Self::open_with(dir, options)
    }

    /// Opens the network in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, Options::default())
    }

    /// Opens the network in `dir`: reads the snapshot if there is one, replays the journal
    /// after it, and cuts off a torn last record.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let dir = dir.as_ref();
        let journal_path = dir.join(JOURNAL_FILE);
        let journal = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&journal_path)
            .map_err(io_error(&journal_path))?;
        let network = Self {
            snapshot_path: dir.join(SNAPSHOT_FILE),
            journal_path,
            options,
            inner: Mutex::new(Inner {
                journal,
                state: None,
            }),
        };
        network.with(|_, _, _| Ok(()))?;
        Ok(network)
    }

    /// Opens the network in `dir`, creating it from `genesis` if there is none.
    pub fn open_or_create(
        dir: impl AsRef<Path>,
        genesis: &Genesis,
        options: Options,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join(JOURNAL_FILE).exists() {
            return Self::open_with(dir, options);
        }
        match Self::create_with(dir, genesis, options.clone()) {
            Err(Error::AlreadyExists(_)) => Self::open_with(dir, options),
            other => other,
        }
    }

    /// The journal's path.
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Runs `f` under the file lock on a state caught up with the journal.
    fn with<T>(&self, f: impl FnOnce(&Self, &File, &mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.inner.lock().unwrap_or_else(|poisoned| {
            // A panic during a call may have left memory anywhere: reload from disk.
            let mut guard = poisoned.into_inner();
            guard.state = None;
            guard
        });
        self.inner.clear_poison();
        let inner = &mut *guard;
        inner.journal.lock().map_err(io_error(&self.journal_path))?;
        let result = self.with_locked(inner, f);
        let unlocked = inner.journal.unlock().map_err(io_error(&self.journal_path));
        let value = result?;
        unlocked?;
        Ok(value)
    }

    fn with_locked<T>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&Self, &File, &mut State) -> Result<T>,
    ) -> Result<T> {
        let caught_up = match inner.state.as_mut() {
            Some(state) => self.catch_up(&inner.journal, state),
            None => self
                .load(&inner.journal)
                .map(|state| inner.state = Some(state)),
        };
        if let Err(error) = caught_up {
            inner.state = None;
            return Err(error);
        }
        let Some(state) = inner.state.as_mut() else {
            // Set just above.
            return Err(Error::Executor("local network state missing".into()));
        };
        let result = f(self, &inner.journal, state);
        if state.stale {
            inner.state = None;
        }
        result
    }

    /// Reads the snapshot (if any) and replays the journal after it.
    fn load(&self, file: &File) -> Result<State> {
        let path = &self.journal_path;
        journal::check_file_header(file, path)?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let mut state = match snapshot::read(&self.snapshot_path, self.options.history_limit)? {
            Some(snapshot) => self.state_from_snapshot(file, len, snapshot)?,
            None => self.state_from_genesis(file, len)?,
        };
        self.catch_up(file, &mut state)?;
        Ok(state)
    }

    fn state_from_snapshot(
        &self,
        file: &File,
        len: u64,
        snapshot: snapshot::Snapshot,
    ) -> Result<State> {
        let path = &self.journal_path;
        let mismatch = || {
            corrupt(
                &self.snapshot_path,
                0,
                format!(
                    "covers {} bytes of the journal, which do not match it (delete the \
                     snapshot to replay the whole journal)",
                    snapshot.offset
                ),
            )
        };
        if snapshot.offset > len || snapshot.last_start < journal::FILE_HEADER_LEN {
            return Err(mismatch());
        }
        match Scanner::new(file, path, snapshot.last_start, snapshot.offset)?.next() {
            Ok(Next::Frame(frame))
                if frame.end == snapshot.offset && frame.crc == snapshot.last_crc => {}
            _ => return Err(mismatch()),
        }
        let network = Network::restore(&snapshot.network).map_err(|e| {
            corrupt(
                &self.snapshot_path,
                0,
                format!("its network does not restore: {e}"),
            )
        })?;
        Ok(State {
            network,
            history: snapshot.history,
            offset: snapshot.offset,
            records: snapshot.records,
            last_start: snapshot.last_start,
            last_crc: snapshot.last_crc,
            snapshot_records: snapshot.records,
            stale: false,
        })
    }

    fn state_from_genesis(&self, file: &File, len: u64) -> Result<State> {
        let path = &self.journal_path;
        let start = journal::FILE_HEADER_LEN;
        let frame = match Scanner::new(file, path, start, len)?.next()? {
            Next::Frame(frame) => frame,
            Next::End | Next::Torn { .. } => {
                return Err(corrupt(path, start, "no complete genesis record"))
            }
        };
        let genesis = match Record::decode(&frame.payload) {
            Ok(Record {
                input: Input::Genesis(genesis),
                ..
            }) => genesis,
            Ok(_) => return Err(corrupt(path, start, "the first record is not the genesis")),
            Err(why) => return Err(corrupt(path, start, why)),
        };
        let network = genesis
            .network()
            .map_err(|e| corrupt(path, start, format!("genesis: {e}")))?;
        Ok(State {
            network,
            history: History::new(self.options.history_limit),
            offset: frame.end,
            records: 1,
            last_start: frame.offset,
            last_crc: frame.crc,
            snapshot_records: 0,
            stale: false,
        })
    }

    /// Applies the records appended since `state.offset`, by any handle; cuts off a torn tail
    /// (the lock is held, so no append is in progress: a torn record's writer died).
    fn catch_up(&self, file: &File, state: &mut State) -> Result<()> {
        let path = &self.journal_path;
        let len = file.metadata().map_err(io_error(path))?.len();
        if len == state.offset {
            return Ok(());
        }
        if len < state.offset {
            return Err(corrupt(
                path,
                len,
                format!(
                    "the journal shrank below the {} bytes applied",
                    state.offset
                ),
            ));
        }
        let mut scanner = Scanner::new(file, path, state.offset, len)?;
        loop {
            match scanner.next()? {
                Next::End => return Ok(()),
                Next::Torn { at } => {
                    file.set_len(at)
                        .and_then(|()| file.sync_data())
                        .map_err(io_error(path))?;
                    return Ok(());
                }
                Next::Frame(frame) => {
                    let record = Record::decode(&frame.payload)
                        .map_err(|why| corrupt(path, frame.offset, why))?;
                    self.replay(state, record, frame.offset)?;
                    state.offset = frame.end;
                    state.records += 1;
                    state.last_start = frame.offset;
                    state.last_crc = frame.crc;
                }
            }
        }
    }

    /// Applies one record read from the journal, checking it does what it did when written.
    fn replay(&self, state: &mut State, record: Record, offset: u64) -> Result<()> {
        let path = &self.journal_path;
        let replay_error = |reason: String| Error::Replay {
            path: path.clone(),
            offset,
            reason,
        };
        if matches!(record.input, Input::Genesis(_)) {
            return Err(corrupt(path, offset, "a second genesis"));
        }
        let before = state.network.now();
        if record.now < before {
            return Err(corrupt(
                path,
                offset,
                format!("time goes back from {before} to {}", record.now),
            ));
        }
        if record.now != before {
            state
                .network
                .set_now(record.now)
                .map_err(|e| replay_error(e.to_string()))?;
        }
        match record::apply(&mut state.network, &record.input) {
            Ok(Applied::Trace(trace)) => state.history.record(&trace),
            Ok(Applied::Changed | Applied::Refused(_)) => {}
            Err(error) => return Err(replay_error(format!("it now fails: {error}"))),
        }
        let lt = state.network.lt();
        if lt != record.lt_after {
            return Err(replay_error(format!(
                "it left lt {lt}, when written {}",
                record.lt_after
            )));
        }
        Ok(())
    }

    /// Applies `input` at the time the clock (or `set_now`'s `now`) gives, journals it if it
    /// changed anything, and returns what it did.
    fn write(&self, now: Option<u32>, input: Input) -> Result<Applied> {
        self.with(|this, file, state| this.write_locked(file, state, now, input))
    }

    fn write_locked(
        &self,
        file: &File,
        state: &mut State,
        requested_now: Option<u32>,
        input: Input,
    ) -> Result<Applied> {
        let before = state.network.now();
        let now = match (requested_now, self.options.clock) {
            (Some(now), _) if now < before => {
                return Err(Error::TimeBackwards {
                    now: before,
                    requested: now,
                })
            }
            (Some(now), _) => now,
            (None, Clock::System) => wall_clock().max(before),
            (None, Clock::Manual) => before,
        };
        let mut record = Record {
            now,
            lt_after: 0,
            input,
        };
        // Framed before anything runs, so an input too large to journal changes nothing.
        journal::frame(&record.encode())?;
        if now != before {
            state.network.set_now(now)?;
        }
        let applied = match record::apply(&mut state.network, &record.input) {
            Ok(applied) => applied,
            Err(error) => {
                if now != before && state.network.set_now(before).is_err() {
                    // Cannot happen (this time was set before); if it did, reload.
                    state.stale = true;
                }
                return Err(error);
            }
        };
        record.lt_after = state.network.lt();
        let appended = journal::frame(&record.encode()).and_then(|frame| {
            let end = journal::append(file, &self.journal_path, state.offset, &frame)?;
            Ok((frame, end))
        });
        let (frame, end) = match appended {
            Ok(appended) => appended,
            Err(error) => {
                // Memory is ahead of the journal: the next call reloads from disk.
                state.stale = true;
                return Err(error);
            }
        };
        state.last_start = state.offset;
        state.last_crc = journal::payload_crc(&frame);
        state.offset = end;
        state.records += 1;
        if let Applied::Trace(trace) = &applied {
            state.history.record(trace);
        }
        self.maybe_snapshot(state);
        Ok(applied)
    }

    /// Writes a snapshot when one is due. A failure is not the caller's (its record is
    /// durable); the snapshot stays due and the next append tries again.
    fn maybe_snapshot(&self, state: &mut State) {
        let every = self.options.snapshot_every;
        if every == 0 || state.records.saturating_sub(state.snapshot_records) < every {
            return;
        }
        // Another handle may have written one since.
        state.snapshot_records = snapshot::records_covered(&self.snapshot_path);
        if state.records.saturating_sub(state.snapshot_records) >= every {
            let _ = self.snapshot_locked(state);
        }
    }

    fn snapshot_locked(&self, state: &mut State) -> Result<()> {
        let snapshot = snapshot::Snapshot {
            records: state.records,
            offset: state.offset,
            last_start: state.last_start,
            last_crc: state.last_crc,
            history: state.history.clone(),
            network: state.network.snapshot()?,
        };
        snapshot::write(&self.snapshot_path, &snapshot)?;
        state.snapshot_records = state.records;
        Ok(())
    }

    /// Writes a snapshot now (also done every [`Options::snapshot_every`] records).
    pub fn write_snapshot(&self) -> Result<()> {
        self.with(|this, _, state| this.snapshot_locked(state))
    }

    /// Moves the network's time to `now` (never backwards: [`Error::TimeBackwards`]).
    pub fn set_now(&self, now: u32) -> Result<()> {
        self.write(Some(now), Input::Tick).map(|_| ())
    }

    /// Sets the random seed contracts see from now on.
    pub fn set_rand_seed(&self, seed: [u8; 32]) -> Result<()> {
        self.write(None, Input::RandSeed(seed)).map(|_| ())
    }

    /// Sets a balance (see [`Network::set_balance`]).
    pub fn set_balance(&self, address: &Address, balance: u128) -> Result<()> {
        self.write(
            None,
            Input::SetBalance {
                address: *address,
                balance,
            },
        )
        .map(|_| ())
    }

    /// The faucet: adds `amount` to the balance at `address` and returns the new balance.
    pub fn mint(&self, address: &Address, amount: u128) -> Result<u128> {
        self.with(|this, file, state| {
            let input = Input::Mint {
                address: *address,
                amount,
            };
            this.write_locked(file, state, None, input)?;
            state.network.balance(address)
        })
    }

    /// Delivers an internal message (from a code-less wallet, a deploy, …) and everything it
    /// causes (see [`Network::send_internal`]).
    pub fn send_internal(&self, message: &InternalMessage) -> Result<Trace> {
        match self.write(None, Input::Internal(message.clone()))? {
            Applied::Trace(trace) => Ok(trace),
            Applied::Changed | Applied::Refused(_) => Ok(Trace::default()),
        }
    }

    /// Sends an internal message from a code-less wallet that pays for it: `value` leaves
    /// `message.from`'s balance, then the message is delivered (no fee is charged to the
    /// wallet; the receiving contracts pay theirs as usual). A wallet short of `value` gets
    /// [`Error::InsufficientBalance`] and nothing changes.
    pub fn transfer(&self, message: &InternalMessage) -> Result<Trace> {
        match self.write(None, Input::Transfer(message.clone()))? {
            Applied::Trace(trace) => Ok(trace),
            Applied::Changed | Applied::Refused(_) => Ok(Trace::default()),
        }
    }

    /// Delivers an inbound external message (see [`Network::send_external`]). A refused one is
    /// journalled (it uses up an lt step) and returned as [`Error::ExternalNotAccepted`].
    pub fn send_external(
        &self,
        to: &Address,
        body: &[u8],
        state_init: Option<&[u8]>,
    ) -> Result<Trace> {
        let input = Input::External {
            to: *to,
            body: body.to_vec(),
            state_init: state_init.map(<[u8]>::to_vec),
        };
        match self.write(None, input)? {
            Applied::Trace(trace) => Ok(trace),
            Applied::Refused(error) => Err(error),
            Applied::Changed => Ok(Trace::default()),
        }
    }

    /// Deploys a contract: an internal message from `from` carrying `value`, `body` and the
    /// `StateInit` of `code` and `data` (BOCs). Returns the contract's address and the trace.
    pub fn deploy(
        &self,
        from: &Address,
        code: &[u8],
        data: &[u8],
        value: u128,
        body: &[u8],
    ) -> Result<(Address, Trace)> {
        let state_init = crate::state_init(code, data)?;
        let to = Network::address_of(&state_init)?;
        let trace = self.send_internal(&InternalMessage {
            from: *from,
            to,
            value,
            bounce: false,
            body: body.to_vec(),
            state_init: Some(state_init),
        })?;
        Ok((to, trace))
    }

    /// Runs `f` on the network and its history, caught up with the journal.
    pub fn read<T>(&self, f: impl FnOnce(&Network, &History) -> T) -> Result<T> {
        self.with(|_, _, state| Ok(f(&state.network, &state.history)))
    }

    /// The network's time: that of the latest record.
    pub fn now(&self) -> Result<u32> {
        self.read(|network, _| network.now())
    }

    /// The time a write would run at now: with [`Clock::System`] the later of the wall clock
    /// and [`LocalNetwork::now`], with [`Clock::Manual`] the latter.
    pub fn current_time(&self) -> Result<u32> {
        let clock = self.options.clock;
        self.read(|network, _| match clock {
            Clock::System => wall_clock().max(network.now()),
            Clock::Manual => network.now(),
        })
    }

    /// The logical time of the latest transaction.
    pub fn lt(&self) -> Result<u64> {
        self.read(|network, _| network.lt())
    }

    /// How many records the journal holds, the genesis included.
    pub fn records(&self) -> Result<u64> {
        self.with(|_, _, state| Ok(state.records))
    }

    pub fn account(&self, address: &Address) -> Result<AccountInfo> {
        self.read(|network, _| network.account(address))?
    }

    pub fn balance(&self, address: &Address) -> Result<u128> {
        self.read(|network, _| network.balance(address))?
    }

    /// Runs a get-method, at the time a write now would run at (with [`Clock::System`], the
    /// wall clock if it is later than the last record: a real node's getters see the latest
    /// block). Nothing is journalled.
    pub fn run_get_method(
        &self,
        address: &Address,
        method: &str,
        args: &[StackValue],
    ) -> Result<GetMethodResult> {
        let clock = self.options.clock;
        self.read(|network, _| {
            let now = match clock {
                Clock::System => wall_clock().max(network.now()),
                Clock::Manual => network.now(),
            };
            network.run_get_method_at(now, address, method, args)
        })?
    }

    /// Up to `limit` transactions of `address` with an lt above `after_lt`, oldest first (see
    /// [`History::transactions`]; only the newest [`Options::history_limit`] are kept).
    pub fn transactions(
        &self,
        address: &Address,
        after_lt: u64,
        limit: usize,
    ) -> Result<Vec<AccountTransaction>> {
        self.read(|_, history| history.transactions(address, after_lt, limit))
    }

    /// [`Network::snapshot`] of the network as it stands.
    pub fn network_snapshot(&self) -> Result<Vec<u8>> {
        self.read(|network, _| network.snapshot())?
    }
}
