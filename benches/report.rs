//! The measurements that are not timings of one operation, and the results table.
//!
//! For every engine in [`peers::selected`], on the same records:
//! 1. load 100k records (batched for the peers: the load is preparation, not a timed append);
//! 2. disk bytes against the payload bytes (the encoded records);
//! 3. open time (median of up to 5 reopens), and open plus the first read, since some engines defer
//!    work to the first read; heap bytes held after open, per notification;
//! 4. a sweep at the time half the records have expired: its time (including the sync that
//!    makes it durable), the bytes the process wrote meanwhile (`wchar` of `/proc/self/io`), the
//!    bytes the engine says it rewrote, and disk bytes before and after;
//! 5. load 1M records and measure open again (median of up to 3), for the engines
//!    [`measures_large`] names.
//!
//! Then it reads the medians criterion just wrote for `benches/feeds.rs` (cargo runs the bench
//! targets in name order, so `feeds` runs first in `cargo bench`) and prints every table of
//! `benches/README.md` with the ratios of each notifeed engine against each peer, and the log
//! engine's targets from issue 3. Everything is printed as Markdown and also written to
//! `<target dir>/notifeed-bench-report.md`.

// Each bench target uses its own part of the shared modules.
#[allow(dead_code)]
mod peers;
#[cfg(feature = "redis")]
#[path = "../tests/redis_cluster/mod.rs"]
mod redis_cluster;
#[allow(dead_code)]
mod workload;

use std::alloc::System;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cap::Cap;
use notifeed::clock::timestamp_to_nanos;
use workload::{BenchResult, Mode, Peer, PeerSpec, Record, Workload, disk_bytes, must, scaled};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const SMALL: u64 = 100_000;
const LARGE: u64 = 1_000_000;

/// What the report measured for one engine.
#[derive(Default)]
struct Measured {
    name: &'static str,
    load: Duration,
    payload: u64,
    disk_apparent: u64,
    disk_allocated: u64,
    /// Of `disk_allocated`: caches the engine rebuilds when missing (the log engine's index
    /// snapshot, present between a clean close and the next open).
    cache_allocated: u64,
    open_small: Duration,
    open_read_small: Duration,
    heap_per_small: f64,
    sweep: Duration,
    sweep_removed: u64,
    sweep_expected: u64,
    sweep_written: u64,
    sweep_rewritten: Option<u64>,
    live_payload: u64,
    disk_after_apparent: u64,
    disk_after_allocated: u64,
    load_large: Duration,
    open_large: Option<Duration>,
    open_read_large: Option<Duration>,
    heap_per_large: Option<f64>,
    index_small: Option<f64>,
    index_large: Option<f64>,
}

