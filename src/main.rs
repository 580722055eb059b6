// glibc's malloc spent a third of a web process's CPU under load (many small, short-lived
// allocations across threads); mimalloc does the same work in a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tutorq::cli::run()
}
