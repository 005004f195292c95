//! The `gateway` binary: argument parsing and the exit-code policy live in
//! `cli`; each command in its own module. The served gateway itself is the
//! `gateway` library.

mod admin;
mod cli;
mod invoke;
mod serve;
mod simulate;

fn main() -> std::process::ExitCode {
    cli::run()
}
