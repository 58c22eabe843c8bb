//! Rendering errors for logs and messages: each layer's `Display` says what *it* was doing and never
//! repeats its source, so the whole story is the chain, printed once.

use std::fmt;

/// Displays an error with its whole `source()` chain: `outer: cause: root cause`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The chain as one line of text.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn prints_every_cause_once() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(super::error_chain(&error), "reading the config: disk on fire");
    }
}
