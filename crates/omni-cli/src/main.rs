//! The `omni` command: run, -e, explain, check, repl.

use std::io::{BufWriter, Write};

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

use omni_lang::{explain_source, with_big_stack, Diagnostic};

mod trace_out;
use omni_mem::{heap_stats, HeapStats};

/// Examples shown under `omni --help`.
const EXAMPLES: &str = "\
examples:
  omni run examples/hello.omni            run a program
  omni run prog.omni --stats -- a b       program arguments after `--` (or after FILE)
  omni -e '(println (+ 1 2))'             evaluate forms given on the command line
  omni explain prog.omni                  the region schedule CTRR chose
  omni check prog.omni                    every read and compile error at once
  omni repl                               interactive session (:help inside)";

/// OmniLisp-rs: a Lisp whose memory is managed by regions (CTRR and
/// Region-RC), with no garbage collector.
#[derive(Parser, Debug)]
#[command(
    name = "omni",
    version,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true,
    after_help = EXAMPLES
)]
struct Cli {
    /// Evaluate EXPR (one or several forms) instead of a file; any further
    /// values are program arguments (see `(command-line)`).
    #[arg(short = 'e', value_name = "EXPR [ARGS]", num_args = 1..)]
    expr: Vec<String>,
    #[command(flatten)]
    flags: RunFlags,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a program; ARGS reach it through `(command-line)`.
    Run {
        /// The program (.omni source).
        file: String,
        /// Program arguments (put them after `--` if they start with `-`).
        args: Vec<String>,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Print the region schedule CTRR chose for each procedure.
    Explain {
        /// The program (.omni source).
        file: String,
    },
    /// Read and compile without running; report every error at once.
    Check {
        /// The program (.omni source).
        file: String,
    },
    /// Interactive session with line editing (:help inside).
    Repl,
}

#[derive(Args, Debug, Default, Clone)]
struct RunFlags {
    /// Print region accounting at exit; fail if anything is still live.
    #[arg(long)]
    stats: bool,
    /// Write a Chrome/Perfetto trace-event JSON of region lifetimes.
    #[arg(long = "trace-regions", value_name = "FILE")]
    trace_regions: Option<String>,
    /// Write an SVG plot of live segment bytes over time.
    #[arg(long, value_name = "FILE")]
    plot: Option<String>,
    /// Every region may hold at most BYTES (an error names the site).
    #[arg(long = "region-quota", value_name = "BYTES")]
    region_quota: Option<usize>,
    /// All regions together may hold at most BYTES of segments.
    #[arg(long = "max-heap", value_name = "BYTES")]
    max_heap: Option<usize>,
    /// At most N nested non-tail calls (default 1,000,000; 100,000 in debug builds).
    #[arg(long = "max-depth", value_name = "N")]
    max_depth: Option<usize>,
    /// Run every call on the general path (no pure tier), to compare.
    #[arg(long = "no-pure-tier")]
    no_pure_tier: bool,
}

struct Opts {
    cmd: String,
    target: String,
    args: Vec<String>,
    stats: bool,
    trace: Option<String>,
    plot: Option<String>,
    region_quota: Option<usize>,
    max_heap: Option<usize>,
    max_depth: Option<usize>,
    pure_tier: bool,
}

/// The command line as the rest of `main` uses it.
fn opts(cli: Cli) -> Opts {
    let (cmd, target, args, f) = match cli.cmd {
        Some(Cmd::Run { file, args, flags }) => ("run", file, args, flags),
        Some(Cmd::Explain { file }) => ("explain", file, vec![], RunFlags::default()),
        Some(Cmd::Check { file }) => ("check", file, vec![], RunFlags::default()),
        Some(Cmd::Repl) => ("repl", String::new(), vec![], RunFlags::default()),
        None => {
            let mut e = cli.expr.into_iter();
            let expr = e.next().unwrap_or_default();
            ("-e", expr, e.collect(), cli.flags)
        }
    };
    Opts {
        cmd: cmd.to_string(),
        target,
        args,
        stats: f.stats,
        trace: f.trace_regions,
        plot: f.plot,
        region_quota: f.region_quota,
        max_heap: f.max_heap,
        max_depth: f.max_depth,
        pure_tier: !f.no_pure_tier,
    }
}

fn print_diags(file: &str, src: &str, diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = err.write_all(d.render(file, src).as_bytes());
    }
}

