//! Test kit: a stateful GitHub emulator over HTTP, an emulated runner, signed webhook helpers.
