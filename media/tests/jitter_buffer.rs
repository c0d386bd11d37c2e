//! Jitter buffer scenarios on a simulated clock: a sender produces 20 ms packets, the
//! network delivers them at chosen times (late, reordered, duplicated, lost), and a
//! mixer tick pops one frame every 20 ms. Each payload carries the sender's frame index
//! so the tests can check exactly what was played.

use tutti_media::jitter::{
    ConcealReason, DRIFT_SLACK_FRAMES, IncomingPacket, JitterBuffer, JitterConfig, JitterError,
    Playout, PushOutcome, ResyncReason, SeqNo, Ssrc, UNDERRUN_CONCEAL_FRAMES,
};

const FRAME_MS: u64 = 20;
const FRAME_UNITS: u32 = 160;
/// The mixer ticks at 20 ms boundaries shifted by this phase, so arrivals and ticks
/// never coincide by accident.
const TICK_PHASE_MS: u64 = 7;

#[derive(Debug, Clone, Copy)]
struct Arrival {
    at_ms: u64,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// The sender's frame index, carried in the payload.
    index: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Played(u32),
    Lost,
    Underrun,
    Empty,
}

/// A stream of `count` packets from one SSRC, sent every `interval_ms` (fractional to
/// model a drifting clock), each delayed by `delay(index)` ms.
fn stream(
    count: u32,
    first_seq: u16,
    interval_ms: f64,
    mut delay: impl FnMut(u32) -> f64,
) -> Vec<Arrival> {
    (0..count)
        .map(|index| {
            let sent = f64::from(index) * interval_ms;
            Arrival {
                at_ms: (sent + delay(index)).round() as u64,
                ssrc: 0x1234,
                seq: first_seq.wrapping_add(index as u16),
                timestamp: 90_000u32.wrapping_add(index * FRAME_UNITS),
                index,
            }
        })
        .collect()
}

struct Run {
    outputs: Vec<Out>,
    /// (tick time, depth before the pop, target frames) for every tick.
    depths: Vec<(u64, usize, usize)>,
    outcomes: Vec<PushOutcome>,
}

/// Feeds the arrivals (sorted by time, stable for equal times) and ticks until `end_ms`.
fn run(buffer: &mut JitterBuffer, mut arrivals: Vec<Arrival>, end_ms: u64) -> Run {
    arrivals.sort_by_key(|a| a.at_ms);
    let mut pending = arrivals.into_iter().peekable();
    let mut result = Run { outputs: Vec::new(), depths: Vec::new(), outcomes: Vec::new() };
    let mut tick = TICK_PHASE_MS;
    while tick < end_ms {
        while let Some(a) = pending.next_if(|a| a.at_ms <= tick) {
            let payload = a.index.to_be_bytes();
            let packet = IncomingPacket {
                ssrc: Ssrc(a.ssrc),
                seq: a.seq,
                timestamp: a.timestamp,
                payload: &payload,
            };
            result.outcomes.push(buffer.push(packet, a.at_ms).expect("payload fits"));
        }
        let depth = buffer.depth_frames();
        let target = (buffer.target_delay_ms() / 20) as usize;
        result.depths.push((tick, depth, target));
        let out = match buffer.pop(tick) {
            Playout::Frame(frame) => {
                let bytes: [u8; 4] = frame.payload.try_into().expect("4-byte payload");
                Out::Played(u32::from_be_bytes(bytes))
            }
            Playout::Conceal(ConcealReason::Lost) => Out::Lost,
            Playout::Conceal(ConcealReason::Underrun) => Out::Underrun,
            Playout::Empty => Out::Empty,
        };
        result.outputs.push(out);
        tick += FRAME_MS;
    }
    result
}

fn played(outputs: &[Out]) -> Vec<u32> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Out::Played(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn count(outputs: &[Out], wanted: Out) -> usize {
    outputs.iter().filter(|&&o| o == wanted).count()
}

fn buffer() -> JitterBuffer {
    JitterBuffer::new(JitterConfig::default()).expect("default config is valid")
}

/// A deterministic pseudo-random generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn a_clean_stream_plays_every_frame_in_order_at_minimum_delay() {
    let mut jb = buffer();
    let r = run(&mut jb, stream(500, 1000, 20.0, |_| 30.0), 10_200);
    assert_eq!(played(&r.outputs), (0..500).collect::<Vec<_>>());
    assert_eq!(jb.target_delay_ms(), 20);
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late, stats.duplicates), (0, 0, 0));
    assert_eq!(stats.played, 500);
    // Before the first packet there is nothing to conceal.
    assert_eq!(r.outputs[0], Out::Empty);
}

