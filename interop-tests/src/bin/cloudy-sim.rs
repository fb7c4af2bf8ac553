//! `cloudy-sim`: the simulations of DESIGN/simulation.md.
//!
//! `cloudy-sim [--nodes N] [--seed S] [--plot DIR]`: durability. Prints, for
//! several encodings, with and without automatic repair, over one simulated
//! year of Guifi-like churn: files lost, the share readable at a random
//! moment, repairs, and repair traffic per node per day. With `--plot DIR`
//! it also draws, as PNG, the files lost and the share readable day by day.
//!
//! `cloudy-sim membership [--nodes N,N,...] [--seed S] [--observers O]
//! [--idle SECS] [--churn SECS] [--plot DIR]`: membership and failure
//! detection, per community size: a newcomer known to all, an
//! announcement seen by all, a kill -9 seen failed by all, false failures,
//! and idle traffic and CPU per node; with `--churn`, then members going
//! down and coming back as Guifi's do.

use cloudy_interop_tests::sim::durability::{run, Setup};
use cloudy_interop_tests::sim::membership;
use cloudy_interop_tests::sim::plot::{lines, Axes, Series};
use std::path::{Path, PathBuf};

fn usage() -> ! {
    eprintln!("usage: cloudy-sim [--nodes N] [--seed S] [--plot DIR]");
    eprintln!(
        "       cloudy-sim membership [--nodes N,N,...] [--seed S] [--observers O] [--idle SECS] [--churn SECS] [--timeouts PROBE,SUSPICION] [--broadcast gossipsub|tree] [--plot DIR]"
    );
    std::process::exit(2);
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2} s"))
}

/// One chart: file name, title, y axis, legend at the bottom, lines.
type Chart<'a> = (&'a str, String, &'a str, bool, &'a [Series]);

