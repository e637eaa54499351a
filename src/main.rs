fn main() -> std::process::ExitCode {
    readygate::run_cli()
}
