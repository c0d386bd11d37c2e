//! tutti-callers: a load generator that listens. It places N calls with real
//! SIP (tutti's own user agent) to a conference server, sends each talker's
//! tone (and once a second a click) as G.711 RTP, and measures what every
//! caller receives: packets, losses, RFC 3550 jitter, how late each packet
//! comes against the ideal 20 ms grid (by the kernel's arrival stamps), the
//! click's delay through the server, and with a Goertzel filter whether each
//! caller hears the talkers of its room and not itself.
//!
//! ```text
//! tutti-callers --target 'sip:{number}@127.0.0.1:5060' --numbers 8000-8199 \
//!     --calls 1000 --talkers 2 --hold 20 --json result.json
//! ```
//!
//! Calls go round-robin over the numbers; in each room the first `--talkers`
//! callers talk (distinct tones), the first of them also clicks, and the rest
//! send silence. Used by scripts/load/run.py (`--callers tutti-callers`);
//! scripts/load/README.md says how to point it at another server.

#![recursion_limit = "256"]

mod media;
mod stats;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tutti_sip::sdp::{Codec, LocalMedia, MediaDirection, MediaPolicy, Negotiated, SrtpPolicy};
use tutti_sip::ua::{CallId, CallProgress, PlaceCall, SipConfig, SipUa, UaEvent};

use media::{CallMedia, Command, Report, Role, Shared, TONES};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Places N SIP calls into conference rooms and measures what each caller hears."
)]
struct Args {
    /// Request-URI to dial, with `{number}` for the room's number.
    #[arg(long, default_value = "sip:{number}@127.0.0.1:5060")]
    target: String,
    /// Room numbers: a comma list, each a number or a range `first-last`.
    #[arg(long, default_value = "8000")]
    numbers: String,
    /// Calls to place, round-robin over the numbers.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Talkers per room (at most 5); the first also clicks once a second.
    #[arg(long, default_value_t = 2)]
    talkers: usize,
    /// No clicks (the latency is then not measured).
    #[arg(long)]
    no_click: bool,
    /// New calls per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds each call may take to connect.
    #[arg(long, default_value_t = 30.0)]
    setup_timeout: f64,
    /// Seconds after the last call connected before measuring.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 20.0)]
    hold: f64,
    /// Media threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Calls sharing one UDP socket.
    #[arg(long, default_value_t = 32)]
    calls_per_socket: usize,
    /// The codec the calls offer.
    #[arg(long, value_enum, default_value_t = media::Wire::Pcmu)]
    codec: media::Wire,
    /// Offer RFC 3389 comfort noise beside G.711: a caller hearing silence then
    /// gets a comfort-noise packet every 500 ms (counted as `comfort_noise`,
    /// not as packets or losses) instead of a packet every 20 ms.
    #[arg(long)]
    comfort_noise: bool,
    /// Silent callers send as a phone with voice activity detection does: an
    /// RFC 3389 comfort-noise packet every 500 ms and nothing between (with
    /// --comfort-noise, where the server agreed to it).
    #[arg(long)]
    vad: bool,
    /// Silent callers send as an Opus phone in DTX does: a TOC-only packet
    /// every 400 ms and nothing between (with --codec opus).
    #[arg(long)]
    opus_dtx: bool,
    /// Local address for SIP and RTP.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    local: IpAddr,
    /// Writes the results as one JSON object to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One planned call and how it went.
struct Call {
    room: usize,
    role: Role,
    socket: usize,
    id: Option<CallId>,
    placed: Option<Instant>,
    connected: bool,
    negotiated: Option<Negotiated>,
    up_after: Option<Duration>,
    up: bool,
    failed: Option<String>,
    ended_early: bool,
}

fn parse_numbers(spec: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.parse().map_err(|_| format!("not a number: {a}"))?,
                    b.parse().map_err(|_| format!("not a number: {b}"))?,
                );
                if b < a || b - a > 100_000 {
                    return Err(format!("bad range {part}"));
                }
                out.extend((a..=b).map(|n| n.to_string()));
            }
            None => out.push(part.to_owned()),
        }
    }
    if out.is_empty() {
        return Err("no numbers".into());
    }
    Ok(out)
}

