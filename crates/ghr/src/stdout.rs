//! Writing to standard output and standard error without panicking: `print!` panics when a reader such as
//! `head` has closed the pipe, or when the disk behind a redirection is full. Output goes through [`out`],
//! whose closed-pipe error ends the command quietly (the reader wanted no more); any other write error is a
//! clear error and a non-zero exit. Notes on standard error go through [`note`], which gives up silently when
//! standard error itself cannot be written (there is nowhere left to say so).

use std::io::{self, Write};

/// Standard output could not take what a command printed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader went away (a closed pipe): nothing is wrong, the command just stops.
    #[error("standard output is closed")]
    Closed,
    #[error("cannot write to standard output")]
    Failed(#[source] io::Error),
}

/// Write `text` to standard output and flush it.
pub fn out(text: &str) -> Result<(), OutputError> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(|error| match error.kind() {
        io::ErrorKind::BrokenPipe => OutputError::Closed,
        _ => OutputError::Failed(error),
    })
}

/// Write one line to standard error, ignoring a standard error that cannot be written.
pub fn note(text: &str) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// Whether `error` only says that the reader of standard output went away.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| matches!(cause.downcast_ref::<OutputError>(), Some(OutputError::Closed)))
}

/// `print!` that returns the write error (`?`) instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::out(&format!($($arg)*))? };
}

/// `println!` that returns the write error (`?`) instead of panicking.
#[macro_export]
macro_rules! outln {
    () => { $crate::stdout::out("\n")? };
    ($($arg:tt)*) => { $crate::stdout::out(&format!("{}\n", format_args!($($arg)*)))? };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! note {
    () => { $crate::stdout::note("") };
    ($($arg:tt)*) => { $crate::stdout::note(&format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_pipe_is_quiet() {
        let closed = anyhow::Error::new(OutputError::Closed).context("printing the jobs");
        assert!(is_closed_stdout(&closed));
        let full = anyhow::Error::new(OutputError::Failed(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(!is_closed_stdout(&full));
        assert!(full.to_string().starts_with("cannot write to standard output"), "{full}");
    }
}
