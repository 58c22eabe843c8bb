//! Integration tests of the GitHub emulator, the emulated runner and its binary, driven over real
//! HTTP with plain reqwest and jsonwebtoken.

mod actions_api;
mod assignment;
mod auth;
mod common;
mod runner_binary;
mod runners_api;
mod webhooks;