fn main() {
    let args = Args::parse();
    let numbers = match parse_numbers(&args.numbers) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("tutti-callers: --numbers: {why}");
            std::process::exit(2);
        }
    };
    if args.talkers > TONES.len() || args.threads == 0 || args.calls_per_socket == 0 {
        eprintln!(
            "tutti-callers: --talkers at most {}, --threads and --calls-per-socket at least 1",
            TONES.len()
        );
        std::process::exit(2);
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match runtime.block_on(run(args, numbers)) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(why) => {
            eprintln!("tutti-callers: {why}");
            std::process::exit(2);
        }
    }
}

async fn run(args: Args, numbers: Vec<String>) -> Result<bool, String> {
    let rooms = numbers.len().min(args.calls.max(1));
    if args.opus_dtx && args.codec != media::Wire::Opus {
        return Err("--opus-dtx needs --codec opus".into());
    }
    if args.vad && !args.comfort_noise {
        return Err("--vad needs --comfort-noise".into());
    }
    let shared = Arc::new(Shared::new(rooms, args.codec, args.opus_dtx, args.vad));
    let socket_count = args.calls.div_ceil(args.calls_per_socket).max(1);
    let sockets =
        media::bind_sockets(args.local, socket_count).map_err(|e| format!("RTP sockets: {e}"))?;
    let ports: Vec<u16> =
        sockets.iter().map(|s| s.local_addr().map(|a| a.port()).unwrap_or(0)).collect();

    // Socket k belongs to thread k % threads, as the k-th of its sockets.
    let mut per_thread: Vec<Vec<std::net::UdpSocket>> =
        (0..args.threads).map(|_| Vec::new()).collect();
    for (k, socket) in sockets.into_iter().enumerate() {
        per_thread[k % args.threads].push(socket);
    }
    let mut commands = Vec::new();
    let mut threads = Vec::new();
    for (t, sockets) in per_thread.into_iter().enumerate() {
        let (tx, rx) = std_mpsc::channel();
        commands.push(tx);
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("media-{t}"))
                .spawn(move || media::run(shared, sockets, rx))
                .map_err(|e| format!("thread: {e}"))?,
        );
    }

    let mut calls: Vec<Call> = (0..args.calls)
        .map(|i| {
            let place = i / rooms;
            let talker = place < args.talkers;
            Call {
                room: i % rooms,
                role: Role {
                    tone: talker.then_some(place),
                    clicker: place == 0 && talker && !args.no_click,
                },
                socket: i / args.calls_per_socket,
                id: None,
                placed: None,
                connected: false,
                negotiated: None,
                up_after: None,
                up: false,
                failed: None,
                ended_early: false,
            }
        })
        .collect();

    let mut config = SipConfig::new(SocketAddr::new(args.local, 0), args.local);
    config.max_calls = args.calls + 16;
    config.user_agent = "tutti-callers".into();
    config.media_policy = MediaPolicy {
        codecs: vec![match args.codec {
            media::Wire::Pcmu => Codec::Pcmu,
            media::Wire::Opus => Codec::Opus,
        }],
        telephone_event: false,
        comfort_noise: args.comfort_noise,
        srtp: SrtpPolicy::Disabled,
        ..MediaPolicy::default()
    };
    let (ua, mut events) = SipUa::start(config).await.map_err(|e| format!("SIP: {e}"))?;
    let mut by_id: HashMap<CallId, usize> = HashMap::new();
    let threads_n = args.threads;

    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let mut next_call = 0;
    let mut next_at = Instant::now();
    let setup_timeout = Duration::from_secs_f64(args.setup_timeout);
    let mut settled_at: Option<Instant> = None;
    eprintln!("tutti-callers: {} calls to {} room(s) at {}/s", args.calls, rooms, args.rate);

    // Ramp: place calls at the rate until each is up or has failed.
    loop {
        let now = Instant::now();
        while next_call < calls.len() && next_at <= now {
            let call = &mut calls[next_call];
            let place = PlaceCall {
                target: args.target.replace("{number}", &numbers[call.room]),
                from_user: Some(format!("caller{next_call}")),
                from_display_name: Some(format!("Caller {next_call}")),
                local: LocalMedia {
                    address: args.local,
                    rtp_port: ports[call.socket],
                    session_id: next_call as u64 + 1,
                    session_version: 1,
                    direction: MediaDirection::SendRecv,
                },
                headers: Vec::new(),
            };
            call.placed = Some(now);
            match ua.place_call(place).await {
                Ok(id) => {
                    call.id = Some(id);
                    by_id.insert(id, next_call);
                }
                Err(e) => call.failed = Some(format!("not placed: {e}")),
            }
            next_call += 1;
            next_at += interval;
        }
        for call in calls.iter_mut().filter(|c| !c.up && c.failed.is_none()) {
            if call.placed.is_some_and(|p| now.duration_since(p) > setup_timeout) {
                call.failed = Some("no answer in time".into());
            }
        }
        let resolved = calls.iter().all(|c| c.up || c.failed.is_some());
        if next_call == calls.len() && resolved {
            break;
        }
        let wait = if next_call < calls.len() {
            next_at.saturating_duration_since(now)
        } else {
            Duration::from_millis(200)
        };
        if let Ok(Some(event)) = tokio::time::timeout(wait, events.recv()).await {
            handle(event, &mut calls, &by_id, &commands, threads_n, &shared);
        }
    }
    let up = calls.iter().filter(|c| c.up).count();
    eprintln!(
        "tutti-callers: {up} of {} up after {:.1} s; settling {} s",
        calls.len(),
        started.elapsed().as_secs_f64(),
        args.settle
    );

    // Settle, then measure.
    for (phase, seconds) in [("settle", args.settle), ("measure", args.hold)] {
        if phase == "measure" {
            shared.measuring.store(true, Ordering::Relaxed);
            settled_at = Some(Instant::now());
        }
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(Some(event)) = tokio::time::timeout(left, events.recv()).await {
                handle(event, &mut calls, &by_id, &commands, threads_n, &shared);
            }
        }
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let window = settled_at.map_or(Duration::ZERO, |s| s.elapsed());
    shared.stop.store(true, Ordering::Relaxed);
    let mut report = Report::default();
    for thread in threads {
        report.merge(thread.join().map_err(|_| "a media thread panicked".to_string())?);
    }

    // Hang up, and wait for the server to confirm.
    let live: Vec<CallId> =
        calls.iter().filter(|c| c.up && !c.ended_early).filter_map(|c| c.id).collect();
    for id in &live {
        let _ = ua.hangup(*id).await;
    }
    let mut open: std::collections::HashSet<CallId> = live.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !open.is_empty() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(UaEvent::Hangup { call, .. })) => {
                open.remove(&call);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    ua.shutdown().await;

    let summary = summarize(&args, rooms, &calls, &report, window, open.len());
    println!("{}", table_row(&summary));
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{summary}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(summary["ok"].as_bool().unwrap_or(false))
}

