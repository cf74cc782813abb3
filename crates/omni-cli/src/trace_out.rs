//! Writing region traces: a Chrome/Perfetto trace-event JSON file
//! (`--trace-regions`) and an SVG plot of live segment bytes over time
//! (`--plot`), both from omni-mem's event log.

use std::fmt::Write as _;

use omni_mem::{TraceEvent, TraceKind};

/// Most events written; longer logs are truncated with a note.
pub const MAX_EVENTS: usize = 500_000;

fn ts_us(e: &TraceEvent) -> String {
    format!("{:.3}", e.t_ns as f64 / 1000.0)
}

/// Chrome trace-event format: one async slice per region lifetime (create
/// to free, to the merge that ended it, or to its handoff to another
/// thread), instant events for merges, transmigrations and adoptions, and
/// a counter track of live segment bytes per thread. `threads` holds
/// (name, log) per thread, the main thread first; the `tid` of each is its
/// position from 1. All logs share one time axis.
pub fn chrome_trace(threads: &[(String, &[TraceEvent])]) -> String {
    let mut out = String::from("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    let mut first = true;
    let mut push = |out: &mut String, s: String| {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        out.push_str(&s);
    };
    let mut budget = MAX_EVENTS;
    for (k, (name, events)) in threads.iter().enumerate() {
        let tid = k + 1;
        push(
            &mut out,
            format!("{{\"name\":\"thread_name\",\"ph\":\"M\",\"ts\":0,\"pid\":1,\"tid\":{tid},\"args\":{{\"name\":\"{name}\"}}}}"),
        );
        let take = events.len().min(budget);
        budget -= take;
        thread_events(&events[..take], tid, name, &mut |s| push(&mut out, s));
    }
    out.push_str("\n]}\n");
    out
}

fn thread_events(events: &[TraceEvent], tid: usize, name: &str, push: &mut dyn FnMut(String)) {
    for e in events {
        let ts = ts_us(e);
        let r = e.region;
        match e.kind {
            TraceKind::Create => push(format!("{{\"name\":\"region {r}\",\"cat\":\"region\",\"ph\":\"b\",\"id\":{r},\"ts\":{ts},\"pid\":1,\"tid\":{tid}}}"),
            ),
            TraceKind::Free { bytes } => push(
                format!("{{\"name\":\"region {r}\",\"cat\":\"region\",\"ph\":\"e\",\"id\":{r},\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"bytes\":{bytes}}}}}"),
            ),
            TraceKind::Merge { into, bytes } => {
                push(
                    format!("{{\"name\":\"region {r}\",\"cat\":\"region\",\"ph\":\"e\",\"id\":{r},\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"merged_into\":{into},\"bytes\":{bytes}}}}}"),
                );
                push(
                    format!("{{\"name\":\"merge\",\"cat\":\"repair\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"region\":{r},\"into\":{into},\"bytes\":{bytes}}}}}"),
                );
            }
            TraceKind::Send => push(
                format!("{{\"name\":\"region {r}\",\"cat\":\"region\",\"ph\":\"e\",\"id\":{r},\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"sent_to_another_thread\":true}}}}"),
            ),
            TraceKind::Adopt { into, bytes } => push(
                format!("{{\"name\":\"adopt\",\"cat\":\"handoff\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"region\":{r},\"into\":{into},\"bytes\":{bytes}}}}}"),
            ),
            TraceKind::Transmigrate { objects, bytes } => push(
                format!("{{\"name\":\"transmigrate\",\"cat\":\"repair\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts},\"pid\":1,\"tid\":{tid},\"args\":{{\"into\":{r},\"objects\":{objects},\"bytes\":{bytes}}}}}"),
            ),
        }
        push(format!(
            "{{\"name\":\"live segment bytes ({name})\",\"ph\":\"C\",\"ts\":{ts},\"pid\":1,\"args\":{{\"bytes\":{}}}}}",
            e.live_segment_bytes
        ));
    }
}

/// An SVG line plot of live segment bytes over time.
pub fn svg_plot(events: &[TraceEvent], title: &str) -> String {
    let (w, h, m) = (800.0f64, 400.0f64, 60.0f64);
    let t_max = events.last().map(|e| e.t_ns).unwrap_or(1).max(1) as f64;
    let b_max = events
        .iter()
        .map(|e| e.live_segment_bytes)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = (events.len() / 2000).max(1);
    let mut points = String::new();
    let mut last = None;
    for (i, e) in events.iter().enumerate() {
        if i % step != 0 && i + 1 != events.len() {
            continue;
        }
        let x = m + (e.t_ns as f64 / t_max) * (w - 2.0 * m);
        let y = h - m - (e.live_segment_bytes as f64 / b_max) * (h - 2.0 * m);
        // A step line: hold the previous value until this event.
        if let Some(py) = last {
            let _ = write!(points, "{x:.1},{py:.1} ");
        }
        let _ = write!(points, "{x:.1},{y:.1} ");
        last = Some(y);
    }
    let esc = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"30\" font-family=\"sans-serif\" font-size=\"16\">{esc}: live segment bytes over time</text>\n\
         <line x1=\"{m}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <text x=\"{m}\" y=\"{yl}\" font-family=\"sans-serif\" font-size=\"12\">0</text>\n\
         <text x=\"{xr}\" y=\"{yl}\" font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"end\">{t_ms:.3} ms</text>\n\
         <text x=\"5\" y=\"{m}\" font-family=\"sans-serif\" font-size=\"12\">{b_max} B</text>\n\
         <polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1.5\" points=\"{points}\"/>\n\
         </svg>\n",
        yb = h - m,
        xr = w - m,
        yl = h - m + 20.0,
        t_ms = t_max / 1e6,
    )
}
