//! Reading process facts from Linux `/proc`: state, process group and start time of a pid, and the
//! live members of a process group.

use super::error::ProcessError;
use std::io::ErrorKind;
use std::path::Path;

/// Root of the proc filesystem.
const PROC_ROOT: &str = "/proc";
/// 1-based field numbers of `/proc/<pid>/stat` (see proc_pid_stat(5)).
const STAT_FIELD_STATE: usize = 3;
const STAT_FIELD_PGRP: usize = 5;
const STAT_FIELD_START_TIME: usize = 22;
/// The first field after the parenthesised command name.
const STAT_FIRST_FIELD_AFTER_COMM: usize = 3;

/// What `/proc/<pid>/stat` says about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// One-letter state (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// Process group id.
    pub pgrp: u32,
    /// Start time after boot, in clock ticks. With the pid it identifies a process across pid reuse.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Whether the process still runs: zombies (`Z`) and dead tasks (`X`, `x`) do not.
    pub fn is_running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parse the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and parentheses, so
/// fields are counted from the last `)`.
pub(crate) fn parse_stat(pid: u32, text: &str) -> Result<ProcStat, ProcessError> {
    let malformed = |detail: &str| ProcessError::ProcStatFormat { pid, detail: detail.to_owned() };
    let close = text.rfind(')').ok_or_else(|| malformed("no closing parenthesis after the command name"))?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |number: usize| -> Result<&str, ProcessError> {
        fields
            .get(number - STAT_FIRST_FIELD_AFTER_COMM)
            .copied()
            .ok_or_else(|| malformed(&format!("field {number} is missing")))
    };
    let state = field(STAT_FIELD_STATE)?.chars().next().ok_or_else(|| malformed("the state field is empty"))?;
    let pgrp = field(STAT_FIELD_PGRP)?.parse().map_err(|_| malformed("the process group is not a number"))?;
    let start_ticks = field(STAT_FIELD_START_TIME)?.parse().map_err(|_| malformed("the start time is not a number"))?;
    Ok(ProcStat { state, pgrp, start_ticks })
}

/// Read `/proc/<pid>/stat`; `None` when no such process exists (any more).
pub(crate) fn read_stat(pid: u32) -> Result<Option<ProcStat>, ProcessError> {
    let path = Path::new(PROC_ROOT).join(pid.to_string()).join("stat");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_stat(pid, &text).map(Some),
        // ESRCH can surface when the process is reaped between open and read.
        Err(error) if error.kind() == ErrorKind::NotFound || error.raw_os_error() == Some(nix::libc::ESRCH) => Ok(None),
        Err(source) => Err(ProcessError::ProcStat { pid, source }),
    }
}

/// How a recorded process (pid + start time) looks now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The recorded process is running.
    Running,
    /// The recorded process exited (it may still be an unreaped zombie).
    Exited,
    /// The pid belongs to another process now: the recorded one exited long ago.
    Reused,
}

/// Check whether the process recorded as `pid` started at `start_ticks` is still running.
pub(crate) fn liveness(pid: u32, start_ticks: u64) -> Result<Liveness, ProcessError> {
    Ok(match read_stat(pid)? {
        None => Liveness::Exited,
        Some(stat) if stat.start_ticks != start_ticks => Liveness::Reused,
        Some(stat) if stat.is_running() => Liveness::Running,
        Some(_) => Liveness::Exited,
    })
}

/// The running (non-zombie) processes whose process group is `pgid`, in ascending pid order.
pub(crate) fn group_members(pgid: u32) -> Result<Vec<u32>, ProcessError> {
    let entries = std::fs::read_dir(PROC_ROOT).map_err(|source| ProcessError::ProcScan { pgid, source })?;
    let mut members = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ProcessError::ProcScan { pgid, source })?;
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        // Processes come and go during the scan; one that vanished or cannot be read is not a member.
        if let Ok(Some(stat)) = read_stat(pid)
            && stat.pgrp == pgid
            && stat.is_running()
        {
            members.push(pid);
        }
    }
    members.sort_unstable();
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_an_awkward_command_name() {
        let line = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(4242, line).unwrap();
        assert_eq!(stat, ProcStat { state: 'S', pgrp: 4242, start_ticks: 987654 });
        assert!(stat.is_running());
    }

    #[test]
    fn zombies_are_not_running() {
        let line = "7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert!(!parse_stat(7, line).unwrap().is_running());
    }

    #[test]
    fn malformed_lines_are_errors_that_say_what_is_wrong() {
        let cases = [
            ("7 sh S 1", "closing parenthesis"),
            ("7 (sh) S 1 7", "field 22 is missing"),
            ("7 (sh) S 1 x 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55", "process group"),
            ("7 (sh) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 soon", "start time"),
        ];
        for (line, fragment) in cases {
            let error = parse_stat(7, line).unwrap_err().to_string();
            assert!(error.contains(fragment), "{error:?} should mention {fragment:?}");
        }
    }

    #[test]
    fn the_current_process_is_running_and_a_wrong_start_time_means_reuse() {
        let pid = std::process::id();
        let stat = read_stat(pid).unwrap().unwrap();
        assert_eq!(liveness(pid, stat.start_ticks).unwrap(), Liveness::Running);
        assert_eq!(liveness(pid, stat.start_ticks + 1).unwrap(), Liveness::Reused);
        assert!(group_members(stat.pgrp).unwrap().contains(&pid));
    }
}
