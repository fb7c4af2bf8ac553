//! Bytes and packets each node process sends, counted by nftables on its
//! listening ports (IP, UDP and QUIC headers included). Shared by the
//! benchmarks; needs root and `nft`, and `setup` says `None` without them.
#![allow(dead_code)]

use cloudy_node::process::NodeProcess;
use std::process::Stdio;

fn ports(n: &NodeProcess) -> Vec<(String, u16)> {
    n.listen
        .iter()
        .filter_map(|a| {
            let parts: Vec<&str> = a.split('/').collect();
            let i = parts.iter().position(|p| *p == "udp" || *p == "tcp")?;
            Some((parts[i].to_string(), parts.get(i + 1)?.parse().ok()?))
        })
        .collect()
}

fn nft(args: &str) -> bool {
    std::process::Command::new("nft")
        .args(args.split_whitespace())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Counters of bytes sent from each node's ports, or `None` without nft.
pub(crate) struct Wire {
    table: &'static str,
    ports: Vec<Vec<(String, u16)>>,
}

impl Wire {
    pub(crate) fn setup(table: &'static str, nodes: &[NodeProcess]) -> Option<Wire> {
        let _ = nft(&format!("delete table inet {table}"));
        if !nft(&format!("add table inet {table}")) {
            return None;
        }
        nft(&format!("add chain inet {table} out {{ type filter hook output priority 0 ; }}"));
        let ports: Vec<Vec<(String, u16)>> = nodes.iter().map(ports).collect();
        for p in ports.iter().flatten() {
            nft(&format!("add rule inet {table} out {} sport {} counter", p.0, p.1));
        }
        // Small and large datagrams apart (all nodes together): control
        // and acknowledgements against data.
        let udp: Vec<String> =
            ports.iter().flatten().filter(|p| p.0 == "udp").map(|p| p.1.to_string()).collect();
        if !udp.is_empty() {
            let set = udp.join(",");
            nft(&format!("add rule inet {table} out udp sport {{ {set} }} meta length < 300 counter comment \"small\""));
            nft(&format!("add rule inet {table} out udp sport {{ {set} }} meta length >= 300 counter comment \"large\""));
        }
        // libp2p over TCP, both directions (a dialer sends from a port of
        // its own): streams should all run over QUIC.
        let tcp: Vec<String> =
            ports.iter().flatten().filter(|p| p.0 == "tcp").map(|p| p.1.to_string()).collect();
        if !tcp.is_empty() {
            let set = tcp.join(",");
            nft(&format!(
                "add rule inet {table} out tcp sport {{ {set} }} counter comment \"tcp\""
            ));
            nft(&format!(
                "add rule inet {table} out tcp dport {{ {set} }} counter comment \"tcp-dialer\""
            ));
        }
        Some(Wire { table, ports })
    }

    /// Bytes sent so far by each node.
    pub(crate) fn read(&self) -> Vec<u64> {
        self.read_field("bytes")
    }

    /// `(packets, bytes)` of small and of large datagrams, and of libp2p
    /// over TCP from the listening and from the dialing side (whose port is
    /// not a node's, so the per-node counters miss it), all nodes together.
    pub(crate) fn sizes(&self) -> [(u64, u64); 4] {
        let out = std::process::Command::new("nft")
            .args(["list", "chain", "inet", self.table, "out"])
            .output()
            .expect("nft");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut r = [(0, 0); 4];
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let at = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let slot = if line.contains("\"small\"") {
                0
            } else if line.contains("\"large\"") {
                1
            } else if line.contains("\"tcp\"") {
                2
            } else if line.contains("\"tcp-dialer\"") {
                3
            } else {
                continue;
            };
            r[slot].0 += at("packets");
            r[slot].1 += at("bytes");
        }
        r
    }

    /// Bytes sent so far by all nodes.
    pub(crate) fn total(&self) -> u64 {
        self.read().iter().sum::<u64>() + self.sizes()[3].1
    }

    /// Packets sent so far by each node.
    pub(crate) fn packets(&self) -> Vec<u64> {
        self.read_field("packets")
    }

    fn read_field(&self, field: &str) -> Vec<u64> {
        let out = std::process::Command::new("nft")
            .args(["list", "chain", "inet", self.table, "out"])
            .output()
            .expect("nft");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut by_port = std::collections::HashMap::new();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let (Some(i), Some(b)) =
                (w.iter().position(|x| *x == "sport"), w.iter().position(|x| *x == field))
            {
                let key = (w[i - 1].to_string(), w[i + 1].parse::<u16>().unwrap_or(0));
                by_port.insert(key, w[b + 1].parse::<u64>().unwrap_or(0));
            }
        }
        self.ports
            .iter()
            .map(|ps| ps.iter().map(|p| by_port.get(p).copied().unwrap_or(0)).sum())
            .collect()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        nft(&format!("delete table inet {}", self.table));
    }
}
