#!/usr/bin/env python3
"""Load harness: N SIPp callers streaming G.711 (PCMU) audio into tutti.

    scripts/load/run.py --calls N [--rooms R] [--hold S] [options]

Starts a fresh `tutti serve` on loopback (own data directory, ephemeral ports,
an RTP range of 2 ports per call plus a margin), creates R conferences over TCP
4011 (NEWCONF, no PIN, no member limit), and runs one SIPp (Debian package
sip-tester, 3.6 with RTPSTREAM) that places N calls at --rate calls per second,
spread round-robin over the rooms. Every caller offers PCMU only and streams a
looped mu-law file with `<exec rtp_stream=...>`: --talkers callers per room
stream speech (espeak-ng, or a 1 kHz tone without it), the others stream
background noise at about -64 dBFS, under tutti's noise gate (a phone on a
desk). When every caller is connected (tutti's `tutti_active_callers` gauge
reaches N; or, at the latest, --settle-max seconds after the ramp), a steady
window of --hold seconds is measured:

- tutti's CPU, percent of one core: utime+stime deltas of /proc/<pid>/stat
  (all threads), and the busiest single thread (/proc/<pid>/task/*/stat);
- tutti's RSS (VmRSS at the end of the window) and peak (VmHWM);
- RTP packets per second received and sent by tutti (see "RTP counting");
- datagrams the kernel dropped on tutti's sockets (receive buffer full: tutti
  reading too slowly);
- SIPp's CPU (whole process, and its main thread, which runs all SIP and the
  scheduler: a main thread near 100% means the load generator is saturated);
- the whole machine's busy CPU from /proc/stat (other work on the machine shows
  up as "machine minus tutti minus SIPp").

After the window the calls hang up by themselves (SIPp's -d pause, -m N), tutti
must drop back to 0 active callers, and is stopped with SIGTERM (it must exit
0). Calls failed come from SIPp's final statistics (-trace_stat) and its exit
code; tutti's log is scanned for WARN/ERROR lines and panics.

Several runs: --calls and --rooms take comma lists; a rooms entry "N/5" means
one room per five callers. Example (the docs/performance.md table):

    scripts/load/run.py --calls 10,100,400,1000 --rooms 1,N/5 --hold 25

Mixer punctuality: every run reports how late the rooms woke for their 20 ms
ticks during the window (tutti's tutti_mixer_tick_lateness_seconds histogram
in /metrics, before and after: p50/p99 as bucket bounds, ticks skipped) and
the worst lateness since the start.

Conductor event fan-out: --subscribers K opens K XMLSocket subscribers
(--events-listen) on the first room's call and, with --conductor-rate R,
POSTs R updateCaller mute toggles a second over /_conference during the
window, round-robin over the room's callers. Each toggle's CALLER MUTE event
is timed at every subscriber from just before its command was sent: the
event latency (p50/p99/max over all subscribers) and the events missing.
--subscribers 0 with the same --conductor-rate is the baseline (the same
commands, nobody watching):

    scripts/load/run.py --calls 200 --hold 30 --conductor-rate 10 --subscribers 0
    scripts/load/run.py --calls 200 --hold 30 --conductor-rate 10 --subscribers 50

HTTP under load: --http-bench runs wrk (Debian package wrk) during the window
against /_access: getConference (GET) for the first half, addPerson (POST) for
the second, --http-connections clients at once (default 50), and reports their
requests per second and latency percentiles beside the media figures:

    scripts/load/run.py --calls 100 --hold 30 --http-bench

Listening callers: --callers tutti-callers runs the repository's own caller
program (src/bin/tutti-callers) instead of SIPp: the same calls and rooms, but
it reads what tutti sends and reports, per run, losses, jitter, lateness of
every packet against the 20 ms grid, the delay of a click through the server
and a Goertzel check that every caller hears its room's talkers and not itself
(scripts/load/README.md). Talkers send tones, not speech; at most 5 per room.

RTP counting (with SIPp). tutti has no RTP counters in /metrics, so packets are counted by
the kernel. SIPp 3.6 sends every call's stream from its one media socket (-mp)
and never reads that socket (its RTPSTREAM code has no receive path without
-rtp_echo, which would echo tutti's audio back and double the load). tutti
latches to where media comes from, so it sends every caller's mix to that one
socket, whose receive queue fills within a second and then drops everything.
Over the window:

- RTP out (sent by tutti) = datagrams the kernel dropped on SIPp's media socket
  (the "drops" column of /proc/net/udp for that port), i.e. everything tutti
  sent there once the queue was full;
- RTP in (received by tutti) = /proc/net/snmp Udp InDatagrams, which the kernel
  counts when an application *reads* a datagram: in the private namespace only
  tutti reads anything during the window (SIPp reads no RTP, and no SIP
  arrives between the ramp and the hang-up);
- SIPp's RTP sent = OutDatagrams minus tutti's RTP (above) minus tutti's RTCP
  (sent to SIPp's unbound RTCP port, counted as NoPorts, about one packet per
  5 s per call);
- dropped at tutti = "drops" of the sockets in tutti's RTP port range: datagrams
  that arrived while the socket's receive buffer was full (tutti reading too
  slowly).

Expected in steady state: 50 packets/s per call each way (20 ms ptime).

Isolation: as root the script re-executes itself in a new network namespace
(`unshare --net`, loopback brought up), so nothing else on the machine shares
the ports or the /proc/net counters, and nothing leaves loopback. --no-netns
runs on the host's loopback instead: then RTP in and SIPp's RTP are not
reported (the host-wide snmp counters include everybody's traffic); RTP out
and the drops, per socket, stay exact.

File descriptors: tutti holds 2 UDP sockets per call (RTP, RTCP), so 1000
calls need over 2000 descriptors; the script raises RLIMIT_NOFILE (soft to the
hard limit, and as root the hard limit to at least 65536) before starting
tutti and SIPp, which inherit it.

Everything is bounded: SIPp has -m N, -d, -timeout; every wait has a deadline;
tutti and SIPp die with the script (PR_SET_PDEATHSIG) and are killed in a
finally block on any error. Nothing is built unless --build is given; the
binary (--binary, default target/release/tutti) is copied into the work
directory first, so a concurrent rebuild cannot change it between runs.

Output: a report per run, a Markdown table of all runs at the end, and a JSON
line per run in <workdir>/results.jsonl. The work directory (logs of tutti and
SIPp, timelines) is kept when a run failed or with --keep.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import datetime
import hashlib
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCENARIO = HERE / "uac_stream_pcmu.xml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NETNS_ENV = "TUTTI_LOAD_IN_NETNS"
FIRST_ROOM = 7001
PACKETS_PER_CALL = 50  # 20 ms ptime
TALK_TEXT = (
    "Good morning everyone, thanks for joining the call. Let us go through the "
    "numbers for this quarter. Sales are up in the north, flat in the south. "
    "Any questions before we move on to the next item on the agenda?"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- /proc


def proc_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (thread name, utime + stime)} of every thread of a process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile (kB) and Threads of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[key] = int(value.split()[0])
    return out


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def udp_snmp() -> dict[str, int]:
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


def udp_sockets() -> list[tuple[int, int, int]]:
    """(local port, rx_queue bytes, drops) of every IPv4 UDP socket."""
    out = []
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            port = int(parts[1].split(":")[1], 16)
            rx_queue = int(parts[4].split(":")[1], 16)
            out.append((port, rx_queue, int(parts[-1])))
    return out


def drops_in(ranges: list[tuple[int, int]]) -> int:
    return sum(d for port, _, d in udp_sockets() if any(lo <= port <= hi for lo, hi in ranges))


# --------------------------------------------------------------------------- ports


def port_free(port: int, tcp: bool = True) -> bool:
    kinds = [socket.SOCK_DGRAM] + ([socket.SOCK_STREAM] if tcp else [])
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(taken: set[int]) -> int:
    """A port free for both UDP and TCP on loopback, not in `taken`."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken and port_free(port):
            taken.add(port)
            return port
    raise RuntimeError("no free port on loopback")


