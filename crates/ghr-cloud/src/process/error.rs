//! Errors of the process provider, with the context of what it was doing, and their mapping to
//! [`ProviderError`].

use ghr_core::ports::ProviderError;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

/// A failure inside the process provider. Converted to [`ProviderError`] at the port boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("opening the runner log file {path}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the runner command {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the runner command exited before its process id could be read")]
    NoPid,
    #[error("reading /proc/{pid}/stat")]
    ProcStat {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/stat cannot be parsed: {detail}")]
    ProcStatFormat { pid: u32, detail: String },
    #[error("process {pid} vanished before it could be recorded")]
    Vanished { pid: u32 },
    #[error("writing the JIT config to the runner's standard input")]
    Stdin {
        #[source]
        source: std::io::Error,
    },
    #[error("the runner command did not read its JIT config within {0:?}")]
    StdinTimeout(Duration),
    #[error("writing the instance state file {path}")]
    StateWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the instance state directory {path}")]
    StateRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the instance state of {instance}")]
    StateEncode {
        instance: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("removing the instance state file {path}")]
    StateRemove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scanning /proc for the members of process group {pgid}")]
    ProcScan {
        pgid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("sending {signal} to process group {pgid}")]
    Signal {
        pgid: u32,
        signal: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("process group {pgid} still has live processes {remaining:?} after SIGKILL")]
    Unkillable { pgid: u32, remaining: Vec<u32> },
    #[error("process id {pid} does not fit a signed process id")]
    PidRange { pid: u32 },
    #[error("a background task of the process provider failed")]
    Join {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("terminating {failed} of {total} instances failed: {details}")]
    TerminateAll { failed: usize, total: usize, details: String },
}

pub(crate) use ghr_core::error::error_chain;

/// How a [`ProcessError`] reads at the port; the error itself is kept as the source.
const PROVIDER_CONTEXT: &str = "process provider";

impl From<ProcessError> for ProviderError {
    fn from(error: ProcessError) -> Self {
        let kind = match error {
            // A program that cannot be started, or a log file that cannot be opened, needs an operator.
            ProcessError::Spawn { ref source, .. } | ProcessError::LogFile { ref source, .. }
                if matches!(
                    source.kind(),
                    ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::NotADirectory
                ) =>
            {
                ProviderError::config
            }
            // Out of processes or file descriptors: the host is at a limit, retry later.
            ProcessError::Spawn { ref source, .. } | ProcessError::LogFile { ref source, .. }
                if source.kind() == ErrorKind::WouldBlock || source.raw_os_error() == Some(nix::libc::EMFILE) =>
            {
                ProviderError::throttled
            }
            _ => ProviderError::failed,
        };
        kind(PROVIDER_CONTEXT).caused_by(error)
    }
}