/// Bytes this process has passed to `write`-family system calls so far.
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| io.lines().find_map(|l| l.strip_prefix("wchar:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Opens `dir` `times` times; returns the median open time, the median open-plus-first-read
/// time, the heap the last open holds, and that last peer.
fn reopen(
    spec: &PeerSpec,
    dir: &Path,
    times: usize,
    first: &Record,
) -> BenchResult<(Duration, Duration, u64, Box<dyn Peer>)> {
    let now = timestamp_to_nanos(Workload::default().start());
    let (mut opens, mut reads) = (Vec::new(), Vec::new());
    let mut last = None;
    let mut heap = 0;
    let budget = Instant::now();
    // Slow opens are repeated less: the budget of `cargo bench` is 10 minutes.
    for _ in 0..times {
        if !opens.is_empty() && budget.elapsed() > Duration::from_secs(5) {
            break;
        }
        drop(last.take());
        let before = ALLOCATOR.allocated();
        let start = Instant::now();
        let peer = (spec.open)(dir, Mode::Buffered)?;
        opens.push(start.elapsed());
        heap = ALLOCATOR.allocated().saturating_sub(before) as u64;
        let page = peer.newest(first.feed, 20, now)?;
        reads.push(start.elapsed());
        if page.is_empty() {
            return Err(format!("{}: feed {} is empty after reopening", spec.name, first.feed).into());
        }
        last = Some(peer);
    }
    let peer = last.ok_or("no reopen")?;
    Ok((median(opens), median(reads), heap, peer))
}

fn measure(spec: &PeerSpec, small: &[Record], large_count: u64) -> BenchResult<Measured> {
    let workload = Workload::default();
    let dir = tempfile::tempdir()?;
    let mut m = Measured { name: spec.name, ..Measured::default() };

    let peer = (spec.open)(dir.path(), Mode::Buffered)?;
    let start = Instant::now();
    peer.load(small)?;
    m.load = start.elapsed();
    drop(peer);
    m.payload = small.iter().map(|r| r.body.len() as u64).sum();
    (m.disk_apparent, m.disk_allocated) = disk_bytes(dir.path())?;
    m.cache_allocated = workload::cache_bytes(dir.path())?;

    let (open, read, heap, peer) = reopen(spec, dir.path(), 5, &small[0])?;
    (m.open_small, m.open_read_small) = (open, read);
    m.heap_per_small = heap as f64 / small.len() as f64;
    m.index_small = peer.index_bytes_per_notification();

    let sweep_at = timestamp_to_nanos(workload.sweep_time());
    m.sweep_expected = small.iter().filter(|r| r.expiration_nanos <= sweep_at).count() as u64;
    m.live_payload = small.iter().filter(|r| r.expiration_nanos > sweep_at).map(|r| r.body.len() as u64).sum();
    let written = written_bytes();
    let start = Instant::now();
    let outcome = peer.sweep(sweep_at)?;
    m.sweep = start.elapsed();
    m.sweep_written = written_bytes().saturating_sub(written);
    m.sweep_removed = outcome.removed;
    m.sweep_rewritten = outcome.bytes_rewritten;
    (m.disk_after_apparent, m.disk_after_allocated) = disk_bytes(dir.path())?;
    drop(peer);
    drop(dir);

    if large_count > 0 {
        let dir = tempfile::tempdir()?;
        let peer = (spec.open)(dir.path(), Mode::Buffered)?;
        for from in (0..large_count).step_by(100_000) {
            let chunk = workload.records(from..(from + 100_000).min(large_count));
            let start = Instant::now();
            peer.load(&chunk)?;
            m.load_large += start.elapsed();
        }
        drop(peer);
        let (open, read, heap, peer) = reopen(spec, dir.path(), 3, &small[0])?;
        m.index_large = peer.index_bytes_per_notification();
        m.open_large = Some(open);
        m.open_read_large = Some(read);
        m.heap_per_large = Some(heap as f64 / large_count as f64);
    }
    eprintln!("report: {} measured", spec.name);
    Ok(m)
}

/// Whether `engine` is loaded with the large record count to time its open.
///
/// `NOTIFEED_BENCH_LARGE`: `all`, `none`, or engine names separated by commas. By default the
/// engines whose open replays or scans their data and that load 1M records in seconds: the raw
/// floor, notifeed's log engine, and fjall (which replays its journal). Loading 1M records into
/// SQLite, redb, sled or notifeed's sled engine takes one to three minutes each here, which
/// would break the 10-minute budget of `cargo bench`; SQLite and redb open in constant time
/// anyway (see their 100k open).
fn measures_large(engine: &str) -> bool {
    match std::env::var("NOTIFEED_BENCH_LARGE").as_deref() {
        Ok("all") => true,
        Ok("none") => false,
        Ok(list) => list.split(',').any(|name| name.trim() == engine),
        Err(_) => matches!(engine, "raw-floor" | "notifeed-log" | "notifeed-log-snapshot" | "fjall"),
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

/// The timed groups of `benches/feeds.rs`, and what one iteration is.
const GROUPS: [(&str, &str); 5] = [
    ("append_buffered", "buffered appends/s"),
    ("append_durable_1", "durable appends/s, 1 writer"),
    ("append_durable_16", "durable appends/s, 16 writers"),
    ("newest_20", "newest 20 of a feed, pages/s"),
    ("by_app_id", "lookup by app id, ops/s"),
];

/// Criterion's median time per iteration, in nanoseconds, and when it was written.
fn criterion_median(group: &str, engine: &str) -> Option<(f64, SystemTime)> {
    let path = target_dir().join("criterion").join(group).join(engine).join("new").join("estimates.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let median = json.get("median")?.get("point_estimate")?.as_f64()?;
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    Some((median, written))
}

fn rate(ns: f64) -> String {
    let per_second = 1e9 / ns;
    if per_second >= 1e6 {
        format!("{:.2}M", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1}k", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Heap bytes per notification; SQLite allocates with C `malloc`, which the Rust allocator
/// does not see.
fn heap(bytes: f64) -> String {
    if bytes < 0.5 { "not seen (C heap)".into() } else { format!("{bytes:.0} B") }
}

/// `text`, or "n/a" for an engine that keeps nothing in its directory (Redis).
fn on_disk(m: &Measured, text: String) -> String {
    if m.disk_allocated == 0 { "n/a (not local files)".into() } else { text }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(out: &mut String, label: &str, cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = cells.into_iter().collect();
    let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
}

fn header(out: &mut String, first: &str, names: &[&str]) {
    row(out, first, names.iter().map(|n| (*n).to_owned()));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
}

fn render(measured: &[Measured], small: u64, large: u64) -> String {
    let names: Vec<&str> = measured.iter().map(|m| m.name).collect();
    let mut out = String::new();

    // Timings from criterion.
    let timed: Vec<Vec<Option<f64>>> = GROUPS
        .iter()
        .map(|(group, _)| names.iter().map(|n| criterion_median(group, n).map(|(ns, _)| ns)).collect())
        .collect();
    let stamps: Vec<SystemTime> = GROUPS
        .iter()
        .flat_map(|(group, _)| names.iter().filter_map(|n| criterion_median(group, n).map(|(_, t)| t)))
        .collect();
    let age = |t: &SystemTime| SystemTime::now().duration_since(*t).map(|d| d.as_secs() / 60).unwrap_or(0);
    let _ = writeln!(
        out,
        "### Timed (criterion medians, `benches/feeds.rs`; written {}..{} minutes before this report)\n",
        stamps.iter().map(age).min().unwrap_or(0),
        stamps.iter().map(age).max().unwrap_or(0),
    );
    header(&mut out, "", &names);
    for ((_, label), medians) in GROUPS.iter().zip(&timed) {
        row(&mut out, label, medians.iter().map(|m| m.map(rate).unwrap_or_else(|| "–".into())));
    }
    // The decode floor: what each read above spends at least, whatever the engine.
    let floor = |read: &str| criterion_median("decode_floor", read).map(|(ns, _)| ns);
    if let (Some(page), Some(one)) = (floor("newest_20"), floor("by_app_id")) {
        let _ = writeln!(
            out,
            "\nDecoding alone (`codec::decode_notification` from memory, which every engine above \
             runs on each record it returns): 20 records {:.1} µs ({} pages/s), 1 record {:.2} µs \
             ({}/s). Share of each engine's time spent in it, newest 20 / lookup: {}.",
            page / 1e3,
            rate(page),
            one / 1e3,
            rate(one),
            names
                .iter()
                .zip(timed[3].iter().zip(&timed[4]))
                .filter_map(|(n, (p, l))| Some(format!(
                    "{n} {:.0}% / {:.0}%",
                    100.0 * page / (*p)?,
                    100.0 * one / (*l)?
                )))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Sizes, sweeps and opens.
    let _ = writeln!(out, "\n### Disk, sweep, open (`benches/report.rs`, {small} records; open also at {large})\n");
    header(&mut out, "", &names);
    row(&mut out, "load (batched), s", measured.iter().map(|m| format!("{:.2}", m.load.as_secs_f64())));
    row(&mut out, "payload", measured.iter().map(|m| mib(m.payload)));
    row(&mut out, "disk (allocated), closed", measured.iter().map(|m| on_disk(m, mib(m.disk_allocated))));
    row(
        &mut out,
        "of which caches (index snapshot)",
        measured.iter().map(|m| on_disk(m, if m.cache_allocated == 0 { "–".into() } else { mib(m.cache_allocated) })),
    );
    row(
        &mut out,
        "disk / payload",
        measured.iter().map(|m| on_disk(m, format!("{:.2}×", m.disk_allocated as f64 / m.payload.max(1) as f64))),
    );
    row(&mut out, "sweep of half the data (with sync)", measured.iter().map(|m| ms(m.sweep)));
    row(
        &mut out,
        "sweep: removed / expected",
        measured.iter().map(|m| format!("{} / {}", m.sweep_removed, m.sweep_expected)),
    );
    row(&mut out, "sweep: bytes written (wchar)", measured.iter().map(|m| mib(m.sweep_written)));
    row(
        &mut out,
        "sweep: bytes rewritten (engine says)",
        measured.iter().map(|m| m.sweep_rewritten.map(mib).unwrap_or_else(|| "–".into())),
    );
    row(
        &mut out,
        "disk before → after sweep",
        measured.iter().map(|m| on_disk(m, format!("{} → {}", mib(m.disk_allocated), mib(m.disk_after_allocated)))),
    );
    row(
        &mut out,
        "disk after / live payload",
        measured
            .iter()
            .map(|m| on_disk(m, format!("{:.2}×", m.disk_after_allocated as f64 / m.live_payload.max(1) as f64))),
    );
    row(&mut out, &format!("open, {small}"), measured.iter().map(|m| ms(m.open_small)));
    row(&mut out, &format!("open + first read, {small}"), measured.iter().map(|m| ms(m.open_read_small)));
    row(
        &mut out,
        &format!("load (batched), {large}, s"),
        measured.iter().map(|m| match m.open_large {
            Some(_) => format!("{:.1}", m.load_large.as_secs_f64()),
            None => "–".into(),
        }),
    );
    row(
        &mut out,
        &format!("open, {large}"),
        measured.iter().map(|m| m.open_large.map(ms).unwrap_or_else(|| "–".into())),
    );
    row(
        &mut out,
        &format!("open + first read, {large}"),
        measured.iter().map(|m| m.open_read_large.map(ms).unwrap_or_else(|| "–".into())),
    );
    row(&mut out, &format!("heap after open / notification, {small}"), measured.iter().map(|m| heap(m.heap_per_small)));
    row(
        &mut out,
        &format!("heap after open / notification, {large}"),
        measured.iter().map(|m| m.heap_per_large.map(heap).unwrap_or_else(|| "–".into())),
    );

    let index = |v: Option<f64>| v.map(|b| format!("{b:.0} B")).unwrap_or_else(|| "–".into());
    row(
        &mut out,
        &format!("index / notification (engine's own count), {small}"),
        measured.iter().map(|m| index(m.index_small)),
    );
    row(
        &mut out,
        &format!("index / notification (engine's own count), {large}"),
        measured.iter().map(|m| index(m.index_large)),
    );

    // Ratios: each notifeed engine against each peer (> 1 means notifeed is faster).
    for (engine_at, engine) in names.iter().enumerate().filter(|(_, n)| n.starts_with("notifeed")) {
        let _ = writeln!(out, "\n### {engine}: ratio of throughput against each engine (> 1: {engine} is faster)\n");
        let others: Vec<&str> = names.iter().copied().filter(|n| n != engine).collect();
        header(&mut out, "", &others);
        for ((_, label), medians) in GROUPS.iter().zip(&timed) {
            let ours = medians[engine_at];
            let cells =
                names.iter().zip(medians).filter(|(n, _)| *n != engine).map(|(_, theirs)| match (ours, theirs) {
                    (Some(ours), Some(theirs)) => format!("{:.2}×", theirs / ours),
                    _ => "–".into(),
                });
            row(&mut out, label, cells);
        }
        let ours = &measured[engine_at];
        let cells = measured
            .iter()
            .filter(|m| m.name != *engine)
            .map(|m| format!("{:.2}×", m.sweep.as_secs_f64() / ours.sweep.as_secs_f64().max(1e-9)));
        row(&mut out, "sweep time", cells);
        let cells = measured
            .iter()
            .filter(|m| m.name != *engine)
            .map(|m| format!("{:.2}×", m.open_read_small.as_secs_f64() / ours.open_read_small.as_secs_f64().max(1e-9)));
        row(&mut out, &format!("open + first read, {small}"), cells);
    }

    out.push_str(&targets(measured, &names, &timed, small, large));
    out
}

/// The log engine's targets (issue 3), judged on this run.
fn targets(measured: &[Measured], names: &[&str], timed: &[Vec<Option<f64>>], small: u64, large: u64) -> String {
    let mut out = String::new();
    let Some(log) = names.iter().position(|n| *n == "notifeed-log") else {
        let _ = writeln!(out, "\n(notifeed-log is not in this build: its targets are not judged.)");
        return out;
    };
    let per_second = |group: usize, engine: &str| -> Option<f64> {
        let at = names.iter().position(|n| *n == engine)?;
        timed[group][at].map(|ns| 1e9 / ns)
    };
    let ours = |group: usize| timed[group][log].map(|ns| 1e9 / ns);
    let ratio = |group: usize, peer: &str| Some(ours(group)? / per_second(group, peer)?);
    let m = &measured[log];
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    let _ = writeln!(out, "\n### notifeed-log against the targets of issue 3\n");
    let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
    let mut line = |what: &str, got: String, ok: Option<bool>| {
        let _ = writeln!(out, "| {what} | {got} | {} |", verdict(ok));
    };
    let fmt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2}{unit}")).unwrap_or_else(|| "–".into());
    line("buffered appends ≥ 500k/s", fmt(ours(0), "/s"), ours(0).map(|v| v >= 500e3));
    line("buffered appends ≥ 4× fjall", fmt(ratio(0, "fjall"), "×"), ratio(0, "fjall").map(|v| v >= 4.0));
    line("buffered appends ≥ 0.5× raw floor", fmt(ratio(0, "raw-floor"), "×"), ratio(0, "raw-floor").map(|v| v >= 0.5));
    line(
        "durable appends, 1 writer ≥ 0.9× raw floor",
        fmt(ratio(1, "raw-floor"), "×"),
        ratio(1, "raw-floor").map(|v| v >= 0.9),
    );
    let group_commit = ours(2).zip(ours(1)).map(|(sixteen, one)| sixteen / one);
    // Beside it, what the least group commit gains on this disk in the same run, when run.
    let floor_group_commit =
        per_second(2, "raw-floor-gc").zip(per_second(1, "raw-floor-gc")).map(|(sixteen, one)| sixteen / one);
    let got = match floor_group_commit {
        Some(floor) => format!("{} (raw-floor-gc: {floor:.2}×)", fmt(group_commit, "×")),
        None => fmt(group_commit, "×"),
    };
    line("durable appends, 16 writers ≥ 8× 1 writer", got, group_commit.map(|v| v >= 8.0));
    line("newest 20 ≥ 2× redb", fmt(ratio(3, "redb"), "×"), ratio(3, "redb").map(|v| v >= 2.0));
    line("lookup by app id ≥ 2× redb", fmt(ratio(4, "redb"), "×"), ratio(4, "redb").map(|v| v >= 2.0));
    line("sweep of half the data < 0.1 s", ms(m.sweep), Some(m.sweep < Duration::from_millis(100)));
    line(
        "sweep rewrites zero bytes",
        m.sweep_rewritten.map(mib).unwrap_or_else(|| "–".into()),
        m.sweep_rewritten.map(|b| b == 0),
    );
    let after = m.disk_after_allocated as f64 / m.live_payload.max(1) as f64;
    line("disk after sweep ≤ 1.2× live data", format!("{after:.2}×"), Some(after <= 1.2));
    let total = m.disk_allocated as f64 / m.payload.max(1) as f64;
    line("disk ≤ 1.15× payload (closed, with every cache it keeps)", format!("{total:.2}×"), Some(total <= 1.15));
    if m.cache_allocated > 0 {
        let data = m.disk_allocated.saturating_sub(m.cache_allocated) as f64 / m.payload.max(1) as f64;
        line("the same without its caches (as while open)", format!("{data:.2}×"), Some(data <= 1.15));
    }
    line(
        &format!("open of {small} records < 100 ms (the target is for 100k)"),
        ms(m.open_small),
        Some(m.open_small < Duration::from_millis(100)),
    );
    line(
        &format!("open of {large} records < 1 s (the target is for 1M)"),
        m.open_large.map(ms).unwrap_or_else(|| "–".into()),
        m.open_large.map(|d| d < Duration::from_secs(1)),
    );
    let counted = m.index_large.or(m.index_small);
    line(
        "index ≤ 64 B / notification (engine's own count, at the largest size)",
        counted.map(|b| format!("{b:.0} B")).unwrap_or_else(|| "–".into()),
        counted.map(|b| b <= 64.0),
    );
    let heap = m.heap_per_large.unwrap_or(m.heap_per_small);
    line(
        "the same, as all heap held after open (index, buffers, change logs, caches)",
        format!("{heap:.0} B"),
        Some(heap <= 64.0),
    );
    out
}

fn main() {
    // `cargo bench -- <filter>` passes the filter and `--bench`: this report runs regardless.
    let workload = Workload::default();
    let (small, large) = (scaled(SMALL), scaled(LARGE));
    let records = workload.records(0..small);
    let measured: Vec<Measured> = peers::selected()
        .iter()
        .map(|spec| {
            let large = if measures_large(spec.name) { large } else { 0 };
            must(measure(spec, &records, large), spec.name)
        })
        .collect();
    let report = render(&measured, small, large);
    println!("{report}");
    let path = target_dir().join("notifeed-bench-report.md");
    if let Err(e) = std::fs::write(&path, &report) {
        eprintln!("report: could not write {}: {e}", path.display());
    }
}