def free_range(length: int, taken: set[int], low: int = 20000, high: int = 32000) -> int:
    """The even start of `length` consecutive UDP ports free on loopback, below the
    kernel's ephemeral range, not overlapping `taken`."""
    for _ in range(200):
        base = random.randrange(low, high - length) & ~1
        ports = range(base, base + length)
        if any(p in taken for p in ports):
            continue
        if all(port_free(p, tcp=False) for p in ports):
            taken.update(ports)
            return base
    raise RuntimeError(f"no free range of {length} UDP ports on loopback")


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the script dies, whatever the reason."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stop(proc: subprocess.Popen | None, name: str, grace: float) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{name} did not exit {grace:.0f} s after SIGTERM: SIGKILL")
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def raise_nofile(want: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            soft, hard = want, want
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --------------------------------------------------------------------------- tutti


def http_get(addr: str, path: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
        return r.read().decode()


def metrics(addr: str) -> dict[str, float]:
    out = {}
    try:
        text = http_get(addr, "/metrics")
    except OSError:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def control_session(addr: tuple[str, int], password: str, commands: list[str], timeout: float) -> list[str]:
    """Logs in on TCP 4011, sends `commands` one by one, waits for each one's
    `<CMD>,OK` (raises on an error answer), returns every line read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with socket.create_connection(addr, timeout=5) as s:
        f = s.makefile("rwb")

        def answer(cmd: str) -> None:
            f.write(cmd.encode() + b"\r\n")
            f.flush()
            name = cmd.split(",", 1)[0].upper()
            while True:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                raw = f.readline()
                if not raw:
                    raise RuntimeError(f"4011 closed while waiting for {name}")
                line = raw.decode(errors="replace").strip()
                lines.append(line)
                if line == f"{name},OK" or line.startswith(f"{name},OK,"):
                    return
                if line.startswith("ERROR,") or line.startswith(f"{name},ERROR"):
                    raise RuntimeError(f"{cmd}: {line}")

        answer(f"LOGIN,{password}")
        for cmd in commands:
            answer(cmd)
    return lines


LOG_LINE = re.compile(r"^\S+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$")
NOISE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b\d+(\.\d+)*\b|call-\d+|"
    r"call_id=\S+|[A-Za-z0-9]{8}(?=[\";])"
)


def scan_log(path: Path) -> dict:
    """Counts of WARN and ERROR lines, panics, and the most frequent kinds."""
    levels: Counter = Counter()
    kinds: Counter = Counter()
    examples: dict[str, str] = {}
    panics = []
    with open(path, errors="replace") as f:
        for line in f:
            if "panicked at" in line:
                panics.append(line.strip()[:400])
            m = LOG_LINE.match(line.strip())
            if not m:
                continue
            levels[m.group(1)] += 1
            if m.group(1) in ("WARN", "ERROR"):
                text = m.group(2)
                kind = m.group(1) + " " + NOISE.sub("#", text.split(" raw_message=")[0])[:160]
                kinds[kind] += 1
                examples.setdefault(kind, line.strip()[:600])
    top = [{"count": n, "kind": k, "example": examples[k]} for k, n in kinds.most_common(8)]
    return {"warn": levels["WARN"], "error": levels["ERROR"], "panics": panics[:5], "top": top}


# --------------------------------------------------------------------------- SIPp


def sipp_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's -trace_stat file as {column: value}."""
    if not path.exists():
        return {}
    rows = [l.rstrip("\n").split(";") for l in path.read_text(errors="replace").splitlines() if l.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def duration_ms(text: str) -> float | None:
    """SIPp's HH:MM:SS:USEC duration in milliseconds."""
    try:
        h, m, s, us = (int(x) for x in text.split(":"))
    except ValueError:
        return None
    return (h * 3600 + m * 60 + s) * 1000 + us / 1000


def make_audio(workdir: Path) -> str:
    """talk.ulaw (speech or a tone) and quiet.ulaw (noise at about -64 dBFS):
    raw 8 kHz mu-law, as SIPp's rtp_stream sends a file's bytes as they are."""
    talk, quiet = workdir / "talk.ulaw", workdir / "quiet.ulaw"
    ulaw = ["-r", "8000", "-c", "1", "-e", "mu-law", "-t", "ul"]
    source = "1 kHz tone at -13 dBFS"
    if shutil.which("espeak-ng"):
        wav = workdir / "talk.wav"
        r = subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), TALK_TEXT], capture_output=True)
        if r.returncode == 0 and wav.exists():
            # Speech normalised to -3 dBFS peak, then a 1 s pause before it loops.
            subprocess.run(["sox", str(wav), *ulaw, str(talk), "norm", "-3", "pad", "0", "1"], check=True)
            source = "espeak-ng speech, peak -3 dBFS, 1 s pause per loop"
    if not talk.exists():
        subprocess.run(["sox", "-n", *ulaw, str(talk), "synth", "10", "sine", "1000", "vol", "0.3"], check=True)
    subprocess.run(["sox", "-n", *ulaw, str(quiet), "synth", "10", "whitenoise", "vol", "0.001"], check=True)
    return source


