//! What the webhook Lambda bench runs on: the emulated AWS account, a Lambda Runtime API stand-in, and the
//! function process with its CPU counters.

pub mod aws;
pub mod process;
pub mod runtime_api;
