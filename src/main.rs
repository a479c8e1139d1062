//! The `twill` command: each protocol's server as a subcommand.

fn main() {
    std::process::exit(twill::cli::main(std::env::args_os()));
}
