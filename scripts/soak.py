#!/usr/bin/env python3
"""Soak: callers joining and leaving every second, API traffic on every
interface, for minutes, and the checks that nothing leaks or drifts.

One tutti, ROOMS conferences made over TCP 4011, and SIPp callers (the load
harness's caller, scripts/load/uac_stream_pcmu.xml, streaming speech or quiet
noise) arriving at CALLERS / HOLD per second, each staying HOLD seconds, so
about CALLERS are connected at any time and several join and several leave
every second. Meanwhile four clients, each about twice a second:

- PBX REST: list rooms, list a room's members (with their quality), rename a room;
- /_access: getConference of a room; Conductor: getConference with its token;
- Aculab-style: conference_list with basic auth;
- TCP 4011: LOGIN, LISTCONF and LISTUSER of a room, on a new connection each time.

Sampled every 5 s: tutti's RSS, open file descriptors, connected callers, and
/metrics; <workdir>/timeline.csv keeps each sample (RSS also split into
anonymous and file-backed memory). After the first WARMUP share of the run the
checks begin:

1. RSS flat: (max - min) / min of the samples after warm-up <= 5 %;
2. mixer ticks: the share of ticks later than 5 ms after warm-up <= --late-share
   (0 by default: none), none skipped;
3. every API answer 2xx (or the expected answer on 4011);
4. at the end, with every call hung up: file descriptors back to the idle
   count (+2), no connected caller; within 45 s no SIP call, dialog or
   transaction, engine call or runtime task more than when idle (/metrics);
5. the stored rows (read from the SQLite file after tutti stopped): one caller
   per call SIPp completed, none still active or without an end time, none
   ending before it started, each lasting HOLD seconds (within 3 s), and no
   call session left ACTIVE;
6. SIPp: no failed call.

Prints one line per check and a summary row; exits 1 when a check fails.

Reuses scripts/load/run.py's helpers (network namespace, audio, SIPp stats,
/metrics parsing). Loopback only; as root in a private network namespace.
Bounded: SIPp gets -m and -timeout; tutti and SIPp are stopped at the end, on
errors and on Ctrl-C, and die with the script.

    cargo build --release --locked --bin tutti
    scripts/soak.py --minutes 30                       # 200 callers in 40 rooms
    scripts/soak.py --minutes 2 --callers 40 --rooms 8 --binary target/debug/tutti
"""

import argparse
import base64
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "load"))
import run as load  # noqa: E402  (scripts/load/run.py)

REPO = HERE.parent


class Traffic(threading.Thread):
    """One API client: `step()` every `period` seconds until stopped; counts
    answers and keeps the first few errors."""

    def __init__(self, name: str, period: float, step):
        super().__init__(daemon=True, name=name)
        self.period, self.step = period, step
        self.ok = self.failed = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.period * random.uniform(0.8, 1.2)):
            try:
                self.step()
                self.ok += 1
            except Exception as e:  # every failure is a finding: keep it
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(e).__name__}: {e}")


