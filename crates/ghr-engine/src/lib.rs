//! ghr's engine: webhook intake, fair dispatcher with atomic admission, runner lifecycle and reconciler.
