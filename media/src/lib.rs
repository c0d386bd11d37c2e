//! tutti-media: RTP legs, codecs, jitter buffers, the conference mixer, DTMF, tones,
//! playback and recording. It knows nothing of SIP or of the control APIs; its cores
//! are sans-IO state machines that the call engine drives with packets and ticks.
//!
//! So far: [`codec`] (G.711, G.722, concealment), [`dtmf`] (RFC 4733 telephone-event
//! receive and send) and [`jitter`] (the adaptive jitter buffer).
//!
//! Panic policy: nothing here panics on any input from the network or the caller; every
//! failure is a typed error. A panic is a bug.

pub mod codec;
pub mod dtmf;
pub mod io;
pub mod jitter;
pub mod leg;
pub mod ports;
pub mod rtp;