#[test]
fn reordered_packets_play_in_sequence() {
    let mut jb = buffer();
    // Every odd packet overtakes its even predecessor by 12 ms, and every 7th packet
    // arrives 25 ms after its send time instead of 10.
    let arrivals = stream(400, 0, 20.0, |i| match (i % 2, i % 7) {
        (_, 0) => 25.0,
        (0, _) => 22.0,
        _ => 10.0,
    });
    let r = run(&mut jb, arrivals, 9_000);
    assert_eq!(played(&r.outputs), (0..400).collect::<Vec<_>>());
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late), (0, 0), "{stats:?}");
}

#[test]
fn reordering_of_the_very_first_packets_is_absorbed() {
    let mut jb = buffer();
    // Packet 1 arrives before packet 0: the buffer must still start at packet 0.
    let arrivals = stream(50, 500, 20.0, |i| if i == 0 { 15.0 } else { 5.0 });
    let r = run(&mut jb, arrivals, 1_500);
    assert_eq!(played(&r.outputs), (0..50).collect::<Vec<_>>());
}

#[test]
fn duplicates_are_dropped_whether_buffered_or_already_played() {
    let mut jb = buffer();
    let mut arrivals = stream(300, 7, 20.0, |_| 10.0);
    // A second copy of every packet 3 ms later (still buffered), and a third copy of
    // every 10th packet 150 ms later (already played).
    let copies: Vec<Arrival> = arrivals
        .iter()
        .map(|a| Arrival { at_ms: a.at_ms + 3, ..*a })
        .chain(
            arrivals
                .iter()
                .filter(|a| a.index % 10 == 0)
                .map(|a| Arrival { at_ms: a.at_ms + 150, ..*a }),
        )
        .collect();
    arrivals.extend(copies);
    let r = run(&mut jb, arrivals, 7_000);
    assert_eq!(played(&r.outputs), (0..300).collect::<Vec<_>>());
    let stats = jb.stats();
    assert_eq!(stats.duplicates, 300 + 30, "{stats:?}");
    assert_eq!(stats.late, 0, "copies of played packets are duplicates, not late");
    assert_eq!(r.outcomes.iter().filter(|&&o| o == PushOutcome::Duplicate).count(), 330);
}

#[test]
fn lost_packets_are_concealed_in_their_place() {
    let mut jb = buffer();
    let mut arrivals = stream(300, 65_000, 20.0, |_| 10.0);
    arrivals.retain(|a| a.index % 10 != 5);
    // The last packet arrives at 5,990 ms and plays two ticks later.
    let r = run(&mut jb, arrivals, 6_040);
    let expected: Vec<u32> = (0..300).filter(|i| i % 10 != 5).collect();
    assert_eq!(played(&r.outputs), expected);
    assert_eq!(jb.stats().lost, 30);
    // At one frame of delay the first loss cannot be told from lateness until the next
    // packet arrives: the buffer runs dry once, which adds the one frame of depth that
    // lets every later loss be concealed in place, between its neighbours.
    assert_eq!(count(&r.outputs, Out::Underrun), 1);
    let mut losses = r.outputs.iter().enumerate().filter(|&(_, &o)| o == Out::Lost).map(|(i, _)| i);
    let first = losses.next().unwrap();
    assert_eq!(
        &r.outputs[first - 2..first + 2],
        [Out::Played(4), Out::Underrun, Out::Lost, Out::Played(6)]
    );
    for (n, i) in losses.enumerate() {
        let before = 10 * (n as u32 + 1) + 4;
        assert_eq!(r.outputs[i - 1], Out::Played(before));
        assert_eq!(r.outputs[i + 1], Out::Played(before + 2));
    }
}

#[test]
fn a_packet_arriving_after_its_turn_is_discarded_and_counted_late() {
    let mut jb = buffer();
    // Packet 100 is held up for 300 ms; everything else arrives after 10 ms.
    let arrivals = stream(300, 0, 20.0, |i| if i == 100 { 300.0 } else { 10.0 });
    let r = run(&mut jb, arrivals, 7_000);
    let got = played(&r.outputs);
    assert!(!got.contains(&100), "the late packet must not be played");
    assert_eq!(got.len(), 299);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "still in order");
    let stats = jb.stats();
    assert_eq!(stats.late, 1);
    assert_eq!(stats.lost, 1);
    assert_eq!(r.outcomes.iter().filter(|&&o| o == PushOutcome::Late).count(), 1);
}

