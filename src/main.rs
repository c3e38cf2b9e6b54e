//! The `specc` binary: the command line of [`specc::cli`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(specc::cli::run(std::env::args_os()))
}
