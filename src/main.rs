fn main() -> std::process::ExitCode {
    tutorq::cli::run()
}
