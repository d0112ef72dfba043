//! The switchyard binary: read the configuration, set up logging, run until SIGINT/SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use switchyard::{
    Config,
    cli::{Cli, Command},
    config::{LogFormat, RunArgs},
    log_file, log_writer,
    telemetry::Tracing,
};
use tracing_subscriber::{EnvFilter, fmt::writer::BoxMakeWriter};

fn main() -> ExitCode {
    tune_malloc();
    // Before the flags are read, as rollup-boost does: the real environment wins over the file.
    if let Err(error) = switchyard::config::load_dotenv() {
        return fail(&error);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => return fail(&first_line(&error.to_string())),
    };
    match cli.command {
        Some(Command::Flags) => return print_flags(),
        Some(Command::Devnet(args)) => return devnet(args),
        None => {}
    }
    let config = match Config::from_args(&cli.run) {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string()),
    };
    if cli.run.print_config {
        return print_config(&config, &cli.run);
    }
    let log_file = match cli
        .run
        .peer
        .log_file
        .as_deref()
        .map(log_file::open)
        .transpose()
    {
        Ok(file) => file,
        Err(error) => return fail(&format!("--log-file: {error}")),
    };
    let (file, reopen) = log_file.unzip();
    let traces = config.tracing.as_ref().map(Tracing::new);
    // Held to the end: dropping it writes the lines still queued.
    let _log = init_tracing(&cli.run, file, traces.as_ref());
    match run(config, cli.run.worker_threads.max(1), reopen, traces) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(target: "switchyard", error = format!("{error:#}"), "exiting");
            ExitCode::FAILURE
        }
    }
}

/// Sets glibc malloc up for megabyte payloads; an operator's own setting of each wins.
///
/// - **Two arenas.** glibc gives every thread that allocates under contention an arena of its
///   own (up to eight per core) and never hands one arena's free memory to another.
///   switchyard's megabyte payloads are allocated on the event loop and freed on blocking
///   threads (the payload checks) and back: with 16 one-megabyte block cycles in flight, arenas
///   held about a third of the peak (153 → 117 MiB with two). Two arenas: the event loop's and
///   one shared by the helpers (`MALLOC_ARENA_MAX`).
/// - **Megabyte buffers reused, not mapped afresh.** Above glibc's mmap threshold (128 KiB at
///   first, raised to the largest chunk freed so far) each buffer is a new mapping, and every
///   one of its pages is faulted in and zeroed when first written: about 680 faults a 1 MiB
///   block cycle, nearly all in the copies that fill a body or write a payload. Buffers below
///   32 MiB come from the heap instead, and up to 16 MiB of freed memory is kept at its top
///   rather than handed back and faulted in again (`MALLOC_MMAP_THRESHOLD_`,
///   `MALLOC_TRIM_THRESHOLD_`). Each is left alone if the operator set it, in its variable or in
///   `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 16 << 20;
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let unset = |variable: &str, tunable: &str| {
        std::env::var_os(variable).is_none() && !tunables.contains(tunable)
    };
    let settings = [
        (
            "MALLOC_ARENA_MAX",
            "glibc.malloc.arena_max",
            libc::M_ARENA_MAX,
            2,
        ),
        (
            "MALLOC_MMAP_THRESHOLD_",
            "glibc.malloc.mmap_threshold",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            "glibc.malloc.trim_threshold",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
        ),
    ];
    for (variable, tunable, parameter, value) in settings {
        if unset(variable, tunable) {
            // SAFETY: called first thing in `main`, before any other thread exists; mallopt
            // only sets an allocator parameter.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn run(
    config: Config,
    worker_threads: usize,
    reopen: Option<log_file::Reopen>,
    traces: Option<Tracing>,
) -> anyhow::Result<()> {
    // One worker: everything on the main thread, so a request never wakes another thread (the
    // accept loop included). Blocking work (big payload checks) still has its own pool.
    let mut builder = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(worker_threads);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        if let Some(reopen) = reopen {
            reopen_on_hangup(reopen).context("listening for SIGHUP")?;
        }
        let exporting = match traces {
            Some(mut traces) => Some(traces.start().context("--tracing")?),
            None => None,
        };
        let listeners = switchyard::Listeners::bind(&config)
            .await
            .with_context(|| {
                format!(
                    "--rpc-port / --debug-server-port: cannot listen on {}",
                    config.rpc_addr
                )
            })?;
        let served = switchyard::run(listeners, config, shutdown_signal())
            .await
            .context("serving");
        if let Some(exporting) = exporting {
            exporting.flush().await;
        }
        served
    })
}

