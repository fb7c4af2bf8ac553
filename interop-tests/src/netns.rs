//! A community-network testbed on one machine: each host is a Linux
//! network namespace with one interface, `eth0`, joined to a bridge in a
//! switch namespace by a veth pair. Every link is shaped both ways with
//! `tc tbf` (bandwidth) and loses packets at random on the way in with an
//! nftables `numgen random` rule (this kernel has no netem). Partitions are
//! nftables drop rules between two groups of hosts.
//!
//! Needs root (CI runs as root) and the `ip`, `tc` and `nft` commands;
//! [`Testbed::new`] says why when it cannot build one, and tests then skip.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One host of a testbed.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address on the community's network.
    pub ip: Ipv4Addr,
}

/// What every link is like.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Bandwidth in each direction, kbit/s.
    pub kbit: u32,
    /// Packets lost on the way into each host, per thousand.
    pub loss_per_mille: u32,
}

impl Link {
    /// No shaping and no loss.
    pub const FAST: Link = Link { kbit: 0, loss_per_mille: 0 };
}

/// Hosts in namespaces on one switch; deleted on drop.
#[derive(Debug)]
pub struct Testbed {
    /// The hosts, `10.99.0.1` onwards.
    pub hosts: Vec<Host>,
    switch: String,
}

/// Why the testbed cannot be built or changed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NetnsError {
    /// A tool could not be run.
    #[error("{program}: {source}")]
    Run {
        /// The tool.
        program: String,
        /// What the system said.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A tool the testbed needs is not installed.
    #[error("{tool} is missing ({source}); install iproute2 and nftables")]
    Missing {
        /// The tool.
        tool: &'static str,
        /// Why running it failed.
        #[source]
        source: Box<NetnsError>,
    },
}

/// Runs `program args`, feeding `input` on stdin; `Err` says what failed.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<(), NetnsError> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetnsError::Run { program: program.into(), source: e.into() })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NetnsError::Run { program: program.into(), source: e.into() })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetnsError::Run { program: program.into(), source: e.into() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Failed {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Deletes namespaces left by testbeds of processes that no longer run
/// (a test binary killed before its drop).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("cloudy")
            .and_then(|r| r.split('x').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], None);
        }
    }
}

impl Testbed {
    /// Builds `n` hosts on links like `link`. `Err` says why this machine
    /// cannot (not root, no `ip`, no namespaces…).
    pub fn new(n: usize, link: Link) -> Result<Testbed, NetnsError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale();
        let prefix =
            format!("cloudy{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let switch = format!("{prefix}sw");
        run("ip", &["netns", "add", &switch], None)?;
        let mut bed = Testbed { hosts: Vec::new(), switch: switch.clone() };
        run("ip", &["-n", &switch, "link", "add", "br0", "type", "bridge"], None)?;
        run("ip", &["-n", &switch, "link", "set", "br0", "up"], None)?;
        for i in 0..n {
            let ns = format!("{prefix}h{i}");
            run("ip", &["netns", "add", &ns], None)?;
            let ip = Ipv4Addr::new(10, 99, 0, i as u8 + 1);
            bed.hosts.push(Host { netns: ns.clone(), ip });
            let port = format!("p{i}");
            run("ip", &["-n", &ns, "link", "set", "lo", "up"], None)?;
            run(
                "ip",
                &[
                    "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                    "netns", &switch,
                ],
                None,
            )?;
            run("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"], None)?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"], None)?;
            run("ip", &["-n", &switch, "link", "set", &port, "master", "br0", "up"], None)?;
        }
        bed.set_link(link)?;
        Ok(bed)
    }

    /// Makes every link like `link`: a token bucket of its rate on both
    /// ends' way out, with a queue of at most 200 ms (none for rate 0),
    /// and its loss on the way into each host.
    pub fn set_link(&self, link: Link) -> Result<(), NetnsError> {
        let rate = format!("{}kbit", link.kbit);
        for (i, h) in self.hosts.iter().enumerate() {
            let port = format!("p{i}");
            for (ns, dev) in [(h.netns.as_str(), "eth0"), (self.switch.as_str(), port.as_str())] {
                if link.kbit == 0 {
                    let _ = run("tc", &["-n", ns, "qdisc", "del", "dev", dev, "root"], None);
                } else {
                    let tbf = [
                        "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate,
                        "burst", "16k", "latency", "200ms",
                    ];
                    run("tc", &tbf, None)?;
                }
            }
            let _ = run(
                "ip",
                &["netns", "exec", &h.netns, "nft", "delete", "table", "inet", "loss"],
                None,
            );
            if link.loss_per_mille > 0 {
                let rules = format!(
                    "table inet loss {{\n chain in {{\n type filter hook input priority 0;\n numgen random mod 1000 < {} drop\n }}\n}}\n",
                    link.loss_per_mille
                );
                run("ip", &["netns", "exec", &h.netns, "nft", "-f", "-"], Some(&rules))?;
            }
        }
        Ok(())
    }

    /// Cuts every host in `a` off from every host in `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) -> Result<(), NetnsError> {
        for (side, other) in [(a, b), (b, a)] {
            let ips: Vec<String> = other.iter().map(|j| self.hosts[*j].ip.to_string()).collect();
            let set = ips.join(", ");
            let rules = format!(
                "table inet partition {{\n chain in {{\n type filter hook input priority -10;\n ip saddr {{ {set} }} drop\n }}\n \
                 chain out {{\n type filter hook output priority -10;\n ip daddr {{ {set} }} drop\n }}\n}}\n"
            );
            for i in side {
                run(
                    "ip",
                    &["netns", "exec", &self.hosts[*i].netns, "nft", "-f", "-"],
                    Some(&rules),
                )?;
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<(), NetnsError> {
        for h in &self.hosts {
            let _ = run(
                "ip",
                &["netns", "exec", &h.netns, "nft", "delete", "table", "inet", "partition"],
                None,
            );
        }
        Ok(())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = run("ip", &["netns", "del", &h.netns], None);
        }
        let _ = run("ip", &["netns", "del", &self.switch], None);
    }
}

/// Whether this machine can make network namespaces: `Err` says why not.
/// Asked once per test process.
pub fn available() -> Result<(), NetnsError> {
    static ANSWER: std::sync::OnceLock<Result<(), NetnsError>> = std::sync::OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let probe = format!("cloudy{}probe", std::process::id());
            run("ip", &["netns", "add", &probe], None)?;
            let _ = run("ip", &["netns", "del", &probe], None);
            for tool in ["tc", "nft"] {
                run(tool, &["-V"], None)
                    .map_err(|e| NetnsError::Missing { tool, source: Box::new(e) })?;
            }
            Ok(())
        })
        .clone()
}

/// A testbed, or `None` after printing a `SKIPPED` line (counted apart by
/// `.ci/run`): only when not running as root, where namespaces cannot be
/// made. As root (CI runs as root) a machine that cannot make them, or any
/// failure building the testbed, fails the test.
pub fn testbed_or_skip(test: &str, n: usize, link: Link) -> Option<Testbed> {
    if let Err(why) = available() {
        if rustix::process::geteuid().is_root() {
            panic!("{test}: running as root but this host cannot build network namespaces: {why}");
        }
        use std::io::Write;
        // Past the harness's output capture, so that the skip shows in the log.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: this host cannot build network namespaces: {why}"
        );
        return None;
    }
    Some(Testbed::new(n, link).unwrap_or_else(|e| panic!("building the testbed: {e}")))
}
