//! `cloudy-p2p`: the one binary of cloudy-p2p. `init` and `up` work on the
//! home directly; every other subcommand is a client of the running node's
//! local control API.

mod aliases;
mod args;
mod commands;
mod output;
mod progress;
mod trim;

use clap::Parser;

/// The node runs on at most two worker threads unless TOKIO_WORKER_THREADS
/// says otherwise: a second thread lets transfers use a second core, more
/// would only add wake-ups on the small boxes nodes run on (see
/// ARCHITECTURE.md). Client commands keep tokio's default.
///
/// The node also keeps glibc's malloc to two arenas and a fixed mmap
/// threshold of 2 MiB (unless MALLOC_ARENA_MAX is set): with one arena per
/// thread that ever allocated, blocks freed on the blocking pool's threads
/// stayed in their arenas, and a node that had synced a large file idled at
/// 33 MB instead of 28 MB; and glibc's sliding threshold, once a 4 MiB
/// buffer was freed, kept later freed memory in the heap. A lower threshold
/// (256 KiB) cost storage transfers their 1 MiB segment buffers being mapped
/// and zeroed afresh each time (ARCHITECTURE.md). Once a minute the node
/// hands free heap pages back to the system (`malloc_trim`): glibc returns
/// only the top of a heap by itself, and after a community of 100 formed,
/// 6 of a node's 17 MB of anonymous memory were free pages kept in the
/// middle of its heaps; and drops its code pages from its resident set
/// (`trim.rs`).
fn runtime(command: &args::Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if matches!(command, args::Command::Up { .. }) {
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            b.worker_threads(cores.min(2));
        }
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only sets malloc tunables, and this runs
            // before any other thread exists.
            #[allow(unsafe_code)]
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 2);
                libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
            };
        }
        trim::start();
    } else {
        quiet_when_stdout_goes_away();
    }
    b.enable_all().build()
}

/// A client command piped into `head` or `less` stops quietly when the
/// reader goes away, as other Unix tools do: `print!` panics on the broken
/// pipe ("failed printing to stdout"), and this hook ends the process by
/// SIGPIPE instead, printing nothing. SIGPIPE itself stays ignored (Rust's
/// default): the HTTP client writes its uploads with `writev`, which
/// raises it when the node closes the connection mid-upload, and a `put`
/// the node refused died silently, before it could print why.
fn quiet_when_stdout_goes_away() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            die_by_sigpipe();
        }
        default(info);
    }));
}

/// Whether standard output is a pipe whose reader has gone (a broken pipe
/// there, not on a socket to the node).
fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: polls one valid pollfd for its state, without waiting.
    #[allow(unsafe_code)]
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & libc::POLLERR != 0
}

/// Ends the process as a Unix tool whose reader went away: by SIGPIPE,
/// printing nothing.
fn die_by_sigpipe() -> ! {
    // SAFETY: restores one signal's default action and raises it.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    let runtime = match runtime(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<commands::Verdict>() {
            Some(v) => {
                eprintln!("{}", v.message);
                std::process::ExitCode::from(v.code)
            }
            None => {
                let broken = e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                });
                if broken && stdout_reader_gone() {
                    die_by_sigpipe();
                }
                eprintln!("error: {}", output::one_line(&e));
                std::process::ExitCode::FAILURE
            }
        },
    }
}