fn draw_charts(dir: &Path, x: &str, charts: &[Chart<'_>]) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    for (file, title, y, legend_low, series) in charts {
        let path = dir.join(file);
        match lines(&path, title, Axes { x, y, legend_low: *legend_low }, series) {
            Ok(()) => println!("drew {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// One community size's times: newcomer, announcement, detection.
struct Times {
    nodes: f64,
    join: Option<f64>,
    announce: Option<f64>,
    detect: Option<f64>,
}

fn churn_row(n: usize, c: &membership::Churned) -> String {
    let pair =
        |v: Option<(f64, f64)>| v.map_or("n/a".into(), |(m, x)| format!("{m:.2} / {x:.2} s"));
    format!(
        "| {n} | {} ({} not seen by all) | {} | {} ({} not seen by all) | {} | {:.0} / {:.0} / {:.0} / {:.0} | {:.0} | {} | {:.2} | {} |",
        c.failures,
        c.undetected,
        pair(c.detect),
        c.returns,
        c.unseen,
        pair(c.rejoin),
        c.bytes[0],
        c.bytes[1],
        c.bytes[2],
        c.bytes.iter().sum::<f64>(),
        c.table_sync,
        micros(&c.cpu),
        c.taken,
        if c.taken > 0.0 { format!("{:.1} µs", 1e6 * c.cpu[0] / c.taken) } else { "n/a".into() }
    )
}

/// CPU shares of a core by kind as µs per second: gossip / detector /
/// anti-entropy / total.
fn micros(cpu: &[f64; 3]) -> String {
    let [g, d, a] = cpu.map(|c| 1e6 * c);
    format!("{g:.1} / {d:.1} / {a:.1} / {:.1} µs/s", g + d + a)
}

fn membership_main(mut args: impl Iterator<Item = String>) {
    let mut sizes = vec![100, 200, 1000, 2000, 5000, 10_000];
    let mut seed = 1;
    let mut observers: Option<usize> = None;
    let mut idle: Option<u64> = None;
    let mut churn = 0;
    let mut plot: Option<PathBuf> = None;
    let mut timeouts = None;
    let mut tree = true;
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { usage() };
        match flag.as_str() {
            "--timeouts" => {
                let secs = |v: &str| v.parse().map(std::time::Duration::from_secs_f64).ok();
                timeouts = value
                    .split_once(',')
                    .and_then(|(p, s)| secs(p).zip(secs(s)))
                    .or_else(|| usage());
            }
            "--nodes" => {
                sizes = value.split(',').map(|v| v.parse().unwrap_or_else(|_| usage())).collect()
            }
            "--seed" => seed = value.parse().unwrap_or_else(|_| usage()),
            "--observers" => observers = Some(value.parse().unwrap_or_else(|_| usage())),
            "--idle" => idle = Some(value.parse().unwrap_or_else(|_| usage())),
            "--churn" => churn = value.parse().unwrap_or_else(|_| usage()),
            "--plot" => plot = Some(PathBuf::from(value)),
            "--broadcast" => {
                tree = match value.as_str() {
                    "tree" => true,
                    "gossipsub" => false,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    println!("membership and failure detection, simulated with the node's own code, seed {seed}");
    println!("| nodes | tables | newcomer known to all | announcement seen by all (hops) | kill -9 seen failed by all | false failures / suspicions | idle bytes/s per node: gossip / probes / anti-entropy / total | idle CPU per table: gossip / detector / anti-entropy / total | tables agree | run time |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut times: Vec<Times> = Vec::new();
    let mut traffic: Vec<(f64, f64)> = Vec::new();
    let mut churned: Vec<String> = Vec::new();
    let mut churn_traffic: Vec<(f64, f64)> = Vec::new();
    for &n in &sizes {
        let started = std::time::Instant::now();
        let mut setup = membership::Setup::community(n, seed);
        if observers.is_some() {
            setup.observers = observers.filter(|o| *o < n);
        }
        setup.idle_secs = idle.unwrap_or(setup.idle_secs);
        setup.churn_secs = churn;
        setup.timeouts = timeouts;
        setup.tree = tree;
        let o = membership::run(&setup);
        let total: f64 = o.idle_bytes.iter().sum();
        println!(
            "| {n} | {} | {} | {} ({}) | {} | {} / {} | {:.0} / {:.0} / {:.0} / {:.0} | {} | {} | {:.1} s |",
            o.observers,
            opt(o.join),
            opt(o.announce),
            o.announce_hops,
            opt(o.detect),
            o.false_failures,
            o.false_suspicions,
            o.idle_bytes[0],
            o.idle_bytes[1],
            o.idle_bytes[2],
            total,
            micros(&o.idle_cpu),
            if o.converged { "yes" } else { "no" },
            started.elapsed().as_secs_f64()
        );
        if let Some(c) = &o.churn {
            churned.push(churn_row(n, c));
            churn_traffic.push((n as f64, c.bytes.iter().sum::<f64>() / 1000.0));
        }
        traffic.push((n as f64, total / 1000.0));
        times.push(Times { nodes: n as f64, join: o.join, announce: o.announce, detect: o.detect });
    }
    if !churned.is_empty() {
        println!();
        println!(
            "then {churn} s of Guifi churn (members down and back as their availability says):"
        );
        println!("| nodes | departures | seen failed by all, mean / max | returns | seen back by all, mean / max | bytes/s per up node: gossip / probes / anti-entropy / total | anti-entropy bytes/s per table | CPU per table: gossip / detector / anti-entropy / total | messages taken per table per s | gossip CPU per message |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for row in &churned {
            println!("{row}");
        }
    }
    println!();
    println!("one table alone, warm (a node's own, with no other table in its process), idle:");
    println!("| members | CPU per idle second: tick, monitor targets, 2 probes answered, summary every sync interval |");
    println!("|---|---|");
    for &n in &sizes {
        let t = membership::idle_second(n, 20_000);
        println!("| {n} | {:.2} µs/s |", t.as_secs_f64() * 1e6);
    }
    let Some(dir) = plot else { return };
    let pick = |f: fn(&Times) -> Option<f64>| -> Vec<(f64, f64)> {
        times.iter().filter_map(|t| Some((t.nodes, f(t)?))).collect()
    };
    let time_series: Vec<Series> = vec![
        ("newcomer known to all".into(), pick(|t| t.join)),
        ("announcement seen by all".into(), pick(|t| t.announce)),
        ("kill -9 seen failed by all".into(), pick(|t| t.detect)),
    ];
    let mut traffic_series: Vec<Series> = vec![("idle".into(), traffic)];
    if !churn_traffic.is_empty() {
        traffic_series.push(("under Guifi churn".into(), churn_traffic));
    }
    draw_charts(
        &dir,
        "nodes",
        &[
            (
                "membership-times.png",
                "Membership times against community size (simulated)".into(),
                "seconds",
                false,
                &time_series,
            ),
            (
                "membership-traffic.png",
                "Membership bytes sent per node (simulated)".into(),
                "KB/s",
                true,
                &traffic_series,
            ),
        ],
    );
}

fn main() {
    let mut nodes = 1000;
    let mut seed = 1;
    let mut plot: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "membership") {
        args.next();
        return membership_main(args);
    }
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { usage() };
        match flag.as_str() {
            "--nodes" => nodes = value.parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value.parse().unwrap_or_else(|_| usage()),
            "--plot" => plot = Some(PathBuf::from(value)),
            _ => usage(),
        }
    }
    let started = std::time::Instant::now();
    println!(
        "durability over one simulated year, {nodes} nodes, one 10 MiB file per node, seed {seed}"
    );
    println!("| encoding | upkeep | files lost | readable at a random hour | repairs | repair traffic per node per day |");
    println!("|---|---|---|---|---|---|");
    let (mut lost, mut readable): (Vec<Series>, Vec<Series>) = (Vec::new(), Vec::new());
    for (k, n, happy, name) in
        [(3u8, 5u8, 4usize, "3-of-5 (default)"), (3, 10, 7, "3-of-10 (Tahoe)")]
    {
        for repair in [Some(0u8), Some(1), None] {
            let s = Setup { k, n, happy, repair, ..Setup::guifi(nodes, seed) };
            let o = run(&s);
            let upkeep = match repair {
                Some(t) => format!("hourly, tolerance {t}"),
                None => "none".into(),
            };
            println!(
                "| {name} | {upkeep} | {} of {} ({:.2} %) | {:.4} | {} | {:.2} MB |",
                o.lost,
                s.files,
                100.0 * o.lost as f64 / s.files as f64,
                o.readable,
                o.repairs,
                o.repair_bytes_per_node_day / 1e6
            );
            let label = format!("{name}, upkeep {upkeep}");
            let day = |i: usize| (i + 1) as f64;
            let pct = |l: usize| 100.0 * l as f64 / s.files as f64;
            lost.push((
                label.clone(),
                o.lost_by_day.iter().enumerate().map(|(i, l)| (day(i), pct(*l))).collect(),
            ));
            readable.push((
                label,
                o.readable_by_day.iter().enumerate().map(|(i, r)| (day(i), 100.0 * r)).collect(),
            ));
        }
    }
    println!("run time: {:.1} s", started.elapsed().as_secs_f64());
    let Some(dir) = plot else { return };
    draw_charts(
        &dir,
        "day",
        &[
            (
                "durability-lost.png",
                format!("Files lost over a year, {nodes} nodes (Guifi availability)"),
                "% of files lost",
                false,
                &lost,
            ),
            (
                "durability-readable.png",
                format!("Files readable, daily mean, {nodes} nodes"),
                "% of files readable",
                true,
                &readable,
            ),
        ],
    );
}
