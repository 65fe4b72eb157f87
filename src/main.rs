fn main() -> std::process::ExitCode {
    awd::cli::main()
}