#[test]
fn sequence_numbers_wrap_around_without_loss() {
    let mut jb = buffer();
    let first_seq = 65_436; // wraps after 100 packets
    let r = run(&mut jb, stream(300, first_seq, 20.0, |_| 10.0), 7_000);
    assert_eq!(played(&r.outputs), (0..300).collect::<Vec<_>>());
    assert_eq!(jb.stats().lost, 0);
    assert_eq!(jb.stats().resyncs, 0);
}

#[test]
fn extended_sequence_numbers_keep_counting_across_the_wrap() {
    let mut jb = buffer();
    let mut seqs = Vec::new();
    for (i, seq) in (65_530u16..=65_535).chain(0..6).enumerate() {
        let payload = [0u8; 4];
        let packet = IncomingPacket {
            ssrc: Ssrc(1),
            seq,
            timestamp: i as u32 * FRAME_UNITS,
            payload: &payload,
        };
        assert_eq!(jb.push(packet, i as u64 * 20), Ok(PushOutcome::Buffered));
        if let Playout::Frame(frame) = jb.pop(i as u64 * 20 + 5) {
            seqs.push(frame.seq);
        }
    }
    assert_eq!(seqs.len(), 12);
    assert!(seqs.windows(2).all(|w| w[1].value() == w[0].value() + 1));
    assert_eq!(seqs[5].wire(), 65_535);
    assert_eq!(seqs[6].wire(), 0);
    let base = seqs[0];
    assert_eq!(SeqNo::extend(65_535, seqs[7]), seqs[5], "an old number extends backwards");
    assert_eq!(SeqNo::extend(65_530, base), base);
}

/// A sender whose clock runs 0.5 % fast delivers one extra frame every 4 s. Without
/// drift handling the delay would grow by 15 frames (300 ms) over a minute.
#[test]
fn a_fast_sender_clock_cannot_grow_the_delay() {
    let mut jb = buffer();
    let count = 3_015;
    let interval = 20.0 / 1.005;
    // Stop at the last arrival, so the end of the stream is not an underrun.
    let r = run(&mut jb, stream(count, 0, interval, |_| 40.0), 60_020);
    let got = played(&r.outputs);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "order kept");
    let stats = jb.stats();
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert_eq!(stats.underruns, 0, "dropping never empties the buffer: {stats:?}");
    assert!((10..=16).contains(&stats.drift_drops), "about one frame per 4 s dropped: {stats:?}");
    // Depth stays bounded all along.
    let worst = r
        .depths
        .iter()
        .skip(50)
        .map(|&(_, depth, target)| depth.saturating_sub(target))
        .max()
        .unwrap();
    assert!(worst <= DRIFT_SLACK_FRAMES + 1, "depth above target by {worst}");
    // Every frame received was played, dropped for drift, or is still buffered.
    assert_eq!(got.len() as u64 + stats.drift_drops + jb.depth_frames() as u64, stats.received);
    assert!(stats.received >= u64::from(count) - 1);
}

/// A slow sender clock empties the buffer now and then; it must refill and play on
/// without losing frames or growing the delay.
#[test]
fn a_slow_sender_clock_underruns_but_plays_everything() {
    let mut jb = buffer();
    let r = run(&mut jb, stream(2_985, 0, 20.0 / 0.995, |_| 40.0), 60_040);
    assert_eq!(played(&r.outputs), (0..2_985).collect::<Vec<_>>());
    assert!(jb.stats().underruns >= 5, "{:?}", jb.stats());
    assert!(r.depths.iter().all(|&(_, depth, _)| depth <= 4));
}

#[test]
fn the_target_rises_with_jitter_and_falls_when_it_calms() {
    let mut jb = buffer();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // 10 s with delays spread uniformly over 20..120 ms (packets overtake each other),
    // then 30 s at a steady 20 ms.
    let arrivals =
        stream(2_000, 30_000, 20.0, |i| if i < 500 { 20.0 + 100.0 * rng.next_f64() } else { 20.0 });
    let r = run(&mut jb, arrivals.clone(), 10_000);
    let jittery_target = jb.target_delay_ms();
    assert!(
        (80..=200).contains(&jittery_target),
        "target {jittery_target} ms under 100 ms of jitter (J = {:.1} ms)",
        jb.jitter_ms()
    );
    assert!(jb.jitter_ms() > 20.0 && jb.jitter_ms() < 50.0, "J = {:.1}", jb.jitter_ms());
    // The buffer protects the stream: most frames play despite the jitter.
    let lost = count(&r.outputs, Out::Lost) + count(&r.outputs, Out::Underrun);
    assert!(lost < 60, "{lost} of 500 frames concealed");

    let mut jb = buffer();
    let r = run(&mut jb, arrivals, 40_001);
    assert_eq!(jb.target_delay_ms(), 20, "J = {:.2} ms", jb.jitter_ms());
    let &(_, depth, target) = r.depths.last().unwrap();
    assert!(depth <= target + DRIFT_SLACK_FRAMES, "depth {depth} target {target}");
    assert!(jb.stats().drift_drops >= 2, "{:?}", jb.stats());
    // After the calm-down nothing is concealed any more.
    let tail = &r.outputs[r.outputs.len() - 500..];
    assert!(tail.iter().all(|o| matches!(o, Out::Played(_))));
}

