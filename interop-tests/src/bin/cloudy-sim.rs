//! `cloudy-sim`: the durability simulation of DESIGN/simulation.md.
//!
//! `cloudy-sim [--nodes N] [--seed S] [--plot DIR]` prints, for several
//! encodings, with and without automatic repair, over one simulated year
//! of Guifi-like churn: files lost, the share readable at a random moment,
//! repairs, and repair traffic per node per day. With `--plot DIR` it also
//! draws, as PNG, the files lost and the share readable day by day.

use cloudy_interop_tests::sim::durability::{run, Setup};
use cloudy_interop_tests::sim::plot::{lines, Axes, Series};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: cloudy-sim [--nodes N] [--seed S] [--plot DIR]");
    std::process::exit(2);
}

fn main() {
    let mut nodes = 1000;
    let mut seed = 1;
    let mut plot: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
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
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let charts = [
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
    ];
    for (file, title, y, legend_low, series) in charts {
        let path = dir.join(file);
        match lines(&path, &title, Axes { x: "day", y, legend_low }, series) {
            Ok(()) => println!("drew {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
