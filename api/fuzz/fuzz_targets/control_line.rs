//! TCP 4011 input, as arbitrary bytes in arbitrary reads: the line decoder, the
//! field splitter, the command parser and the error lines must never panic, never
//! buffer more than one line's limit, and never write a line break into an answer.
//!
//! Run: `cd api/fuzz && cargo +nightly fuzz run control_line`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_api::control::codec::{LineDecoder, MAX_LINE, split_fields};
use tutti_api::control::command::{Command, parse_line};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so framing across reads is exercised.
    let (chunk, data) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1), rest),
        None => return,
    };
    let mut decoder = LineDecoder::default();
    for piece in data.chunks(chunk) {
        decoder.handle_bytes(piece);
        assert!(decoder.buffered() <= MAX_LINE + 1);
        while let Some(line) = decoder.poll_line() {
            let Ok(line) = line else { continue };
            assert!(!line.contains('\n'));
            let _ = split_fields(&line);
            match parse_line(&line) {
                Ok(Some(request)) => match request.command {
                    Ok(Command::NewConf(fields)) => {
                        // Placing the schedule in a zone with DST gaps must not panic.
                        let zone = jiff::tz::TimeZone::get("Europe/London").ok();
                        let _ =
                            fields.schedule.to_instants(&zone.unwrap_or(jiff::tz::TimeZone::UTC));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let answer = e.on(request.verb).to_line();
                        assert!(!answer.contains(['\r', '\n']));
                    }
                },
                Ok(None) => {}
                Err(e) => assert!(!e.to_line().contains(['\r', '\n'])),
            }
        }
    }
});