#[test]
fn the_target_never_leaves_its_bounds() {
    let mut jb = buffer();
    let mut rng = Rng(42);
    // Wild delays of up to 900 ms: the target must cap at 200 ms.
    let arrivals = stream(500, 0, 20.0, |_| 900.0 * rng.next_f64());
    let r = run(&mut jb, arrivals, 11_000);
    assert_eq!(jb.target_delay_ms(), 200);
    assert!(r.depths.iter().all(|&(_, _, target)| (1..=10).contains(&target)));
}

#[test]
fn an_ssrc_change_restarts_the_buffer() {
    let mut jb = buffer();
    let mut arrivals = stream(100, 100, 20.0, |_| 10.0);
    let second: Vec<Arrival> = stream(100, 40_000, 20.0, |_| 10.0)
        .into_iter()
        .map(|a| Arrival {
            at_ms: a.at_ms + 2_000,
            ssrc: 0x9999,
            timestamp: a.timestamp.wrapping_add(1_234_567),
            index: a.index + 1000,
            ..a
        })
        .collect();
    arrivals.extend(second);
    let r = run(&mut jb, arrivals, 4_200);
    let expected: Vec<u32> = (0..100).chain(1000..1100).collect();
    assert_eq!(played(&r.outputs), expected);
    assert!(r.outcomes.contains(&PushOutcome::Resynced(ResyncReason::SsrcChange)));
    assert_eq!(jb.stats().resyncs, 1);
    assert_eq!(jb.target_delay_ms(), 20, "a new timestamp base is not jitter");
}

#[test]
fn a_confirmed_sequence_jump_restarts_but_a_stray_packet_does_not() {
    let mut jb = buffer();
    let mut arrivals = stream(200, 1000, 20.0, |_| 10.0);
    // A stray packet with a wild sequence number in the middle...
    arrivals.push(Arrival { at_ms: 1_005, seq: 30_000, index: 9_999, ..arrivals[50] });
    // ...and from packet 100 on the sender jumps by 20,000.
    for a in &mut arrivals[100..200] {
        a.seq = a.seq.wrapping_add(20_000);
    }
    let r = run(&mut jb, arrivals, 4_300);
    let got = played(&r.outputs);
    assert!(!got.contains(&9_999));
    // Packet 100 waited on probation and was dropped; 101 confirmed the jump.
    let expected: Vec<u32> = (0..100).chain(101..200).collect();
    assert_eq!(got, expected);
    assert_eq!(jb.stats().probation_drops, 2);
    assert!(r.outcomes.contains(&PushOutcome::Resynced(ResyncReason::SequenceJump)));
    assert_eq!(jb.stats().resyncs, 1);
}

#[test]
fn a_timestamp_jump_restarts_the_estimate_without_dropping_audio() {
    let mut jb = buffer();
    let mut arrivals = stream(300, 0, 20.0, |_| 10.0);
    // From packet 150 the sender's timestamps jump 10 s ahead (a source switch).
    for a in &mut arrivals[150..] {
        a.timestamp = a.timestamp.wrapping_add(80_000);
    }
    let r = run(&mut jb, arrivals, 6_300);
    assert_eq!(played(&r.outputs), (0..300).collect::<Vec<_>>());
    assert!(r.outcomes.contains(&PushOutcome::Resynced(ResyncReason::TimestampJump)));
    assert_eq!(jb.stats().resyncs, 1);
    assert_eq!(jb.target_delay_ms(), 20, "the jump did not count as jitter");
    assert!(jb.jitter_ms() < 1.0);
}

