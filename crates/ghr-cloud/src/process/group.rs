//! Stopping a runner's process group: SIGTERM to every member, a grace period, then SIGKILL,
//! confirmed by watching `/proc` until no member runs.

use super::error::ProcessError;
use super::procfs::{self, Liveness};
use super::state::ProcessKey;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::time::Duration;
use tokio::time::Instant;

/// How often a stopping process group is checked for live members.
pub const GROUP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long processes get to disappear after SIGKILL before terminate reports a failure.
pub const KILL_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the process group recorded for an instance can still only hold that instance's processes.
///
/// The runner leads its group (pgid = its pid). While the leader, or any member, exists, the kernel
/// keeps the pgid from being reused. If the pid now belongs to a *different* process, the whole old
/// group was gone at some point, and the number may name someone else's group: never signal it.
pub(crate) fn group_is_ours(key: ProcessKey) -> Result<bool, ProcessError> {
    Ok(procfs::liveness(key.pid, key.start_ticks)? != Liveness::Reused)
}

/// Live members of a process group, read off the async runtime's worker threads.
pub(crate) async fn live_members(pgid: u32) -> Result<Vec<u32>, ProcessError> {
    tokio::task::spawn_blocking(move || procfs::group_members(pgid))
        .await
        .map_err(|source| ProcessError::Join { source })?
}

/// Send `signal` to every process of group `pgid`; a group that no longer exists is fine.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> Result<(), ProcessError> {
    let raw = i32::try_from(pgid).map_err(|_| ProcessError::PidRange { pid: pgid })?;
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Signal { pgid, signal: signal.as_str(), source }),
    }
}

/// Stop every process of group `pgid`: SIGTERM, wait up to `grace` for all to exit, then SIGKILL
/// and wait up to [`KILL_CONFIRM_TIMEOUT`]. `Ok` once no member runs.
pub(crate) async fn stop_group(pgid: u32, grace: Duration) -> Result<(), ProcessError> {
    if live_members(pgid).await?.is_empty() {
        return Ok(());
    }
    signal_group(pgid, Signal::SIGTERM)?;
    if wait_until_empty(pgid, grace).await?.is_empty() {
        return Ok(());
    }
    tracing::warn!(pgid, ?grace, "runner process group outlived its grace period; sending SIGKILL");
    signal_group(pgid, Signal::SIGKILL)?;
    let remaining = wait_until_empty(pgid, KILL_CONFIRM_TIMEOUT).await?;
    if remaining.is_empty() { Ok(()) } else { Err(ProcessError::Unkillable { pgid, remaining }) }
}

/// Poll the group until it has no live member or `timeout` passes; returns the members left.
async fn wait_until_empty(pgid: u32, timeout: Duration) -> Result<Vec<u32>, ProcessError> {
    let deadline = Instant::now() + timeout;
    loop {
        let members = live_members(pgid).await?;
        if members.is_empty() || Instant::now() >= deadline {
            return Ok(members);
        }
        tokio::time::sleep(GROUP_POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
