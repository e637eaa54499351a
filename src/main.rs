//! The `readygate` binary: catches signals first, then hands over to
//! [`readygate::run_cli`]; everything else is in the library.

fn main() -> std::process::ExitCode {
    // The very first instruction: from here on SIGTERM/SIGINT/SIGHUP exit 0.
    let early_signals = readygate::signals::install();
    readygate::run_cli(early_signals)
}
