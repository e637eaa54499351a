fn main() -> std::process::ExitCode {
    // The very first instruction: from here on SIGTERM/SIGINT/SIGHUP exit 0.
    let early_signals = readygate::signals::install();
    readygate::run_cli(early_signals)
}
