#!/usr/bin/env bash
# Records which functions of the release binary an idle node runs, into
# cli/layout/idle-functions.txt (read by cli/build.rs at link time).
#
# Starts a community of 6 nodes on 127.0.0.1 and a 7th under valgrind's
# callgrind, then records two phases of the 7th:
#   1. idle for IDLE_SECS (default 120): probes, gossipsub heartbeats,
#      anti-entropy, pings, the memory trimmer;
#   2. members coming and going: a newcomer joins, a member is killed
#      with kill -9, the control API is asked for status and peers.
# The list holds phase 1's functions, most called first, then phase 2's
# others. Run it again when the code an idle node runs has changed much
# (the membership benchmark prints how much of the list the binary still
# has). Needs valgrind and python3; takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
idle=${IDLE_SECS:-120}
command -v valgrind >/dev/null || { echo "record.sh: needs valgrind (apt install valgrind)" >&2; exit 1; }
cargo build -q --release -p cloudy-cli
bin=$PWD/target/release/cloudy-p2p
dir=$(mktemp -d)
trap 'pkill -f -- "--home $dir/" || true; rm -rf "$dir"' EXIT

init() { "$bin" init --home "$dir/n$1" --port 0 --api 127.0.0.1:0 --no-mdns --loopback "${@:2}" >/dev/null; }
up() { (setsid "$bin" --home "$dir/n$1" up >"$dir/n$1.log" 2>&1 &); }
alive() { "$bin" --home "$dir/n$1" status 2>/dev/null | awk '/^members:/ { print $2 }'; }
wait_alive() { # node, count
    for _ in $(seq 600); do [ "$(alive "$1")" = "$2" ] && return 0; sleep 0.1; done
    echo "record.sh: node $1 did not see $2 members" >&2; exit 1
}

init 0
up 0
for _ in $(seq 100); do
    addr=$("$bin" --home "$dir/n0" status 2>/dev/null | awk '/quic-v1/ { print $1; exit }') && [ -n "$addr" ] && break
    sleep 0.1
done
for i in 1 2 3 4 5 6 7; do init "$i" --bootstrap "$addr"; done
for i in 1 2 3 4 5; do up "$i"; done
out=$dir/callgrind.out
(setsid valgrind --tool=callgrind --demangle=no --callgrind-out-file="$out" \
    "$bin" --home "$dir/n6" up >"$dir/n6.log" 2>&1 &)
wait_alive 6 6
pid=$(pgrep -f -- "callgrind.*--home $dir/n6 up")
# Past the start, the join and the memory trimmer's first round (20 s).
sleep 30
callgrind_control -z "$pid" >/dev/null
echo "recording ${idle} s of idle ..." >&2
sleep "$idle"
callgrind_control -d "$pid" >/dev/null
echo "recording members coming and going ..." >&2
up 7
wait_alive 6 7
pkill -9 -f -- "--home $dir/n5 up"
for _ in $(seq 300); do
    "$bin" --home "$dir/n6" status | grep -q " 1 failed" && break
    sleep 0.1
done
"$bin" --home "$dir/n6" peers >/dev/null
sleep 10
callgrind_control -d "$pid" >/dev/null
sleep 2
python3 - "$bin" "$out".1 "$out".2 >cli/layout/idle-functions.txt <<'EOF'
import re, subprocess, sys

def calls(path):
    """Function name -> calls received (or 1 for a thread's root)."""
    names, count, fn, cfn = {}, {}, None, None
    for line in open(path):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, i, name = m.groups()
            if name:
                names[i] = name
            if kind == "fn":
                fn = names[i]
                count.setdefault(fn, 1)
            else:
                cfn = names[i]
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m and cfn:
            count[cfn] = count.get(cfn, 0) + int(m.group(1))
    return count

size = {}
for line in subprocess.run(["nm", "-S", sys.argv[1]], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tTwW":
        size[f[3]] = int(f[1], 16)
idle, events = calls(sys.argv[2]), calls(sys.argv[3])
seen = set()
for label, phase in (("idle", idle), ("members coming and going", events)):
    n = b = 0
    for name, _ in sorted(phase.items(), key=lambda kv: (-kv[1], kv[0])):
        if name in size and name not in seen:
            seen.add(name)
            n, b = n + 1, b + size[name]
            print(name)
    print(f"{label}: {n} functions, {b / 1024:.0f} KiB of code", file=sys.stderr)
EOF
echo "cli/layout/idle-functions.txt: $(wc -l <cli/layout/idle-functions.txt) functions" >&2