# --------------------------------------------------------------------------- one run


def first_start_secrets(log_path: Path) -> tuple[str, str]:
    """The default customer's UID and API key, as tutti printed them on its first
    start (standard output goes to tutti.log here)."""
    uid = key = ""
    for line in log_path.read_text(errors="replace").splitlines():
        if "tutti first start: customer UID:" in line:
            uid = line.rsplit(" ", 1)[-1]
        elif "tutti first start: API key:" in line:
            key = line.rsplit(" ", 1)[-1]
    if not uid or not key:
        raise RuntimeError("no first-start secrets in tutti.log")
    return uid, key


def wrk_run(url: str, seconds: float, connections: int, script: Path | None, out: Path) -> dict:
    """One wrk run (Debian package wrk): requests per second and latency
    percentiles in milliseconds, non-2xx answers counted."""
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, int(seconds))}s", "--latency",
           "--timeout", "5s"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    out.write_text(" ".join(cmd) + "\n" + text)
    result: dict = {}
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(value: str) -> float | None:
        m = re.match(r"([0-9.]+)(us|ms|s)$", value)
        return round(float(m.group(1)) * units[m.group(2)], 2) if m else None

    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = round(float(parts[1]))
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            result[f"p{parts[0][:-1]}_ms"] = ms(parts[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            result["non_2xx"] = int(parts[-1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    return result


def http_bench(args, rundir: Path, http: str, seconds: float) -> dict:
    """During the steady window: wrk against /_access getConference (GET) and
    addPerson (POST), half the window each, --http-connections at once."""
    uid, key = first_start_secrets(rundir / "tutti.log")
    creds = f"customer={uid}&key={key}&type=json"
    # The load's rooms have callers in them: they are on the active list.
    lists = json.loads(http_get(http, f"/_access/getActiveConference?{creds}", 5))
    if not lists.get("value"):
        raise RuntimeError(f"no active conference to read: {lists}")
    conference = lists["value"][0]["UID"]
    get_url = f"http://{http}/_access/getConference?{creds}&conferenceUID={conference}"
    post = rundir / "add_person.lua"
    post.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.body = "{creds}&conference={conference}&role=PARTICIPANT&name=Load"\n'
    )
    half = seconds / 2
    got = wrk_run(get_url, half, args.http_connections, None, rundir / "wrk.getConference.txt")
    added = wrk_run(f"http://{http}/_access/addPerson", half, args.http_connections, post,
                    rundir / "wrk.addPerson.txt")
    return {f"http_get_{k}": v for k, v in got.items()} | {f"http_add_{k}": v for k, v in added.items()}


def http_post(addr: str, path: str, fields: dict, timeout: float = 5.0) -> str:
    body = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(f"http://{addr}{path}", data=body, timeout=timeout) as r:
        return r.read().decode()


def tick_lateness(before: dict[str, float], after: dict[str, float]) -> dict:
    """The window's mixer tick lateness from two /metrics readings: p50 and
    p99 as the bound of the histogram bucket they fall in (ms), ticks counted
    and skipped; the worst since the start."""
    name = "tutti_mixer_tick_lateness_seconds"
    bounds = sorted(
        (float(k.split('le="')[1].rstrip('"}')), k) for k in after
        if k.startswith(name + "_bucket") and "+Inf" not in k
    )
    total = after.get(name + "_count", 0) - before.get(name + "_count", 0)
    out = {"ticks": int(total)}
    if total <= 0:
        return out
    for q in (0.5, 0.99):
        out[f"p{int(q * 100)}_ms"] = None
        for bound, key in bounds:
            if after.get(key, 0) - before.get(key, 0) >= q * total:
                out[f"p{int(q * 100)}_ms"] = round(bound * 1000, 2)
                break
        if out[f"p{int(q * 100)}_ms"] is None:
            out[f"p{int(q * 100)}_ms"] = f">{bounds[-1][0] * 1000:g}"
    out["skipped"] = int(after.get("tutti_mixer_ticks_skipped_total", 0)
                         - before.get("tutti_mixer_ticks_skipped_total", 0))
    out["max_since_start_ms"] = round(after.get("tutti_mixer_tick_lateness_max_seconds", 0) * 1000, 2)
    return out


class Subscriber(threading.Thread):
    """One XMLSocket subscriber: each CALLER MUTE event's arrival time, by
    (caller UID, mute value)."""

    def __init__(self, port: int, call: str, token: str):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f'<subscribe callUID="{call}" securityToken="{token}"/>\0'.encode())
        self.buf = b""
        first = self.document()
        if first is None or ET.fromstring(first).tag != "subscribed":
            raise RuntimeError(f"XMLSocket subscription refused: {first!r}")
        self.arrived: dict[tuple[str, str], float] = {}
        self.events = 0
        self.ended = None

    def document(self) -> str | None:
        while b"\0" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        doc, _, self.buf = self.buf.partition(b"\0")
        return doc.decode()

    def run(self) -> None:
        self.sock.settimeout(None)
        try:
            while (doc := self.document()) is not None:
                now = time.monotonic()
                self.events += 1
                event = ET.fromstring(doc)
                if event.findtext("source") == "CALLER" and event.findtext("name") == "MUTE":
                    target = event.find("target")
                    key = (target.findtext("UID"), target.findtext("mute"))
                    self.arrived.setdefault(key, now)
            self.ended = "closed by the server"
        except OSError as e:
            self.ended = f"{type(e).__name__}: {e}"

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def conductor_bench(args, rundir: Path, http: str, events_port: int, seconds: float) -> dict:
    """During the window: --subscribers XMLSocket subscribers on the first
    room's call, --conductor-rate mute toggles a second; the latency from each
    command to its event at every subscriber."""
    uid, key = first_start_secrets(rundir / "tutti.log")
    creds = {"customer": uid, "key": key, "type": "json"}
    lists = json.loads(http_get(http, "/_access/getActiveConference?" + urllib.parse.urlencode(creds), 5))
    conference = lists["value"][0]
    token = conference["securityToken"]
    auth = {"securityToken": token, "type": "json"}
    view = json.loads(http_get(http, "/_conference/getConference?" + urllib.parse.urlencode(
        auth | {"conferenceUID": conference["UID"]}), 5))
    call = view["value"]["mainCallUID"]
    data = json.loads(http_get(http, "/_conference/getCallData?" + urllib.parse.urlencode(
        auth | {"callUID": call}), 10))
    callers = [c["UID"] for c in data["value"]["callers"] if c["active"]]
    subscribers = [Subscriber(events_port, call, token) for _ in range(args.subscribers)]
    for s in subscribers:
        s.start()
    sent: dict[tuple[str, str], float] = {}
    command_ms = []
    refused = 0
    period = 1.0 / args.conductor_rate if args.conductor_rate > 0 else None
    start = time.monotonic()
    end = start + seconds - 2  # the last events have 2 s to arrive
    k = 0
    while period and time.monotonic() < end:
        due = start + k * period
        time.sleep(max(0.0, due - time.monotonic()))
        uid_k = callers[k % len(callers)]
        value = "true" if (k // len(callers)) % 2 == 0 else "false"
        t = time.monotonic()
        sent[(uid_k, value)] = t
        answer = http_post(http, "/_conference/updateCaller",
                           {"securityToken": token, "callUID": call, "UID": uid_k, "field": "mute", "value": value})
        command_ms.append((time.monotonic() - t) * 1000)
        if answer.strip() != "TRUE":
            refused += 1
        k += 1
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    latencies = []
    missing = 0
    for s in subscribers:
        for key_, t_sent in sent.items():
            t = s.arrived.get(key_)
            if t is None:
                missing += 1
            else:
                latencies.append((t - t_sent) * 1000)
    dropped = sum(1 for s in subscribers if s.ended is not None)
    events = sum(s.events for s in subscribers)
    for s in subscribers:
        s.close()
    latencies.sort()
    command_ms.sort()

    def pct(values, q):
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None

    return {
        "conductor_subscribers": args.subscribers, "conductor_commands": len(sent),
        "conductor_refused": refused, "conductor_command_p50_ms": pct(command_ms, 0.5),
        "conductor_command_p99_ms": pct(command_ms, 0.99),
        "conductor_events_received": events, "conductor_events_missing": missing,
        "conductor_subscribers_dropped": dropped,
        "conductor_event_p50_ms": pct(latencies, 0.5), "conductor_event_p99_ms": pct(latencies, 0.99),
        "conductor_event_max_ms": round(latencies[-1], 2) if latencies else None,
    }


def parse_rooms(spec: str, calls: int) -> int:
    spec = spec.strip().upper().replace(" ", "")
    if spec.startswith("N/"):
        return max(1, calls // int(spec[2:]))
    return max(1, int(spec))


def run_one(args, workdir: Path, binary: Path, audio: str, calls: int, rooms: int) -> dict:
    name = f"n{calls}-r{rooms}"
    rundir = workdir / name
    rundir.mkdir()
    for f in ("talk.ulaw", "quiet.ulaw"):
        if (workdir / f).exists():
            os.symlink(workdir / f, rundir / f)
    talkers = calls if args.talkers == "all" else int(args.talkers)
    rate = args.rate if args.rate else min(20.0, max(5.0, calls / 10))
    ramp = calls / rate
    hold = args.hold
    # Every call holds long enough to span the ramp, the wait for all callers
    # and the window; then the first call hangs up.
    pause_s = ramp + args.settle_max + hold + 5
    sipp_timeout = int(ramp + pause_s + 60)

    taken: set[int] = set()
    sip_port, control_port, http_port, sipp_port, events_port = (free_port(taken) for _ in range(5))
    rtp_len = 2 * calls + 200
    rtp_base = free_range(rtp_len, taken)
    rtp_hi = rtp_base + rtp_len - 1
    sipp_media = free_range(4, taken, 33000, 60000)
    password = secrets.token_hex(8)

    result: dict = {
        "calls": calls, "rooms": rooms, "talkers_per_room": talkers, "rate": rate, "hold_s": hold,
        "audio": audio, "rundir": str(rundir), "ok": False,
    }
    tutti = sipp = None
    tutti_log = open(rundir / "tutti.log", "wb")
    sipp_out = open(rundir / "sipp.stdout", "wb")
    timeline = open(rundir / "timeline.csv", "w")
    timeline.write("t_s,phase,tutti_active_callers,sipp_current_calls,tutti_cpu_pct,sipp_cpu_pct,tutti_rss_mb\n")
    http = f"127.0.0.1:{http_port}"
    t0 = time.monotonic()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
        cmd = [
            str(binary), "serve",
            "--sip-listen", f"127.0.0.1:{sip_port}",
            "--media-address", "127.0.0.1",
            "--rtp-ports", f"{rtp_base}-{rtp_hi}",
            "--control-listen", f"127.0.0.1:{control_port}",
            "--http-listen", http,
            "--events-listen", f"127.0.0.1:{events_port}",
            "--data-dir", str(rundir / "data"),
            "--control-password", password,
            "--max-calls", str(calls + 100),
            # Every SIPp call comes from one address: a load, not a flood.
            "--invite-rate", "0",
            "--timezone", "UTC",
            "--log", args.log,
        ] + args.server_arg
        (rundir / "tutti.cmd").write_text(" ".join(cmd).replace(password, "<password>") + "\n")
        tutti = subprocess.Popen(cmd, stdout=tutti_log, stderr=subprocess.STDOUT, env=env,
                                 stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while True:
            if tutti.poll() is not None:
                raise RuntimeError(f"tutti exited {tutti.returncode} at start; see {rundir}/tutti.log")
            try:
                if '"status":"ok"' in http_get(http, "/healthz", 1).replace(" ", ""):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tutti not healthy within 30 s")
            time.sleep(0.2)
        numbers = [str(FIRST_ROOM + i) for i in range(rooms)]
        control_session(("127.0.0.1", control_port), password,
                        [f"NEWCONF,{n},Load,Load,0,,,," for n in numbers], timeout=60)
        log(f"{name}: tutti pid {tutti.pid} up, {rooms} conference(s) {numbers[0]}..{numbers[-1]}, "
            f"RTP {rtp_base}-{rtp_hi}")

        # One line per call: room round-robin, the first `talkers` callers of each room talk.
        with open(rundir / "calls.csv", "w") as f:
            f.write("SEQUENTIAL\n")
            for i in range(calls):
                f.write(f"{numbers[i % rooms]};{1 if i // rooms < talkers else 0};\n")

        screen = rundir / "sipp.screens.log"
        stat = rundir / "sipp.stat.csv"
        listening = args.callers == "tutti-callers"
        sipp_cmd = [
            "sipp", "-sf", str(SCENARIO), "-inf", "calls.csv",
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(sipp_media), "-p", str(sipp_port),
            "-m", str(calls), "-l", str(calls), "-r", f"{rate:g}", "-d", str(int(pause_s * 1000)),
            "-timeout", f"{sipp_timeout}s", "-timeout_error", "-nostdin", "-aa",
            "-trace_stat", "-stf", stat.name, "-fd", "1",
            "-trace_err", "-error_file", "sipp.errors.log",
            "-trace_screen", "-screen_file", screen.name,
            f"127.0.0.1:{sip_port}",
        ]
        if listening:
            # The listening callers measure a little longer than the window
            # below, which starts up to a second later: the window sees no
            # hang-up, and their figures cover all of it.
            sipp_cmd = [
                str(args.callers_binary_copy), "--target", f"sip:{{number}}@127.0.0.1:{sip_port}",
                "--numbers", f"{numbers[0]}-{numbers[-1]}", "--calls", str(calls),
                "--talkers", str(min(talkers, 5)), "--rate", f"{rate:g}",
                "--setup-timeout", f"{ramp + args.settle_max:.0f}", "--settle", "2",
                "--hold", f"{hold + 4:g}", "--threads", str(args.callers_threads),
                "--codec", args.callers_codec,
                "--json", "callers.json",
            ] + (["--comfort-noise"] if args.callers_comfort_noise else []) \
              + (["--opus-dtx"] if args.callers_opus_dtx else []) \
              + (["--vad"] if args.callers_vad else [])
        (rundir / "sipp.cmd").write_text(" ".join(sipp_cmd) + "\n")
        sipp = subprocess.Popen(sipp_cmd, cwd=rundir, stdout=sipp_out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        ts = time.monotonic()
        log(f"{name}: {args.callers} pid {sipp.pid}: {calls} calls at {rate:g}/s (ramp {ramp:.0f} s), "
            f"hold {pause_s:.0f} s each")

        last = {"t": time.monotonic(), "tutti": proc_ticks(tutti.pid), "sipp": proc_ticks(sipp.pid)}

        def sample(phase: str) -> dict:
            now = time.monotonic()
            m = metrics(http)
            st = sipp_stats(stat)
            try:
                tt, sp = proc_ticks(tutti.pid), proc_ticks(sipp.pid)
            except OSError:
                tt, sp = last["tutti"], last["sipp"]
            dt = max(1e-6, now - last["t"])
            row = {
                "active": int(m.get("tutti_active_callers", -1)),
                "sipp_current": -1 if listening else int(st.get("CurrentCall", "-1") or -1),
                "tutti_cpu": 100 * (tt - last["tutti"]) / CLK_TCK / dt,
                "sipp_cpu": 100 * (sp - last["sipp"]) / CLK_TCK / dt,
            }
            try:
                rss = proc_status(tutti.pid).get("VmRSS", 0) / 1024
            except OSError:
                rss = 0
            timeline.write(f"{now - ts:.1f},{phase},{row['active']},{row['sipp_current']},"
                           f"{row['tutti_cpu']:.1f},{row['sipp_cpu']:.1f},{rss:.1f}\n")
            timeline.flush()
            last.update(t=now, tutti=tt, sipp=sp)
            return row

        # Ramp: until every caller is connected, or settle_max after the ramp.
        all_up_at = None
        ramp_deadline = ts + ramp + args.settle_max
        while time.monotonic() < ramp_deadline:
            time.sleep(1)
            row = sample("ramp")
            if tutti.poll() is not None:
                raise RuntimeError(f"tutti exited {tutti.returncode} during the ramp")
            if sipp.poll() is not None:
                raise RuntimeError(f"SIPp exited {sipp.returncode} during the ramp")
            if row["active"] >= calls:
                all_up_at = time.monotonic() - ts
                break
        result["all_up_after_s"] = round(all_up_at, 1) if all_up_at is not None else None
        time.sleep(2)  # let the last calls' jitter buffers and the mixer settle
        sample("settle")

        # Steady window.
        a = {
            "t": time.monotonic(), "tutti": proc_ticks(tutti.pid), "sipp": proc_ticks(sipp.pid),
            "sipp_main": thread_ticks(sipp.pid).get(sipp.pid, ("", 0))[1],
            "threads": thread_ticks(tutti.pid), "machine": machine_ticks(), "snmp": udp_snmp(),
            "tutti_drops": drops_in([(rtp_base, rtp_hi)]),
            "sipp_drops": drops_in([(sipp_media, sipp_media + 3)]),
        }
        rows = []
        end = a["t"] + hold
        metrics_before = metrics(http)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        benches = []
        if args.http_bench:
            benches.append(pool.submit(http_bench, args, rundir, http, hold - 1))
        if args.subscribers or args.conductor_rate:
            benches.append(pool.submit(conductor_bench, args, rundir, http, events_port, hold - 1))
        while time.monotonic() < end:
            time.sleep(min(1, max(0, end - time.monotonic())))
            rows.append(sample("window"))
        for bench in benches:
            result.update(bench.result(timeout=120))
        pool.shutdown()
        result.update({f"tick_{k}": v for k, v in tick_lateness(metrics_before, metrics(http)).items()})
        b = {
            "t": time.monotonic(), "tutti": proc_ticks(tutti.pid), "sipp": proc_ticks(sipp.pid),
            "sipp_main": thread_ticks(sipp.pid).get(sipp.pid, ("", 0))[1],
            "threads": thread_ticks(tutti.pid), "machine": machine_ticks(), "snmp": udp_snmp(),
            "tutti_drops": drops_in([(rtp_base, rtp_hi)]),
            "sipp_drops": drops_in([(sipp_media, sipp_media + 3)]),
            "status": proc_status(tutti.pid), "fds": open_fds(tutti.pid),
        }
        dt = b["t"] - a["t"]
        busiest = max(
            ((b["threads"][tid][1] - a["threads"].get(tid, (n, b["threads"][tid][1]))[1], n)
             for tid, (n, _) in b["threads"].items()),
            default=(0, "-"),
        )
        machine_busy = (b["machine"][0] - a["machine"][0]) / max(1, b["machine"][1] - a["machine"][1])
        snmp = {k: b["snmp"][k] - a["snmp"][k] for k in b["snmp"]}
        actives = [r["active"] for r in rows] or [-1]
        result.update({
            "window_s": round(dt, 1),
            "active_min": min(actives), "active_max": max(actives),
            "tutti_cpu_pct": round(100 * (b["tutti"] - a["tutti"]) / CLK_TCK / dt, 1),
            "tutti_busiest_thread": busiest[1],
            "tutti_busiest_thread_pct": round(100 * busiest[0] / CLK_TCK / dt, 1),
            "tutti_threads": b["status"].get("Threads"),
            "tutti_fds": b["fds"],
            "tutti_rss_mb": round(b["status"].get("VmRSS", 0) / 1024, 1),
            "tutti_hwm_mb": round(b["status"].get("VmHWM", 0) / 1024, 1),
            "sipp_cpu_pct": round(100 * (b["sipp"] - a["sipp"]) / CLK_TCK / dt, 1),
            "sipp_main_thread_pct": round(100 * (b["sipp_main"] - a["sipp_main"]) / CLK_TCK / dt, 1),
            "machine_busy_pct": round(100 * machine_busy * os.cpu_count(), 1),
            "tutti_socket_drops_per_s": round((b["tutti_drops"] - a["tutti_drops"]) / dt, 1),
            "rtp_out_per_s": round((b["sipp_drops"] - a["sipp_drops"]) / dt, 1),
            "expected_per_s": PACKETS_PER_CALL * max(0, min(actives)),
        })
        if args.netns_active and listening:
            # tutti and the listening callers both read: what the callers read
            # is their own count; the rest is tutti's.
            result["rtp_in_per_s"] = round(snmp["InDatagrams"] / dt, 1)
        elif args.netns_active:
            # Only tutti reads RTP in the namespace; SIPp's sends are what left
            # the namespace's sockets minus tutti's RTP (dropped on SIPp's media
            # socket) and tutti's RTCP (to SIPp's unbound RTCP port: NoPorts).
            tutti_out = b["sipp_drops"] - a["sipp_drops"]
            result["rtp_in_per_s"] = round(snmp["InDatagrams"] / dt, 1)
            result["tutti_rtcp_out_per_s"] = round(snmp["NoPorts"] / dt, 1)
            sent = snmp["OutDatagrams"] - tutti_out - snmp["NoPorts"]
            result["sipp_rtp_sent_per_s"] = round(sent / dt, 1)
        result["snmp_rcvbuf_errors_per_s"] = round(snmp.get("RcvbufErrors", 0) / dt, 1)
        log(f"{name}: window {dt:.0f} s: tutti {result['tutti_cpu_pct']}% CPU, "
            f"{result['tutti_rss_mb']} MB, SIPp {result['sipp_cpu_pct']}% "
            f"(main {result['sipp_main_thread_pct']}%), callers {min(actives)}..{max(actives)}")

        # Hang-up: SIPp (or the listening callers) end by themselves.
        sipp_deadline = ts + sipp_timeout + 30
        while sipp.poll() is None and time.monotonic() < sipp_deadline:
            time.sleep(1)
            sample("hangup")
        if sipp.poll() is None:
            log(f"{name}: SIPp still running past its -timeout: killing it")
        result["sipp_exit"] = stop(sipp, "SIPp", 5)
        # tutti must drop back to no callers.
        leftover_deadline = time.monotonic() + 20
        active = -1
        while time.monotonic() < leftover_deadline:
            active = int(metrics(http).get("tutti_active_callers", -1))
            if active == 0:
                break
            time.sleep(0.5)
        result["tutti_callers_after"] = active
    except Exception as e:  # noqa: BLE001 - reported, run marked failed
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"{name}: FAILED: {result['error']}")
    finally:
        if sipp is not None and sipp.poll() is None:
            result.setdefault("sipp_exit", stop(sipp, "SIPp", 5))
        code = stop(tutti, "tutti", 20)
        result["tutti_exit"] = code
        for f in (tutti_log, sipp_out, timeline):
            f.close()

    if args.callers == "tutti-callers":
        return finish_listening(result, rundir, calls, t0)
    st = sipp_stats(rundir / "sipp.stat.csv")
    result["sipp_created"] = int(st.get("OutgoingCall(C)", 0) or 0)
    result["sipp_successful"] = int(st.get("SuccessfulCall(C)", 0) or 0)
    result["sipp_failed"] = int(st.get("FailedCall(C)", 0) or 0)
    result["sipp_retransmissions"] = int(st.get("Retransmissions(C)", 0) or 0)
    result["sipp_failures"] = {
        k.removesuffix("(C)"): int(v) for k, v in st.items()
        if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and v.isdigit() and int(v)
    }
    result["setup_ms_avg"] = duration_ms(st.get("ResponseTime1(C)", ""))
    result["calls_failed"] = max(result["sipp_failed"], calls - result["sipp_successful"])
    result["tutti_log"] = scan_log(rundir / "tutti.log")
    result["ok"] = (
        "error" not in result and result["calls_failed"] == 0 and result.get("sipp_exit") == 0
        and result.get("tutti_exit") == 0 and result.get("tutti_callers_after") == 0
        and not result["tutti_log"]["panics"]
    )
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def finish_listening(result: dict, rundir: Path, calls: int, t0: float) -> dict:
    """A run's verdict with the listening callers: their findings (prefixed
    q_), RTP rates from what they counted."""
    try:
        q = json.loads((rundir / "callers.json").read_text())
    except (OSError, ValueError) as e:
        q = {"ok": False, "error": f"no callers.json: {e}"}
    result.update({f"q_{k}": v for k, v in q.items()})
    dt = q.get("window_s") or 0
    if dt and "rtp_in_per_s" in result:
        # The callers read what tutti sent; tutti read everything else.
        heard = q.get("packets", 0) + q.get("comfort_noise", 0)
        out = (heard + q.get("lost", 0)) / dt
        result["rtp_out_per_s"] = round(out, 1)
        result["rtp_in_per_s"] = round(result["rtp_in_per_s"] - heard / dt, 1)
    result["calls_failed"] = q.get("failed", calls) + q.get("ended_early", 0)
    result["tutti_log"] = scan_log(rundir / "tutti.log")
    result["ok"] = (
        "error" not in result and q.get("ok") is True and result.get("sipp_exit") == 0
        and result.get("tutti_exit") == 0 and result.get("tutti_callers_after") == 0
        and not result["tutti_log"]["panics"]
    )
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


# --------------------------------------------------------------------------- report


COLUMNS = [
    ("calls", "calls"), ("rooms", "rooms"), ("talk", "talkers per room"), ("up", "callers up"), ("failed", "failed"),
    ("tcpu", "tutti CPU % (busiest thread)"), ("rss", "tutti RSS MB"),
    ("rin", "RTP in/s"), ("rout", "RTP out/s"), ("exp", "expected/s"), ("drop", "dropped at tutti/s"),
    ("scpu", "load generator CPU % (main thread)"), ("mach", f"machine busy % (of {100 * (os.cpu_count() or 1)})"), ("setup", "INVITE to 200 ms"),
]


def row_of(r: dict) -> dict[str, str]:
    def g(key, fmt="{}"):
        v = r.get(key)
        return "-" if v is None else fmt.format(v)

    up = "-" if "active_min" not in r else (
        str(r["active_min"]) if r["active_min"] == r["active_max"] else f"{r['active_min']}-{r['active_max']}")
    return {
        "calls": str(r["calls"]), "rooms": str(r["rooms"]),
        "talk": "all" if r["talkers_per_room"] >= r["calls"] else str(r["talkers_per_room"]), "up": up,
        "failed": str(r.get("calls_failed", "-")),
        "tcpu": f"{g('tutti_cpu_pct')} ({g('tutti_busiest_thread_pct')})",
        "rss": g("tutti_rss_mb"),
        "rin": g("rtp_in_per_s", "{:.0f}"), "rout": g("rtp_out_per_s", "{:.0f}"),
        "exp": g("expected_per_s"), "drop": g("tutti_socket_drops_per_s", "{:.0f}"),
        "scpu": f"{g('sipp_cpu_pct')} ({g('sipp_main_thread_pct')})",
        "mach": g("machine_busy_pct"),
        # SIPp measures response times in whole milliseconds.
        "setup": "-" if r.get("setup_ms_avg") is None else ("<1" if r["setup_ms_avg"] < 1 else f"{r['setup_ms_avg']:.0f}"),
    }


QUALITY = [
    ("calls", "calls"), ("rooms", "rooms"), ("talkers_per_room", "talkers per room"),
    ("q_pps_per_call", "packets/s per caller"), ("q_comfort_noise", "comfort-noise packets"), ("q_lost_pct", "lost %"),
    ("q_jitter_ms_p50", "jitter ms (p50 of callers)"),
    ("q_lateness_ms_p50", "late p50 ms"), ("q_lateness_ms_p99", "late p99 ms"), ("q_lateness_ms_max", "late max ms"),
    ("q_click_ms_p50", "click p50 ms"), ("q_click_ms_p99", "click p99 ms"),
    ("q_clicks", "clicks found"), ("q_heard_pct", "talkers heard %"), ("q_self_heard", "heard themselves"),
    ("q_send_late_ms_max", "callers' own send late max ms"),
]


def markdown(results: list[dict]) -> str:
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, sep]
    for r in results:
        row = row_of(r)
        lines.append("| " + " | ".join(row[k] for k, _ in COLUMNS) + " |")
    listened = [r for r in results if "q_ok" in r]
    if listened:
        lines += ["", "What the callers heard (tutti-callers):", "",
                  "| " + " | ".join(t for _, t in QUALITY) + " |", "|" + "|".join("---" for _ in QUALITY) + "|"]
        for r in listened:
            r = dict(r, q_clicks=f"{r.get('q_clicks_found', '-')}/{r.get('q_clicks_expected', '-')}")
            lines.append("| " + " | ".join("-" if r.get(k) is None else str(r.get(k)) for k, _ in QUALITY) + " |")
    return "\n".join(lines)


def report(r: dict) -> None:
    print(f"\n=== {r['calls']} calls, {r['rooms']} room(s), {r['talkers_per_room']} talker(s) per room, "
          f"{r['rate']:g} calls/s: {'OK' if r['ok'] else 'PROBLEMS'} ===")
    for key in ("error", "all_up_after_s", "window_s", "active_min", "active_max", "tutti_cpu_pct",
                "tutti_busiest_thread", "tutti_busiest_thread_pct", "tutti_threads", "tutti_fds",
                "tutti_rss_mb", "tutti_hwm_mb", "rtp_in_per_s", "rtp_out_per_s", "expected_per_s",
                "sipp_rtp_sent_per_s", "tutti_rtcp_out_per_s", "tutti_socket_drops_per_s",
                "snmp_rcvbuf_errors_per_s", "sipp_cpu_pct", "sipp_main_thread_pct", "machine_busy_pct",
                "sipp_created", "sipp_successful", "sipp_failed", "sipp_failures", "sipp_retransmissions",
                "setup_ms_avg", "sipp_exit", "tutti_callers_after", "tutti_exit",
                "http_get_rps", "http_get_p50_ms", "http_get_p99_ms", "http_get_non_2xx",
                "http_add_rps", "http_add_p50_ms", "http_add_p99_ms", "http_add_non_2xx",
                "tick_ticks", "tick_p50_ms", "tick_p99_ms", "tick_skipped", "tick_max_since_start_ms",
                "conductor_subscribers", "conductor_commands", "conductor_refused",
                "conductor_command_p50_ms", "conductor_command_p99_ms", "conductor_events_received",
                "conductor_events_missing", "conductor_subscribers_dropped", "conductor_event_p50_ms",
                "conductor_event_p99_ms", "conductor_event_max_ms",
                *[k for k in r if k.startswith("q_")],
                "elapsed_s", "rundir"):
        if key in r:
            print(f"  {key:28} {r[key]}")
    lg = r.get("tutti_log", {})
    print(f"  {'tutti log':28} {lg.get('warn', 0)} WARN, {lg.get('error', 0)} ERROR, "
          f"{len(lg.get('panics', []))} panics")
    for p in lg.get("panics", []):
        print(f"    PANIC {p}")
    for t in lg.get("top", []):
        print(f"    {t['count']:6} x {t['kind']}")
        print(f"           e.g. {t['example'][:300]}")


def enter_netns() -> int | None:
    """As root, re-runs this script in a new network namespace; returns its exit
    code, or None to carry on here (not root, or unshare failed)."""
    if os.environ.get(NETNS_ENV) == "1" or os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    env = dict(os.environ, **{NETNS_ENV: "1"})
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        log(f"unshare --net failed ({probe.stderr.decode().strip()}); running on the host's loopback")
        return None
    return subprocess.call(["unshare", "--net", "--", sys.executable, *sys.argv], env=env)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (head -80 scripts/load/run.py) for the method.")
    p.add_argument("--calls", default="10", help="callers, or a comma list of runs: 10,100,400,1000")
    p.add_argument("--rooms", default="1", help='rooms, "N/5" for one per five callers, or a comma list: 1,N/5')
    p.add_argument("--hold", type=float, default=25, help="steady window in seconds (default 25)")
    p.add_argument("--rate", type=float, default=0,
                   help="calls per second during the ramp (default N/10, between 5 and 20)")
    p.add_argument("--http-bench", action="store_true",
                   help="during the window, load /_access getConference and addPerson with wrk (Debian package wrk)")
    p.add_argument("--http-connections", type=int, default=50,
                   help="concurrent HTTP clients for --http-bench (default 50)")
    p.add_argument("--subscribers", type=int, default=0,
                   help="Conductor XMLSocket subscribers on the first room's call during the window (default 0)")
    p.add_argument("--conductor-rate", type=float, default=0,
                   help="updateCaller mute toggles per second over /_conference during the window, timed to their events")
    p.add_argument("--talkers", default="3",
                   help='callers per room streaming speech, the rest stream quiet noise; "all" for everyone (default 3)')
    p.add_argument("--settle-max", type=float, default=20,
                   help="longest wait after the ramp for all callers to be connected (default 20 s)")
    p.add_argument("--binary", default=str(REPO / "target/release/tutti"), help="tutti binary (default target/release/tutti)")
    p.add_argument("--build", action="store_true", help="cargo build --release --locked --bin tutti first")
    p.add_argument("--log", default="info,rsipstack=warn",
                   help="tutti's --log filter (default: the server's, info,rsipstack=warn)")
    p.add_argument("--workdir", help="where logs go (default a new directory under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work directory even when every run passed")
    p.add_argument("--no-netns", action="store_true", help="run on the host's loopback, not in a private network namespace")
    p.add_argument("--callers", choices=("sipp", "tutti-callers"), default="sipp",
                   help="the load generator: SIPp (sends only), or tutti-callers, which also measures what each "
                        "caller receives: losses, jitter, lateness, click latency, who hears whom (default sipp)")
    p.add_argument("--callers-binary", default=str(REPO / "target/release/tutti-callers"),
                   help="the tutti-callers binary (default target/release/tutti-callers)")
    p.add_argument("--callers-threads", type=int, default=1, help="tutti-callers' media threads (default 1)")
    p.add_argument("--callers-codec", choices=("pcmu", "opus"), default="pcmu",
                   help="the codec tutti-callers offer (default pcmu)")
    p.add_argument("--callers-opus-dtx", action="store_true",
                   help="with --callers-codec opus: silent tutti-callers send as a phone in DTX does "
                        "(a TOC-only packet every 400 ms)")
    p.add_argument("--callers-comfort-noise", action="store_true",
                   help="tutti-callers offer RFC 3389 comfort noise (G.711): silence then comes "
                        "as a comfort-noise packet every 500 ms")
    p.add_argument("--callers-vad", action="store_true",
                   help="with --callers-comfort-noise: silent tutti-callers send as a phone with voice "
                        "activity detection does (a comfort-noise packet every 500 ms)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for `tutti serve` (repeat it: --server-arg=--music-on-hold "
                        "--server-arg=off); TUTTI_* variables are not passed through")
    args = p.parse_args()

    if not args.no_netns:
        code = enter_netns()
        if code is not None:
            return code
    args.netns_active = os.environ.get(NETNS_ENV) == "1"
    if args.netns_active:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    tools = ("sipp", "sox", "wrk") if args.http_bench else ("sipp", "sox")
    if args.callers == "tutti-callers":
        if args.talkers == "all":
            sys.exit("--callers tutti-callers: --talkers at most 5 per room")
        tools = ("wrk",) if args.http_bench else ()
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install sip-tester sox)")
    if args.build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tutti"], cwd=REPO, check=True)
    src = Path(args.binary)
    if not src.exists():
        sys.exit(f"{src} does not exist; build it (cargo build --release --locked --bin tutti) or pass --build")

    runs = []
    for c in args.calls.split(","):
        for r in args.rooms.split(","):
            calls = int(c)
            rooms = parse_rooms(r, calls)
            if (calls, rooms) not in runs:
                runs.append((calls, rooms))
    biggest = max(c for c, _ in runs)
    soft, hard = raise_nofile(max(65536, 4 * biggest + 1024))
    if soft < 3 * biggest + 256:
        sys.exit(f"RLIMIT_NOFILE is {soft}; {biggest} calls need about {3 * biggest + 256}")

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tutti-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    binary = workdir / "tutti"
    shutil.copy2(src, binary)
    if args.callers == "tutti-callers":
        callers_src = Path(args.callers_binary)
        if not callers_src.exists():
            sys.exit(f"{callers_src} does not exist; cargo build --release --locked --bin tutti-callers")
        args.callers_binary_copy = workdir / "tutti-callers"
        shutil.copy2(callers_src, args.callers_binary_copy)
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    head = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()
    if args.callers == "sipp":
        sipp_version = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
        sipp_version = next((l.strip() for l in sipp_version.splitlines() if "SIPp" in l), "?")
        audio = make_audio(workdir)
    else:
        sipp_version, audio = "tutti-callers", "tones and clicks"
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    log(f"work directory {workdir}")
    log(f"tutti {src} (sha256 {digest}, git {head}); {sipp_version}; audio: {audio}")
    log(f"machine: {os.cpu_count()} x {model}; load average {load}; RLIMIT_NOFILE {soft}; "
        f"network: {'private namespace (unshare --net)' if args.netns_active else 'host loopback'}")

    # Stop cleanly on SIGINT/SIGTERM: the finally blocks kill tutti and SIPp.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    results = []
    try:
        for calls, rooms in runs:
            r = run_one(args, workdir, binary, audio, calls, rooms)
            r.update({"date": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} x {model}",
                      "tutti_sha256": digest, "git": head, "netns": args.netns_active})
            results.append(r)
            report(r)
            with open(workdir / "results.jsonl", "a") as f:
                f.write(json.dumps(r) + "\n")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); tutti and SIPp of the current run were stopped")
    print("\n" + markdown(results))
    all_ok = bool(results) and all(r["ok"] for r in results) and len(results) == len(runs)
    if all_ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
        log("all runs passed; work directory removed (--keep keeps it)")
    else:
        log(f"logs kept in {workdir}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