fn print_stats(s: &HeapStats, vm: Option<&omni_lang::vm::VmStats>) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "--- omni stats ---");
    let _ = writeln!(e, "regions created        {}", s.regions_created);
    let _ = writeln!(e, "regions freed          {}", s.regions_freed);
    let _ = writeln!(e, "regions merged         {}", s.regions_merged);
    let _ = writeln!(e, "peak live bytes        {}", s.peak_live_bytes);
    let _ = writeln!(e, "peak segment bytes     {}", s.peak_segment_bytes);
    let _ = writeln!(e, "transmigrations        {}", s.transmigrations);
    let _ = writeln!(e, "bytes transmigrated    {}", s.transmigrated_bytes);
    let _ = writeln!(e, "objects transmigrated  {}", s.transmigrated_objects);
    let _ = writeln!(e, "merges                 {}", s.merges);
    let _ = writeln!(e, "repairs: transmigrate  {}", s.repairs_transmigrate);
    let _ = writeln!(e, "repairs: merge         {}", s.repairs_merge);
    // The ladder: why copies happened instead of merges.
    let refusals: Vec<String> = omni_mem::MergeRefusal::ALL
        .iter()
        .filter(|r| s.merge_refusals[**r as usize] > 0)
        .map(|r| format!("{} {}", s.merge_refusals[*r as usize], r.reason()))
        .collect();
    let _ = writeln!(
        e,
        "copies instead of merge {} below threshold{}{}",
        s.repairs_below_merge_threshold,
        if refusals.is_empty() {
            ""
        } else {
            ", refused: "
        },
        refusals.join(", ")
    );
    let _ = writeln!(
        e,
        "slot regions           {} created, {} compactions ({} bytes given back), {} pinned by reads",
        s.slot_regions_created, s.slot_compactions, s.slot_bytes_reclaimed, s.slot_regions_pinned
    );
    if let Some(v) = vm {
        let _ = writeln!(e, "calls                  {}", v.calls);
        let _ = writeln!(e, "tail calls             {}", v.tail_calls);
        let _ = writeln!(
            e,
            "pure-tier runs         {} ({} fell back)",
            v.pure_runs, v.pure_fallbacks
        );
        let _ = writeln!(e, "pure-tier self-calls   {}", v.pure_self_calls);
        let _ = writeln!(e, "scratch regions used   {}", v.scratch_regions);
        let _ = writeln!(
            e,
            "return repairs         {} transmigrate, {} merge",
            v.return_repairs_transmigrate, v.return_repairs_merge
        );
        let _ = writeln!(e, "global-store repairs   {}", v.global_repairs);
        if v.threads_spawned > 0 || v.sends_transfer + v.sends_copy + v.sends_immediate > 0 {
            let _ = writeln!(
                e,
                "sends                  {} region transfer (A), {} copy (B), {} immediate; {} receives",
                v.sends_transfer, v.sends_copy, v.sends_immediate, v.receives
            );
            let _ = writeln!(
                e,
                "regions handed off     {} sent, {} adopted (this thread)",
                s.regions_sent, s.regions_adopted
            );
            let _ = writeln!(e, "threads spawned        {}", v.threads_spawned);
            let _ = writeln!(
                e,
                "  their regions        {} created, {} bytes transmigrated",
                v.thread_regions_created, v.thread_bytes_transmigrated
            );
            let _ = writeln!(
                e,
                "  live at their exit   {} regions, {} bytes",
                v.thread_live_regions_at_exit, v.thread_live_bytes_at_exit
            );
        }
    }
    let _ = writeln!(e, "live regions at exit   {}", s.live_regions);
    let _ = writeln!(e, "live bytes at exit     {}", s.live_bytes);
}

fn main() -> ExitCode {
    let opts = match Cli::try_parse() {
        Ok(cli) => opts(cli),
        Err(e) => {
            // --help and --version print to stdout and succeed; usage
            // errors print to stderr and exit with status 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    catch_interrupts();
    if opts.cmd == "repl" {
        return on_vm_thread(repl);
    }
    let (file, src) = if opts.cmd == "-e" {
        ("<expr>".to_string(), opts.target.clone())
    } else {
        match std::fs::read(&opts.target) {
            Ok(bytes) => match String::from_utf8(bytes) {
                // A byte-order mark (some editors start UTF-8 files with
                // one) is not part of the program: lines and columns
                // count from the text after it.
                Ok(s) => match s.strip_prefix('\u{feff}') {
                    Some(rest) => (opts.target.clone(), rest.to_owned()),
                    None => (opts.target.clone(), s),
                },
                Err(e) => {
                    let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
                    let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
                    eprintln!("{}:{line}:{col}: read error: invalid UTF-8", opts.target);
                    return ExitCode::from(1);
                }
            },
            Err(e) => {
                eprintln!("omni: cannot read {}: {e}", opts.target);
                return ExitCode::from(1);
            }
        }
    };
    on_vm_thread(move || run_cmd(opts, file, src))
}

/// Ctrl-C, SIGTERM and SIGHUP ask the running program to stop at its next
/// call (`omni_lang::interrupt`): it ends with the error `interrupted` and
/// a backtrace, its output flushed and its regions freed, and `omni` exits
/// with status 130 (the REPL goes back to its prompt). A signal that
/// arrives while an earlier one is still pending (a program stuck outside
/// any call, waiting on a channel, say) exits at once with status 130.
fn catch_interrupts() {
    let handler = || {
        if omni_lang::interrupt::pending() {
            std::process::exit(130);
        }
        omni_lang::interrupt::request();
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("omni: note: Ctrl-C will end the program without its pending output ({e})");
    }
}

/// Run `f` on a VM thread; if none can be started (address space too
/// limited even for the smallest stack), say so and exit with status 1.
fn on_vm_thread(f: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    match with_big_stack(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omni: cannot start the VM thread: {e}");
            ExitCode::from(1)
        }
    }
}

/// The interactive loop: line editing and history on a terminal, plain
/// lines otherwise (so it can be scripted and tested through stdin).
fn repl() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let mut session = omni_lang::repl::Repl::new(Box::new(std::io::stdout()));
    let show = |reply: &omni_lang::repl::Reply| {
        print!("{}", reply.out);
        eprint!("{}", reply.err);
        let _ = std::io::stdout().flush();
    };
    if std::io::stdin().is_terminal() {
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("omni: cannot start line editing: {e}");
                return ExitCode::from(1);
            }
        };
        println!("OmniLisp-rs REPL. :help for commands, Ctrl-D to leave.");
        loop {
            match editor.readline(session.prompt()) {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    let reply = session.feed(&line);
                    show(&reply);
                    if reply.quit {
                        break;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => break,
            }
        }
    } else {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let reply = session.feed(&line);
            show(&reply);
            if reply.quit {
                break;
            }
        }
    }
    let exit = session.exit_status();
    let errors = session.finish();
    if !errors.is_empty() {
        eprint!("{errors}");
        return ExitCode::from(1);
    }
    ExitCode::from(exit.unwrap_or(0))
}