/// Silence suppression: the timestamp jumps by the length of the pause and the sender
/// really pauses. That is neither jitter nor a resync.
#[test]
fn a_talk_spurt_pause_is_not_a_timestamp_jump() {
    let mut jb = buffer();
    let mut arrivals = stream(200, 0, 20.0, |_| 10.0);
    for a in &mut arrivals[100..] {
        a.timestamp = a.timestamp.wrapping_add(16_000);
        a.at_ms += 2_000;
    }
    let r = run(&mut jb, arrivals, 6_100);
    assert_eq!(played(&r.outputs), (0..200).collect::<Vec<_>>());
    assert_eq!(jb.stats().resyncs, 0);
    assert_eq!(jb.target_delay_ms(), 20);
    // During the pause: three ticks of underrun concealment, then nothing.
    let pause_start = r.outputs.iter().position(|&o| o == Out::Played(99)).unwrap() + 1;
    let pause = &r.outputs[pause_start..pause_start + 20];
    assert_eq!(
        &pause[..UNDERRUN_CONCEAL_FRAMES as usize],
        &[Out::Underrun; UNDERRUN_CONCEAL_FRAMES as usize]
    );
    assert!(pause[UNDERRUN_CONCEAL_FRAMES as usize..].iter().all(|&o| o == Out::Empty));
}

#[test]
fn a_burst_beyond_capacity_drops_the_oldest_frames() {
    let mut jb = buffer();
    // 50 packets all delivered at once before the first tick: the 32-slot ring keeps
    // the newest 32.
    let arrivals = stream(50, 0, 0.0, |_| 0.0);
    let r = run(&mut jb, arrivals, 2_000);
    assert_eq!(played(&r.outputs).first(), Some(&18));
    assert_eq!(jb.stats().overflow_drops, 18);
}

#[test]
fn bad_input_and_config_are_errors() {
    let mut jb = buffer();
    let big = [0u8; 513];
    let packet = IncomingPacket { ssrc: Ssrc(1), seq: 1, timestamp: 0, payload: &big };
    assert_eq!(jb.push(packet, 0), Err(JitterError::PayloadTooLarge { len: 513, max: 512 }));
    assert_eq!(jb.pop(0), Playout::Empty);
    for config in [
        JitterConfig { clock_rate: 0, ..JitterConfig::default() },
        JitterConfig { min_delay_ms: 300, ..JitterConfig::default() },
        JitterConfig { capacity: 10, ..JitterConfig::default() },
        JitterConfig { max_payload: 0, ..JitterConfig::default() },
    ] {
        assert!(matches!(JitterBuffer::new(config), Err(JitterError::InvalidConfig(_))));
    }
}

#[test]
fn a_clock_going_backwards_is_treated_as_standing_still() {
    let mut jb = buffer();
    let payload = [0u8; 4];
    for i in 0..10u16 {
        let packet = IncomingPacket {
            ssrc: Ssrc(5),
            seq: i,
            timestamp: u32::from(i) * FRAME_UNITS,
            payload: &payload,
        };
        // Arrival times run backwards after the fifth packet.
        let at = if i < 5 { u64::from(i) * 20 } else { 100 - u64::from(i) };
        jb.push(packet, at).unwrap();
    }
    for t in [500u64, 400, 300] {
        assert!(matches!(jb.pop(t), Playout::Frame(_)));
    }
    assert_eq!(jb.stats().resyncs, 0);
}

/// Many random networks (delay spread, loss, duplication, starting sequence number):
/// whatever happens, frames come out in sender order, none twice, and the counters
/// account for every packet.
#[test]
fn random_networks_never_break_order_or_accounting() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let spread = 200.0 * rng.next_f64();
        let loss = 0.2 * rng.next_f64();
        let first_seq = (rng.next_f64() * 65_536.0) as u16;
        let mut arrivals = Vec::new();
        for a in stream(600, first_seq, 20.0, |_| 0.0) {
            if rng.next_f64() < loss {
                continue;
            }
            let at_ms = a.at_ms + (spread * rng.next_f64()) as u64;
            arrivals.push(Arrival { at_ms, ..a });
            if rng.next_f64() < 0.05 {
                let again = at_ms + (100.0 * rng.next_f64()) as u64;
                arrivals.push(Arrival { at_ms: again, ..a });
            }
        }
        let sent = arrivals.len() as u64;
        let mut jb = buffer();
        let r = run(&mut jb, arrivals, 13_000);
        let got = played(&r.outputs);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "seed {seed}: order");
        let s = jb.stats();
        assert_eq!(s.played, got.len() as u64, "seed {seed}");
        assert_eq!(
            s.received + s.duplicates + s.late + s.probation_drops,
            sent,
            "seed {seed}: every packet accounted for: {s:?}"
        );
        assert_eq!(jb.depth_frames(), 0, "seed {seed}: drained by the end");
        assert_eq!(
            s.received,
            s.played + s.drift_drops + s.overflow_drops,
            "seed {seed}: every stored packet played or dropped: {s:?}"
        );
        assert!((20..=200).contains(&jb.target_delay_ms()));
    }
}
