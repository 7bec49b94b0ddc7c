//! Shutdown signalling shared by every daemon: *drain* (stop accepting, finish in-flight work
//! within a grace period) or *kill* (drop everything now; tests use it to simulate a crash).

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Draining,
    Killed,
}

/// The sending side, held by whoever decides to stop (signal handler, test).
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<Phase>);

/// The receiving side, cloned into every daemon task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<Phase>);

impl ShutdownTrigger {
    /// A new pair.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(Phase::Running);
        (ShutdownTrigger(sender), Shutdown(receiver))
    }

    /// Asks for a graceful stop.
    pub fn drain(&self) {
        self.0.send_if_modified(|phase| {
            let changed = *phase < Phase::Draining;
            if changed {
                *phase = Phase::Draining;
            }
            changed
        });
    }

    /// Asks for an immediate stop: connections are dropped without draining.
    pub fn kill(&self) {
        self.0.send_replace(Phase::Killed);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// A receiver that never fires (for callers that stop by dropping the runtime).
    pub fn never() -> Shutdown {
        let (sender, receiver) = watch::channel(Phase::Running);
        std::mem::forget(sender);
        Shutdown(receiver)
    }

    /// Resolves when a drain or kill was asked for.
    pub async fn draining(&self) {
        let mut receiver = self.0.clone();
        let _ = receiver.wait_for(|phase| *phase >= Phase::Draining).await;
    }

    /// Resolves when a kill was asked for.
    pub async fn killed(&self) {
        let mut receiver = self.0.clone();
        let _ = receiver.wait_for(|phase| *phase >= Phase::Killed).await;
    }

    /// A pair that follows this one (a drain or kill here drains or kills it) and can also be
    /// triggered on its own: a daemon uses it to end its own tasks after a drain. Needs a Tokio
    /// runtime.
    pub fn child(&self) -> (ShutdownTrigger, Shutdown) {
        let (trigger, child) = ShutdownTrigger::new();
        let forward = ShutdownTrigger(trigger.0.clone());
        let parent = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = parent.draining() => forward.drain(),
                _ = forward.0.closed() => return,
            }
            tokio::select! {
                _ = parent.killed() => forward.kill(),
                _ = forward.0.closed() => {}
            }
        });
        (trigger, child)
    }

    /// Whether a drain or kill was asked for.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow() >= Phase::Draining
    }

    /// Whether a kill was asked for.
    pub fn is_killed(&self) -> bool {
        *self.0.borrow() >= Phase::Killed
    }
}

/// Waits for SIGINT or SIGTERM, then asks `trigger` to drain; a second signal kills.
pub async fn drain_on_signals(trigger: ShutdownTrigger) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
    for round in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            tracing::info!(
                "shutdown requested: draining in-flight requests (signal again to stop now)"
            );
            trigger.drain();
        } else {
            tracing::warn!("second signal: stopping now");
            trigger.kill();
        }
    }
}

/// After a drain was asked for: waits until `in_flight()` reaches zero, the `grace` period
/// ends, or a kill arrives; logs what was left behind. Returns the requests still in flight.
pub async fn wait_for_drain(
    shutdown: &Shutdown,
    grace: std::time::Duration,
    in_flight: impl Fn() -> usize,
) -> usize {
    /// Draining is rare and short; polling keeps every daemon's in-flight count a plain number.
    const POLL: std::time::Duration = std::time::Duration::from_millis(20);
    if shutdown.is_killed() {
        return in_flight();
    }
    tracing::info!(
        in_flight = in_flight(),
        grace_secs = grace.as_secs_f64(),
        "draining"
    );
    let deadline = tokio::time::Instant::now() + grace;
    while in_flight() > 0 && tokio::time::Instant::now() < deadline && !shutdown.is_killed() {
        tokio::time::sleep(POLL).await;
    }
    let left = in_flight();
    if left > 0 {
        tracing::warn!(
            in_flight = left,
            "grace period over; dropping unfinished requests"
        );
    }
    left
}

/// Tasks a daemon keeps spawning while it runs (one per peer it dials, as peers come and go),
/// that must end with it even when its own task is aborted rather than drained: finished ones
/// are reaped at each spawn, and every one is aborted when the [`AbortOnDrop`] guard its owner
/// holds goes.
#[derive(Debug, Default)]
pub struct OwnedTasks(std::sync::Mutex<tokio::task::JoinSet<()>>);

impl OwnedTasks {
    fn set(&self) -> std::sync::MutexGuard<'_, tokio::task::JoinSet<()>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `task` among them (needs a Tokio runtime).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut set = self.set();
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// A guard that aborts every task when dropped: hold it in the owner's task.
    pub fn abort_on_drop(self: &std::sync::Arc<Self>) -> AbortOnDrop {
        AbortOnDrop(self.clone())
    }
}

/// See [`OwnedTasks::abort_on_drop`].
#[derive(Debug)]
pub struct AbortOnDrop(std::sync::Arc<OwnedTasks>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.set().abort_all();
    }
}

#[cfg(test)]
mod owned_tasks_tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_guard_aborts_every_task_and_finished_ones_are_reaped() {
        let tasks = std::sync::Arc::new(OwnedTasks::default());
        let guard = tasks.abort_on_drop();
        tasks.spawn(async {});
        tokio::task::yield_now().await;
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _keep = sender;
            std::future::pending::<()>().await;
        });
        assert_eq!(tasks.set().len(), 1, "the finished task was reaped");
        drop(guard);
        // The pending task was aborted: its sender is gone.
        assert!(receiver.await.is_err());
    }
}
