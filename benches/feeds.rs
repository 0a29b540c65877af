//! Timed benches: every engine in [`peers::selected`] on the same workload, one commit per
//! operation. See `benches/README.md` for the command and the results.
//!
//! Groups: `append_buffered`, `append_durable_1`, `append_durable_16`, `newest_20`,
//! `by_app_id`. Appends start from an empty store; reads run on a store loaded with 100k
//! records (scaled by `NOTIFEED_BENCH_SCALE`).

// Each bench target uses its own part of the shared modules.
#[allow(dead_code)]
mod peers;
#[cfg(feature = "redis")]
#[path = "../tests/redis_cluster/mod.rs"]
mod redis_cluster;
#[allow(dead_code)]
mod workload;

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tempfile::TempDir;

use workload::{Mode, Peer, PeerSpec, Workload, must, scaled, scaled_time};

/// Writers in the concurrent durable append bench.
const WRITERS: usize = 16;
/// Records loaded before the read benches.
const READ_RECORDS: u64 = 100_000;

/// Writes back every file system's dirty pages (`sync(1)`) before a measurement, so that the
/// writeback of what an earlier engine or group wrote (buffered appends leave gigabytes) runs
/// before the next engine is timed, not during it, whichever engine comes next. A failure to
/// run `sync` only loses that fairness.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn open(spec: &PeerSpec, mode: Mode) -> (TempDir, Box<dyn Peer>) {
    let dir = must(tempfile::tempdir().map_err(Into::into), "temp dir");
    let peer = must((spec.open)(dir.path(), mode), spec.name);
    (dir, peer)
}

fn append(c: &mut Criterion, group_name: &str, mode: Mode) {
    let workload = Workload::default();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for spec in peers::selected() {
        let (_dir, peer) = open(&spec, mode);
        let mut next = 0;
        settle();
        group.bench_function(spec.name, |b| {
            b.iter_batched(
                || {
                    next += 1;
                    workload.record(next - 1)
                },
                |record| must(peer.append(record), spec.name),
                BatchSize::SmallInput,
            )
        });
        report_batches(group_name, spec.name, peer.as_ref());
    }
    group.finish();
}

fn append_buffered(c: &mut Criterion) {
    append(c, "append_buffered", Mode::Buffered);
}

fn append_durable_1(c: &mut Criterion) {
    append(c, "append_durable_1", Mode::Durable);
}

/// 16 threads append durably at once; the time per append is the wall time over all appends.
fn append_durable_16(c: &mut Criterion) {
    let workload = Workload::default();
    let mut group = c.benchmark_group("append_durable_16");
    group.throughput(Throughput::Elements(1));
    for spec in peers::selected() {
        let (_dir, peer) = open(&spec, Mode::Durable);
        let mut next = 0;
        settle();
        group.bench_function(spec.name, |b| {
            b.iter_custom(|iters| {
                let mut shares: Vec<Vec<workload::Record>> = vec![Vec::new(); WRITERS];
                for i in 0..iters {
                    shares[(i % WRITERS as u64) as usize].push(workload.record(next + i));
                }
                next += iters;
                let peer = peer.as_ref();
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for share in shares {
                        scope.spawn(move || {
                            for record in share {
                                must(peer.append(record), spec.name);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        report_batches("append_durable_16", spec.name, peer.as_ref());
    }
    group.finish();
}

/// Prints the mean group commit of an engine that counts it (over every append of the group,
/// warm-up included): what the durable rows' throughput rests on.
fn report_batches(group: &str, engine: &str, peer: &dyn Peer) {
    if let Some(mean) = peer.mean_commit_batch().filter(|m| *m > 0.0) {
        println!("{group}/{engine}: {mean:.2} records per group commit");
    }
}

/// Loads each engine in turn with the same records, times the two reads on it, and drops it
/// before loading the next: an engine's background work (a peer's compaction or flusher
/// threads) then runs only during its own turn, never during another's on the two cores.
fn reads(c: &mut Criterion) {
    let workload = Workload::default();
    let records = workload.records(0..scaled(READ_RECORDS));
    let now = notifeed::clock::timestamp_to_nanos(workload.start());
    for spec in peers::selected() {
        let (_dir, peer) = open(&spec, Mode::Buffered);
        must(peer.load(&records), spec.name);

        let mut group = c.benchmark_group("newest_20");
        group.throughput(Throughput::Elements(1));
        let mut rng = ChaCha8Rng::seed_from_u64(workload::SEED);
        settle();
        group.bench_function(spec.name, |b| {
            b.iter_batched(
                // A feed holding at least one record, chosen in proportion to its size.
                || records[rng.random_range(0..records.len())].feed,
                |feed| {
                    let page = must(peer.newest(feed, 20, now), spec.name);
                    assert!(!page.is_empty(), "{}: feed {feed} is empty", spec.name);
                    page
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();

        let mut group = c.benchmark_group("by_app_id");
        group.throughput(Throughput::Elements(1));
        let mut rng = ChaCha8Rng::seed_from_u64(workload::SEED);
        settle();
        group.bench_function(spec.name, |b| {
            b.iter_batched(
                || &records[rng.random_range(0..records.len())],
                |record| {
                    let found = must(peer.by_app_id(record.feed, &record.app_id, now), spec.name);
                    assert!(found.is_some(), "{}: {} not found", spec.name, record.app_id);
                    found
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }

    // What every engine here does per notification it returns, timed alone: decoding the
    // encoded record from memory (`notifeed::codec::decode_notification`), with nothing to
    // find or read. A read can only be as much faster than a peer as the peer's time exceeds
    // this.
    let mut group = c.benchmark_group("decode_floor");
    group.throughput(Throughput::Elements(1));
    for (name, count) in [("newest_20", 20), ("by_app_id", 1)] {
        let mut rng = ChaCha8Rng::seed_from_u64(workload::SEED);
        settle();
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let first = rng.random_range(0..records.len() - count);
                    &records[first..first + count]
                },
                |chosen| {
                    chosen
                        .iter()
                        .map(|r| must(notifeed::codec::decode_notification(&r.body).map_err(Into::into), "decode"))
                        .collect::<Vec<_>>()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        // 20 samples of 3 s: on 2 shared cores, 10 samples of 2 s gave the log engine and its
        // snapshot variant, the same append code, medians 1.7× apart in one run (the run of
        // 2026-12-01 13:38, benches/README.md).
        .sample_size(20)
        .warm_up_time(scaled_time(Duration::from_secs(1)))
        .measurement_time(scaled_time(Duration::from_secs(3)))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = append_buffered, append_durable_1, append_durable_16, reads
}
criterion_main!(benches);