/// logrotate moves the file, then sends SIGHUP: the next line starts a new file.
#[cfg(unix)]
fn reopen_on_hangup(reopen: log_file::Reopen) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reopen.request();
            tracing::info!(target: "switchyard", "log file reopened");
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reopen_on_hangup(_: log_file::Reopen) -> std::io::Result<()> {
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!(target: "switchyard", "shutdown signal received");
}

/// Logs to stdout (and `--log-file`) through a writer thread (see [`log_writer`]), or directly
/// if that thread cannot be started. Colour only on a terminal, and never with a file: escape
/// codes in a file or a pipe are noise to whoever reads it.
fn init_tracing(
    args: &RunArgs,
    file: Option<log_file::AppendFile>,
    traces: Option<&Tracing>,
) -> Option<log_writer::FlushGuard> {
    use std::io::IsTerminal;
    let colour = file.is_none() && std::io::stdout().is_terminal();
    let level = args.log_level.as_str().to_lowercase();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("warn,switchyard={level},switchyard_layers={level}"))
    });
    let sink: Box<dyn std::io::Write + Send> = match file {
        Some(file) => Box::new(log_file::Tee::new(file, std::io::stdout())),
        None => Box::new(std::io::stdout()),
    };
    let (writer, guard) = match log_writer::spawn(sink, log_writer::QUEUE_LINES) {
        Ok((writer, guard)) => (BoxMakeWriter::new(writer), Some(guard)),
        // No thread to be had: lines are written where they are made (not to the file: a
        // daemon that cannot start a thread is failing anyway).
        Err(_) => (BoxMakeWriter::new(std::io::stdout), None),
    };
    if let Some(traces) = traces {
        // Each layer its own filter: the log keeps --log-level; the export takes the spans.
        use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
        let log = tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_target(true)
            .with_writer(writer);
        let log = match args.log_format {
            LogFormat::Text => log.boxed(),
            LogFormat::Json => log.json().flatten_event(true).boxed(),
        };
        tracing_subscriber::registry()
            .with(traces.layer())
            .with(log.with_filter(filter))
            .init();
        return guard;
    }
    let builder = tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

fn devnet(args: switchyard::devnet::DevnetArgs) -> ExitCode {
    // The devnet prints its own line per block; logs would drown it.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("starting the runtime: {error}")),
    };
    match runtime.block_on(switchyard::devnet::run(args)) {
        Ok(summary) if summary.failed_blocks == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => fail(&format!("devnet: {error:#}")),
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Start-up errors go to stderr as one line: logging is not set up yet, and an operator
/// reading a failed unit's output wants exactly this line.
#[allow(clippy::print_stderr)]
fn fail(message: &str) -> ExitCode {
    eprintln!("switchyard: {message}");
    ExitCode::from(2)
}

/// The configuration as read, for an operator (or a test) to check each flag's meaning.
#[allow(clippy::print_stdout)]
fn print_config(config: &Config, args: &RunArgs) -> ExitCode {
    let mut described = config.describe();
    described["log_level"] = args.log_level.as_str().into();
    described["log_format"] = format!("{:?}", args.log_format).to_lowercase().into();
    described["log_file"] = args
        .peer
        .log_file
        .as_ref()
        .map(|p| p.display().to_string())
        .into();
    println!("{described:#}");
    ExitCode::SUCCESS
}

/// The configuration reference, generated from the parser itself.
#[allow(clippy::print_stdout)]
fn print_flags() -> ExitCode {
    print!("{}", switchyard::config::flags_markdown());
    ExitCode::SUCCESS
}
