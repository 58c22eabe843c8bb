//! `ghr`: see the library for the commands.

fn main() -> std::process::ExitCode {
    ghr::main_entry()
}
