//! The `gateway` binary: argument parsing and the exit-code policy live in
//! `cli`; each command in its own module. The served gateway itself is the
//! `gateway` library.

mod admin;
mod cli;
mod conformance;
mod dev;
mod invoke;
mod scaffold;
mod serve;
mod simulate;

/// mimalloc rather than glibc's allocator: the served path allocates and
/// frees small buffers on several threads, and glibc's arenas spent about
/// 8 % of a create's CPU in `malloc`/`free`/`malloc_consolidate`
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