def request(http: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None) -> bytes:
    req = urllib.request.Request(f"http://{http}{path}", data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        if not 200 <= r.status < 300:
            raise RuntimeError(f"{method} {path}: {r.status}")
        return r.read()


HELD = ("tutti_sip_calls", "tutti_sip_dialogs", "tutti_sip_transactions",
        "tutti_sip_finished_transactions", "tutti_sip_waiting_ack", "tutti_engine_calls",
        "tutti_live_callers", "tutti_runtime_tasks")


def held(metrics):
    """What tutti holds per call, from /metrics (each back to idle after the calls)."""
    return {name.removeprefix("tutti_"): metrics.get(name, 0) for name in HELD}


def tick_work(m, before):
    """How long the ticks' work took after warm-up: mean, the bucket holding
    the 99th percentile, and the longest since the start."""
    name = "tutti_mixer_tick_duration_seconds"
    count = m.get(name + "_count", 0) - before.get(name + "_count", 0)
    if count <= 0:
        return "tick work not reported"
    mean = (m.get(name + "_sum", 0) - before.get(name + "_sum", 0)) / count
    p99 = "over 100 ms"
    bounds = sorted((float(k.split('"')[1]), k) for k in m
                    if k.startswith(name + '_bucket{le="0'))
    for bound, key in bounds:
        if m[key] - before.get(key, 0) >= 0.99 * count:
            p99 = f"at most {1000 * bound:g} ms"
            break
    return (f"tick work mean {1000 * mean:.2f} ms, p99 {p99}, longest "
            f"{1000 * m.get('tutti_mixer_tick_duration_max_seconds', 0):.1f} ms")


def fd_count(pid: int) -> tuple[int, int]:
    """(sockets, other descriptors) open in `pid`: sockets are what a leaked
    call would leave (its RTP and RTCP ports); the rest are files, pipes and
    the database pool, which grows to its bounded size under load."""
    sockets = other = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:"):
                sockets += 1
            else:
                other += 1
    except OSError:
        return (-1, -1)
    return (sockets, other)


def rtp_ports_bound(low: int, high: int) -> int:
    return sum(1 for port, _, _ in load.udp_sockets() if low <= port <= high)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30, help="length of the load (default 30)")
    p.add_argument("--callers", type=int, default=200, help="callers connected at once (default 200)")
    p.add_argument("--rooms", type=int, default=40, help="conferences (default 40)")
    p.add_argument("--hold", type=float, default=40, help="seconds each call stays (default 40)")
    p.add_argument("--warmup", type=float, default=0.25, help="share of the run before the checks start (default 0.25)")
    p.add_argument("--late-share", type=float, default=0.0,
                   help="largest share of mixer ticks allowed later than 5 ms (default 0: none)")
    p.add_argument("--rss-growth", type=float, default=0.05, help="largest RSS spread after warm-up (default 0.05)")
    p.add_argument("--api-period", type=float, default=0.5,
                   help="seconds between one API client's requests; 0: no HTTP clients (default 0.5)")
    p.add_argument("--control-period", type=float, default=0.5,
                   help="seconds between TCP 4011 LOGIN, LISTCONF, LISTUSER rounds; 0: none (default 0.5)")
    p.add_argument("--binary", default=str(REPO / "target/release/tutti"))
    p.add_argument("--tutti-arg", action="append", default=[],
                   help="one more argument for tutti, e.g. --tutti-arg=--media-nice=0 (repeatable; "
                        "TUTTI_* variables are not passed on)")
    p.add_argument("--workdir", help="where logs go (default a new directory under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work directory when every check passed")
    p.add_argument("--no-netns", action="store_true", help="run on the host's loopback")
    args = p.parse_args()

    if not args.no_netns:
        code = load.enter_netns()
        if code is not None:
            return code
    netns = os.environ.get(load.NETNS_ENV) == "1"
    if netns:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for tool in ("sipp", "sox"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install sip-tester sox)")
    binary = Path(args.binary)
    if not binary.exists():
        sys.exit(f"{binary} does not exist (cargo build --release --locked --bin tutti)")
    load.raise_nofile(max(65536, 4 * args.callers + 1024))

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tutti-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    audio = load.make_audio(workdir)
    seconds = args.minutes * 60
    rate = args.callers / args.hold
    total_calls = int(rate * seconds)
    load.log(f"soak: {args.minutes:g} min, {args.callers} callers in {args.rooms} rooms, "
             f"{rate:.1f} joins and leaves a second, {total_calls} calls; work directory {workdir}; "
             f"{'private network namespace' if netns else 'host loopback'}; audio: {audio}")

    taken: set[int] = set()
    sip_port, control_port, http_port, sipp_port, events_port = (load.free_port(taken) for _ in range(5))
    rtp_len = 2 * args.callers + 400
    rtp_base = load.free_range(rtp_len, taken)
    sipp_media = load.free_range(4, taken, 33000, 60000)
    password = secrets.token_hex(8)
    http = f"127.0.0.1:{http_port}"
    data = workdir / "data"
    tutti = sipp = None
    traffic: list[Traffic] = []
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append((name, ok, detail))
        load.log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    tutti_log = open(workdir / "tutti.log", "wb")
    timeline = open(workdir / "timeline.csv", "w")
    timeline.write("t_s,callers,rss_mb,anon_mb,file_mb,fds,late_ticks_over_5ms,ticks\n")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
        tutti = subprocess.Popen(
            [str(binary), "serve", "--sip-listen", f"127.0.0.1:{sip_port}", "--media-address", "127.0.0.1",
             "--rtp-ports", f"{rtp_base}-{rtp_base + rtp_len - 1}",
             "--control-listen", f"127.0.0.1:{control_port}", "--http-listen", http,
             "--events-listen", f"127.0.0.1:{events_port}", "--data-dir", str(data),
             "--control-password", password, "--max-calls", str(args.callers + 200),
             "--invite-rate", "0", "--timezone", "UTC", *args.tutti_arg],
            stdout=tutti_log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
            preexec_fn=load._die_with_parent)
        deadline = time.monotonic() + 30
        while True:
            if tutti.poll() is not None:
                raise RuntimeError(f"tutti exited {tutti.returncode}; see {workdir}/tutti.log")
            try:
                if '"status":"ok"' in load.http_get(http, "/healthz", 1).replace(" ", ""):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tutti not healthy within 30 s")
            time.sleep(0.2)
        uid, key = load.first_start_secrets(workdir / "tutti.log")
        numbers = [str(load.FIRST_ROOM + i) for i in range(args.rooms)]
        control = ("127.0.0.1", control_port)
        load.control_session(control, password, [f"NEWCONF,{n},Soak,Soak,0,,,," for n in numbers], 60)
        listed = load.control_session(control, password, ["LISTCONF"], 30)
        guids = [l.split(",")[1] for l in listed if l.startswith("LISTCONF,") and l != "LISTCONF,OK"]
        rest_auth = {"Authorization": f"Bearer {key}"}
        rooms = json.loads(request(http, "GET", "/api/v1/conferences?limit=100", rest_auth))["items"]
        rest_ids = [r["id"] for r in rooms]
        basic = base64.b64encode(f"{uid}:{key}".encode()).decode()
        idle_sockets, idle_files = fd_count(tutti.pid)
        idle_held = held(load.metrics(http))
        load.log(f"tutti pid {tutti.pid} up, {len(guids)} rooms; idle: {idle_sockets} sockets, "
                 f"{idle_files} other descriptors")

        def rest_step():
            request(http, "GET", "/api/v1/conferences?limit=50", rest_auth)
            room = random.choice(rest_ids)
            members = json.loads(request(http, "GET", f"/api/v1/conferences/{room}/members", rest_auth))
            # A member joining or leaving this instant may have no quality yet or any more.
            if len(members["items"]) > 2 and all(m.get("quality") is None for m in members["items"]):
                raise RuntimeError("connected members without quality")
            body = json.dumps({"name": f"Soak {random.randrange(1000)}"}).encode()
            request(http, "PATCH", f"/api/v1/conferences/{room}",
                    {**rest_auth, "Content-Type": "application/json"}, body)

        def access_step():
            guid = random.choice(guids)
            q = urllib.parse.urlencode({"customer": uid, "key": key, "type": "json", "conferenceUID": guid})
            value = json.loads(request(http, "GET", f"/_access/getConference?{q}"))
            if value.get("code") != "0":
                raise RuntimeError(f"/_access getConference: {value}")
            token = value["value"]["securityToken"]
            q = urllib.parse.urlencode({"securityToken": token, "type": "json", "conferenceUID": guid})
            answer = json.loads(request(http, "GET", f"/_conference/getConference?{q}"))
            if answer.get("code") != "0":
                raise RuntimeError(f"/_conference getConference: {answer}")

        def aculab_step():
            listed = json.loads(request(http, "GET", "/conference_list", {"Authorization": f"Basic {basic}"}))
            if not isinstance(listed, list) or len(listed) < args.rooms:
                raise RuntimeError(f"conference_list: {str(listed)[:200]}")

        def control_step():
            load.control_session(control, password, ["LISTCONF", f"LISTUSER,{random.choice(guids)}"], 10)

        period = args.api_period
        traffic = []
        if period > 0:
            traffic = [Traffic("rest", period, rest_step), Traffic("access+conductor", period, access_step),
                       Traffic("aculab", period, aculab_step)]
        if args.control_period > 0:
            traffic.append(Traffic("4011", args.control_period, control_step))

        with open(workdir / "calls.csv", "w") as f:
            f.write("SEQUENTIAL\n")
            for i in range(total_calls):
                f.write(f"{numbers[i % args.rooms]};{1 if (i // args.rooms) % 5 < 2 else 0};\n")
        stat = workdir / "sipp.stat.csv"
        sipp = subprocess.Popen(
            ["sipp", "-sf", str(load.SCENARIO), "-inf", "calls.csv", "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-mp", str(sipp_media), "-p", str(sipp_port), "-m", str(total_calls), "-l", str(args.callers),
             "-r", f"{rate:.3f}", "-d", str(int(args.hold * 1000)), "-timeout", f"{int(seconds + args.hold + 120)}s",
             "-timeout_error", "-nostdin", "-aa", "-trace_stat", "-stf", stat.name, "-fd", "5",
             "-trace_err", "-error_file", "sipp.errors.log", f"127.0.0.1:{sip_port}"],
            cwd=workdir, stdout=open(workdir / "sipp.stdout", "wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=load._die_with_parent)
        for t in traffic:
            t.start()

        started = time.monotonic()
        # The checks start once the room has filled up (one hold) and settled.
        warm_until = started + max(seconds * args.warmup, args.hold + 20)
        load_until = started + seconds
        rss_after: list[float] = []
        warm_metrics = None
        last = {}
        while time.monotonic() < load_until:
            time.sleep(5)
            if tutti.poll() is not None:
                raise RuntimeError(f"tutti exited {tutti.returncode} under load")
            m = load.metrics(http)
            status = load.proc_status(tutti.pid)
            rss = status.get("VmRSS", 0) / 1024
            fds = sum(fd_count(tutti.pid))
            now = time.monotonic()
            if now >= warm_until:
                if warm_metrics is None:
                    warm_metrics = m
                rss_after.append(rss)
            late = ticks = 0
            if warm_metrics:
                name = "tutti_mixer_tick_lateness_seconds"
                ticks = m.get(name + "_count", 0) - warm_metrics.get(name + "_count", 0)
                on_time = (m.get(f'{name}_bucket{{le="0.005000"}}', 0)
                           - warm_metrics.get(f'{name}_bucket{{le="0.005000"}}', 0))
                late = ticks - on_time
            anon, file = status.get("RssAnon", 0) / 1024, status.get("RssFile", 0) / 1024
            timeline.write(f"{now - started:.0f},{int(m.get('tutti_active_callers', -1))},{rss:.1f},"
                           f"{anon:.1f},{file:.1f},{fds},"
                           f"{int(late)},{int(ticks)}\n")
            timeline.flush()
            last = {"m": m, "late": late, "ticks": ticks}
        for t in traffic:
            t.stopping.set()
        for t in traffic:
            t.join(timeout=15)

        # The checks on the window after warm-up.
        if rss_after:
            spread = (max(rss_after) - min(rss_after)) / min(rss_after)
            check("RSS flat after warm-up", spread <= args.rss_growth,
                  f"{min(rss_after):.1f}-{max(rss_after):.1f} MB over {len(rss_after)} samples "
                  f"({100 * spread:.1f} %, limit {100 * args.rss_growth:g} %)")
        m = last.get("m", {})
        skipped = m.get("tutti_mixer_ticks_skipped_total", 0) - (warm_metrics or {}).get(
            "tutti_mixer_ticks_skipped_total", 0)
        ticks, late = last.get("ticks", 0), last.get("late", 0)
        share = late / ticks if ticks else 1.0
        check("mixer ticks on time", share <= args.late_share and skipped == 0,
              f"{int(late)} of {int(ticks)} ticks later than 5 ms ({100 * share:.3f} %, limit "
              f"{100 * args.late_share:g} %), {int(skipped)} skipped; worst since start "
              f"{1000 * m.get('tutti_mixer_tick_lateness_max_seconds', 0):.1f} ms; "
              f"{tick_work(m, warm_metrics or {})}")
        for t in traffic:
            check(f"API traffic: {t.name}", t.failed == 0 and t.ok > 0,
                  f"{t.ok} answered, {t.failed} failed {t.errors}")

        # The end: SIPp finishes its calls (no new ones after -m), everyone leaves.
        load.log("load window over; waiting for the last calls to end")
        try:
            sipp.wait(timeout=args.hold + 90)
        except subprocess.TimeoutExpired:
            load.log("SIPp still running; stopping it")
        sipp_code = load.stop(sipp, "SIPp", 10)
        st = load.sipp_stats(stat)
        completed = int(st.get("SuccessfulCall(C)", "0") or 0)
        failed = int(st.get("FailedCall(C)", "0") or 0)
        check("SIPp calls", failed == 0 and completed > 0 and sipp_code == 0,
              f"{completed} completed, {failed} failed, SIPp exit {sipp_code}")
        deadline = time.monotonic() + 30
        rtp_high = rtp_base + rtp_len - 1
        while time.monotonic() < deadline:
            callers = load.metrics(http).get("tutti_active_callers", -1)
            sockets, files = fd_count(tutti.pid)
            ports = rtp_ports_bound(rtp_base, rtp_high)
            if callers == 0 and sockets <= idle_sockets and ports == 0:
                break
            time.sleep(1)
        check("back to idle", callers == 0 and sockets <= idle_sockets and ports == 0
              and files <= idle_files + 24,
              f"{int(callers)} callers connected, {ports} RTP ports bound, {sockets} sockets "
              f"(idle {idle_sockets}), {files} other descriptors (idle {idle_files}; the database "
              f"pool may have grown to its 8 connections)")
        # Everything a call makes is gone once it has ended: SIP transactions
        # linger 64*T1 (32 s) for retransmissions, the rest at once.
        deadline = time.monotonic() + 45
        while True:
            now_held = held(load.metrics(http))
            leftover = {k: v for k, v in now_held.items() if v > idle_held.get(k, 0)}
            if not leftover or time.monotonic() > deadline:
                break
            time.sleep(1)
        check("nothing held after the calls", not leftover,
              ", ".join(f"{k} {v:g} (idle {idle_held.get(k, 0):g})" for k, v in now_held.items()))
        code = load.stop(tutti, "tutti", 30)
        check("tutti stops cleanly", code == 0, f"exit {code}")

        db = sqlite3.connect(data / "tutti.db")
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        stored = one("SELECT COUNT(*) FROM callers")
        open_rows = one("SELECT COUNT(*) FROM callers WHERE active = 1 OR end_time IS NULL")
        backwards = one("SELECT COUNT(*) FROM callers WHERE julianday(end_time) < julianday(start_time)")
        lengths = db.execute(
            "SELECT MIN(d), MAX(d) FROM (SELECT (julianday(end_time) - julianday(start_time)) * 86400 AS d "
            "FROM callers)").fetchone()
        active_calls = one("SELECT COUNT(*) FROM calls WHERE status = 'ACTIVE' OR actual_end IS NULL")
        integrity = one("PRAGMA integrity_check")
        db.close()
        check("stored callers match the calls", stored == completed and open_rows == 0 and backwards == 0,
              f"{stored} callers stored for {completed} calls, {open_rows} left open, {backwards} ending "
              f"before they start")
        low, high = lengths if lengths[0] is not None else (0, 0)
        check("stored durations", abs(low - args.hold) <= 3 and abs(high - args.hold) <= 3,
              f"{low:.1f}-{high:.1f} s for calls of {args.hold:g} s")
        check("no call session left open", active_calls == 0 and integrity == "ok",
              f"{active_calls} open; integrity_check {integrity}")
    except KeyboardInterrupt as e:
        check("run finished", False, f"interrupted ({e})")
    except Exception as e:  # a broken run is a failed check, with its reason
        check("run finished", False, f"{type(e).__name__}: {e}")
    finally:
        for t in traffic:
            t.stopping.set()
        load.stop(sipp, "SIPp", 5)
        load.stop(tutti, "tutti", 30)
        timeline.close()
        tutti_log.close()

    ok = bool(checks) and all(passed for _, passed, _ in checks)
    summary = {"minutes": args.minutes, "callers": args.callers, "rooms": args.rooms, "hold_s": args.hold,
               "binary": str(binary), "ok": ok, "checks": [{"name": n, "ok": o, "detail": d} for n, o, d in checks]}
    with open(workdir / "soak.json", "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nsoak {'PASSED' if ok else 'FAILED'}: {sum(o for _, o, _ in checks)} of {len(checks)} checks")
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        load.log(f"logs kept in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