fn handle(
    event: UaEvent,
    calls: &mut [Call],
    by_id: &HashMap<CallId, usize>,
    commands: &[std_mpsc::Sender<Command>],
    threads: usize,
    shared: &Shared,
) {
    let index = match &event {
        UaEvent::Progress { call, .. }
        | UaEvent::MediaChanged { call, .. }
        | UaEvent::Hangup { call, .. } => match by_id.get(call) {
            Some(&i) => i,
            None => return,
        },
        _ => return,
    };
    let call = &mut calls[index];
    match event {
        UaEvent::Progress { state: CallProgress::Connected, .. } => call.connected = true,
        UaEvent::Progress { state: CallProgress::Failed(why), .. } => {
            call.failed.get_or_insert(why);
        }
        UaEvent::Progress { state: CallProgress::Busy, .. } => {
            call.failed.get_or_insert("busy".into());
        }
        UaEvent::MediaChanged { negotiated, .. } => call.negotiated = Some(negotiated),
        UaEvent::Hangup { .. } => {
            if call.up {
                call.ended_early = true;
                let _ = commands[call.socket % threads].send(Command::Remove(index));
            } else {
                call.failed.get_or_insert("hung up before it was up".into());
            }
            return;
        }
        _ => {}
    }
    if call.up || !call.connected || call.failed.is_some() {
        return;
    }
    let Some(negotiated) = &call.negotiated else { return };
    if !matches!(
        (negotiated.codec, shared.wire),
        (Codec::Pcmu, media::Wire::Pcmu) | (Codec::Opus, media::Wire::Opus)
    ) {
        call.failed = Some(format!("codec {:?}, not the one offered", negotiated.codec));
        return;
    }
    call.up = true;
    call.up_after = call.placed.map(|p| p.elapsed());
    if let Some(tone) = call.role.tone {
        shared.talkers[call.room].fetch_or(1 << tone, Ordering::Relaxed);
    }
    let media = CallMedia {
        index,
        room: call.room,
        role: call.role,
        socket: call.socket / threads,
        remote: negotiated.remote_rtp,
        send_pt: negotiated.payload_type,
        recv_pt: negotiated.recv_payload_type,
        recv_cn: negotiated.recv_comfort_noise,
        send_cn: negotiated.comfort_noise,
    };
    let _ = commands[call.socket % threads].send(Command::Add(media));
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn summarize(
    args: &Args,
    rooms: usize,
    calls: &[Call],
    r: &Report,
    window: Duration,
    not_hung_up: usize,
) -> serde_json::Value {
    let up = calls.iter().filter(|c| c.up).count();
    let failed = calls.len() - up;
    let ended_early = calls.iter().filter(|c| c.ended_early).count();
    let mut reasons: HashMap<&str, usize> = HashMap::new();
    for call in calls {
        if let Some(why) = &call.failed {
            *reasons.entry(why.as_str()).or_default() += 1;
        }
    }
    let mut setup: Vec<f64> =
        calls.iter().filter_map(|c| c.up_after).map(|d| d.as_secs_f64() * 1000.0).collect();
    setup.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| -> Option<f64> {
        (!v.is_empty())
            .then(|| round(v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1], 2))
    };
    let q = |h: &stats::Histogram, at: f64| h.quantile_ms(at).map(|v| round(v, 2));
    let secs = window.as_secs_f64().max(1e-9);
    let listening = (up - ended_early).max(1) as f64;
    let mut jitter = r.jitter_ms.clone();
    jitter.sort_by(f64::total_cmp);
    let expected = r.packets + r.lost;
    let pairs = r.pairs_heard + r.pairs_missed;
    // Every other member of a clicker's room should find each click.
    let mut members = vec![0u64; rooms];
    for call in calls.iter().filter(|c| c.up && !c.ended_early) {
        members[call.room] += 1;
    }
    let clicking_rooms: Vec<usize> =
        calls.iter().filter(|c| c.up && !c.ended_early && c.role.clicker).map(|c| c.room).collect();
    let listeners_per_click = if clicking_rooms.is_empty() {
        0.0
    } else {
        clicking_rooms.iter().map(|&room| members[room].saturating_sub(1)).sum::<u64>() as f64
            / clicking_rooms.len() as f64
    };
    let clicks_expected = (r.clicks_sent as f64 * listeners_per_click).round() as u64;
    let lost_pct = if expected == 0 { 0.0 } else { 100.0 * r.lost as f64 / expected as f64 };
    let heard_pct =
        if pairs == 0 { None } else { Some(round(100.0 * r.pairs_heard as f64 / pairs as f64, 2)) };
    let ok = failed == 0
        && ended_early == 0
        && not_hung_up == 0
        && r.packets + r.comfort_noise > 0
        && r.self_heard == 0
        && r.own_clicks_heard == 0
        && heard_pct.is_none_or(|h| h >= 99.0);
    json!({
        "calls": calls.len(),
        "rooms": rooms,
        "talkers_per_room": args.talkers,
        "up": up,
        "failed": failed,
        "failures": reasons,
        "ended_early": ended_early,
        "not_hung_up": not_hung_up,
        "setup_ms_p50": pct(&setup, 0.5),
        "setup_ms_p99": pct(&setup, 0.99),
        "window_s": round(secs, 1),
        "packets": r.packets,
        "pps_per_call": round(r.packets as f64 / secs / listening, 2),
        "comfort_noise": r.comfort_noise,
        "lost": r.lost,
        "lost_pct": round(lost_pct, 3),
        "late_or_duplicate": r.late_or_duplicate,
        "foreign": r.foreign,
        "jitter_ms_p50": pct(&jitter, 0.5),
        "jitter_ms_max": jitter.last().map(|j| round(*j, 2)),
        "lateness_ms_p50": q(&r.lateness, 0.5),
        "lateness_ms_p99": q(&r.lateness, 0.99),
        "lateness_ms_max": round(r.lateness.max_ms(), 2),
        "late_over_10ms": r.lateness.above(Duration::from_millis(10)),
        "clicks_sent": r.clicks_sent,
        "clicks_expected": clicks_expected,
        "clicks_found": r.clicks_found,
        "own_clicks_heard": r.own_clicks_heard,
        "click_ms_p50": q(&r.click_latency, 0.5),
        "click_ms_p99": q(&r.click_latency, 0.99),
        "click_ms_max": (r.click_latency.count() > 0).then(|| round(r.click_latency.max_ms(), 2)),
        "heard_checks": pairs,
        "heard_pct": heard_pct,
        "weakest_heard": r.weakest_heard.map(|w| round(w, 0)),
        "self_checks": r.self_checked,
        "self_heard": r.self_heard,
        "loudest_self": round(r.loudest_self, 0),
        "send_late_ms_p99": q(&r.send_lateness, 0.99),
        "send_late_ms_max": round(r.send_lateness.max_ms(), 2),
        "send_ticks_skipped": r.ticks_skipped,
        "send_errors": r.send_errors,
        "decode_errors": r.decode_errors,
        "codec": format!("{:?}", args.codec).to_lowercase(),
        "ok": ok,
    })
}

/// One Markdown table row: calls, rooms, up, lost %, jitter, lateness,
/// click latency, heard, self.
fn table_row(s: &serde_json::Value) -> String {
    let f = |k: &str| match &s[k] {
        serde_json::Value::Null => "-".to_string(),
        v => v.to_string(),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} / {} / {} | {} / {} | {} | {} | {} |",
        f("calls"),
        f("rooms"),
        f("up"),
        f("pps_per_call"),
        f("lost_pct"),
        f("lateness_ms_p50"),
        f("lateness_ms_p99"),
        f("lateness_ms_max"),
        f("click_ms_p50"),
        f("click_ms_p99"),
        f("heard_pct"),
        f("self_heard"),
        if s["ok"].as_bool() == Some(true) { "ok" } else { "PROBLEMS" },
    )
}

#[cfg(test)]
mod tests {
    use super::parse_numbers;

    #[test]
    fn numbers_are_lists_and_ranges() {
        assert_eq!(parse_numbers("8000-8002, 9000").expect("ok"), ["8000", "8001", "8002", "9000"]);
        assert!(parse_numbers("").is_err());
        assert!(parse_numbers("9-1").is_err());
        assert!(parse_numbers("a-b").is_err());
    }
}
