//! The `omni` command: run, -e, explain, check.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use omni_lang::{explain_source, run_source_with, with_big_stack, Diagnostic};

mod trace_out;
use omni_mem::{heap_stats, HeapStats};

const USAGE: &str = "\
usage:
  omni run FILE [ARGS...] [--stats]   run a program
  omni -e EXPR [--stats]              evaluate an expression (or several forms)
  omni explain FILE                   print the region schedule CTRR chose
  omni check FILE                     read and compile without running
  omni repl                           interactive session (:help inside)

options (anywhere; `--` passes the rest to the program):
  --stats                  region accounting at exit; fails if anything is still live
  --trace-regions FILE     Chrome/Perfetto trace-event JSON of region lifetimes
  --plot FILE              SVG plot of live segment bytes over time
  --region-quota BYTES     every region may hold at most BYTES (error otherwise)
  --max-heap BYTES         all regions together may hold at most BYTES of segments
  omni --help                         this message

";

struct Opts {
    cmd: String,
    target: String,
    args: Vec<String>,
    stats: bool,
    trace: Option<String>,
    plot: Option<String>,
    region_quota: Option<usize>,
    max_heap: Option<usize>,
}

fn bytes_arg(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a number of bytes"))?;
    v.parse::<usize>()
        .map_err(|_| format!("{flag}: '{v}' is not a number of bytes"))
}

/// omni's own flags are recognised anywhere (use `--` to pass one of them
/// to the program); the first two other words are the command and its
/// target, the rest are program arguments.
fn parse(argv: Vec<String>) -> Result<Opts, String> {
    let mut o = Opts {
        cmd: String::new(),
        target: String::new(),
        args: vec![],
        stats: false,
        trace: None,
        plot: None,
        region_quota: None,
        max_heap: None,
    };
    let mut positional = Vec::new();
    let mut it = argv.into_iter();
    let mut literal = false;
    while let Some(a) = it.next() {
        if !literal {
            match a.as_str() {
                "--" => {
                    literal = true;
                    continue;
                }
                "--stats" => {
                    o.stats = true;
                    continue;
                }
                "--trace-regions" => {
                    o.trace = Some(it.next().ok_or("--trace-regions needs a file name")?);
                    continue;
                }
                "--plot" => {
                    o.plot = Some(it.next().ok_or("--plot needs a file name")?);
                    continue;
                }
                "--region-quota" => {
                    o.region_quota = Some(bytes_arg("--region-quota", it.next())?);
                    continue;
                }
                "--max-heap" => {
                    o.max_heap = Some(bytes_arg("--max-heap", it.next())?);
                    continue;
                }
                _ => {}
            }
        }
        positional.push(a);
    }
    let mut p = positional.into_iter();
    o.cmd = p.next().ok_or("missing command")?;
    match o.cmd.as_str() {
        "--help" | "-h" | "help" => o.cmd = "help".into(),
        "repl" => {}
        "run" | "-e" | "explain" | "check" => {
            o.target = p
                .next()
                .ok_or_else(|| format!("'{}' needs an argument", o.cmd))?;
            o.args = p.collect();
        }
        other => return Err(format!("unknown command '{other}'")),
    }
    Ok(o)
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
    if let Some(v) = vm {
        let _ = writeln!(e, "calls                  {}", v.calls);
        let _ = writeln!(e, "tail calls             {}", v.tail_calls);
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
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("omni: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.cmd == "help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if opts.cmd == "repl" {
        return with_big_stack(repl);
    }
    let (file, src) = if opts.cmd == "-e" {
        ("<expr>".to_string(), opts.target.clone())
    } else {
        match std::fs::read(&opts.target) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => (opts.target.clone(), s),
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
    with_big_stack(move || run_cmd(opts, file, src))
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
    let errors = session.finish();
    if !errors.is_empty() {
        eprint!("{errors}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
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
                ..omni_lang::Limits::default()
            };
            let r = run_source_with(&src, out, opts.args.clone(), limits);
            let s = heap_stats();
            if opts.trace.is_some() || opts.plot.is_some() {
                let events = omni_mem::trace_stop();
                if events.len() > trace_out::MAX_EVENTS {
                    eprintln!(
                        "omni: trace truncated to the first {} of {} events",
                        trace_out::MAX_EVENTS,
                        events.len()
                    );
                }
                let outputs = [
                    (&opts.trace, trace_out::chrome_trace(&events)),
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
                Ok(v) => (ExitCode::SUCCESS, Some(v)),
                Err(d) => {
                    print_diags(&file, &src, &d);
                    (ExitCode::from(1), None)
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
