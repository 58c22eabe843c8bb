//! ghr.toml: typed, strict, documented configuration.
