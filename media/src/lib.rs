//! tutti-media: RTP legs, codecs, jitter buffers, the conference mixer, DTMF, tones,
//! playback and recording. It knows nothing of SIP or of the control APIs; its cores
//! are sans-IO state machines that the call engine drives with packets and ticks.
//!
//! Sans-IO cores: [`codec`] (G.711, G.722, Opus, concealment), [`dtmf`] (RFC 4733
//! receive and send), [`jitter`] (the adaptive jitter buffer), [`rtp`] (sender,
//! RFC 3550 statistics, RTCP, latching, SRTP), [`leg`] (one call leg composing
//! them), [`mixer`] and [`resample`] (the conference mix), [`tone`], [`wav`] and
//! [`source`] (what plays besides legs). Tokio shells: [`ports`] (RTP ports),
//! [`io`] (a leg's sockets), [`room`] (a conference's mixing task), [`tts`]
//! (espeak-ng) and [`record`] (WAV recording).
//!
//! Panic policy: nothing here panics on any input from the network or the caller; every
//! failure is a typed error. A panic is a bug.

pub mod codec;
pub mod counters;
pub mod dtmf;
pub mod io;
pub mod jitter;
pub mod leg;
pub mod mixer;
pub mod opus;
pub mod ports;
pub mod record;
pub mod recv;
pub mod resample;
pub mod room;
pub mod rtp;
pub mod source;
pub mod timing;
pub mod tone;
pub mod tts;
pub mod wav;