fn run_cmd(opts: Opts, file: String, src: String) -> ExitCode {
    match opts.cmd.as_str() {
        "explain" => match explain_source(&src) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(d) => {
                print_diags(&file, &src, &d);
                ExitCode::from(1)
            }
        },
        "check" => {
            let mut vm = omni_lang::vm::Vm::new(Box::new(std::io::sink()));
            let r = omni_lang::compile_program(&mut vm, &src);
            vm.shutdown();
            match r {
                Ok(_) => ExitCode::SUCCESS,
                Err(d) => {
                    print_diags(&file, &src, &d);
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            let out = Box::new(BufWriter::new(std::io::stdout()));
            if opts.trace.is_some() || opts.plot.is_some() {
                omni_mem::trace_start();
            }
            omni_mem::set_heap_limit(opts.max_heap);
            let limits = omni_lang::Limits {
                region_quota: opts.region_quota,
                max_depth: opts.max_depth.unwrap_or(omni_lang::MAX_DEPTH),
                pure_tier: opts.pure_tier,
                ..omni_lang::Limits::default()
            };
            let report = omni_lang::run_source_report(&src, out, opts.args.clone(), limits);
            print_diags(&file, &src, &report.warnings);
            let r = report.result.clone();
            let s = heap_stats();
            if opts.trace.is_some() || opts.plot.is_some() {
                let events = omni_mem::trace_stop();
                let mut threads: Vec<(String, &[omni_mem::TraceEvent])> =
                    vec![("main".to_string(), &events[..])];
                for (id, ev) in &report.thread_traces {
                    threads.push((format!("thread {id}"), &ev[..]));
                }
                let total: usize = threads.iter().map(|t| t.1.len()).sum();
                if total > trace_out::MAX_EVENTS {
                    eprintln!(
                        "omni: trace truncated to the first {} of {} events",
                        trace_out::MAX_EVENTS,
                        total
                    );
                }
                // The SVG plots the main thread's live segment bytes.
                let outputs = [
                    (&opts.trace, trace_out::chrome_trace(&threads)),
                    (&opts.plot, trace_out::svg_plot(&events, &file)),
                ];
                for (path, text) in outputs {
                    if let Some(path) = path {
                        if let Err(e) = std::fs::write(path, text) {
                            eprintln!("omni: cannot write {path}: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
            }
            let (code, vm) = match r {
                Ok(v) => (ExitCode::from(report.exit.unwrap_or(0)), Some(v)),
                Err(d) => {
                    print_diags(&file, &src, &d);
                    let interrupted = omni_lang::interrupt::signals() > 0;
                    (ExitCode::from(if interrupted { 130 } else { 1 }), None)
                }
            };
            if opts.stats {
                print_stats(&s, vm.as_ref());
                let threads_live = vm.as_ref().map_or(0, |v| {
                    v.thread_live_bytes_at_exit as u64 + v.thread_live_regions_at_exit
                });
                if s.live_bytes != 0 || s.live_regions != 0 || threads_live != 0 {
                    eprintln!(
                        "omni: internal error: {} bytes in {} regions still live at exit",
                        s.live_bytes, s.live_regions
                    );
                    return ExitCode::from(3);
                }
            }
            code
        }
    }
}
