//! `cloudy-sim`: the durability simulation of DESIGN/simulation.md.
//!
//! `cloudy-sim [--nodes N] [--seed S]` prints, for several encodings, with
//! and without automatic repair, over one simulated year of Guifi-like
//! churn: files lost, the share readable at a random moment, repairs, and
//! repair traffic per node per day.

use cloudy_interop_tests::sim::durability::{run, Setup};

fn main() {
    let mut nodes = 1000;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--nodes", Some(v)) => nodes = v as usize,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: cloudy-sim [--nodes N] [--seed S]");
                std::process::exit(2);
            }
        }
    }
    let started = std::time::Instant::now();
    println!(
        "durability over one simulated year, {nodes} nodes, one 10 MiB file per node, seed {seed}"
    );
    println!("| encoding | upkeep | files lost | readable at a random hour | repairs | repair traffic per node per day |");
    println!("|---|---|---|---|---|---|");
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
        }
    }
    println!("run time: {:.1} s", started.elapsed().as_secs_f64());
}
