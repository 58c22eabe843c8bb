//! Storage adapters of ghr (SQLite) and the storage conformance suite run against every backend.
