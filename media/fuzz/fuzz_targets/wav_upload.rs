//! Uploaded sound files (the PBX REST resource's /api/v1/sounds), as arbitrary
//! bytes: the strict upload reader must never panic, and whatever it accepts
//! must come out as a playable prompt (16-bit mono at 8, 16 or 48 kHz) no
//! longer than the upload limit.
//!
//! Run: `cd media/fuzz && cargo +nightly fuzz run wav_upload`

#![no_main]

use libfuzzer_sys::fuzz_target;
use tutti_media::wav::{self, MAX_UPLOAD_MS, PROMPT_RATES, convert_upload};

fuzz_target!(|data: &[u8]| {
    let Ok(upload) = convert_upload(data) else { return };
    let audio = wav::parse(&upload.wav).expect("a converted upload reads as a prompt");
    assert_eq!(audio.channels, 1);
    assert!(PROMPT_RATES.contains(&audio.sample_rate));
    assert_eq!(audio.sample_rate, upload.sample_rate);
    assert!(upload.duration_ms <= MAX_UPLOAD_MS);
    // Also the lenient reader recordings use.
    let _ = wav::parse_any(data);
});
