fn main() -> std::process::ExitCode {
    awd::alloc::tune();
    awd::cli::main()
}
