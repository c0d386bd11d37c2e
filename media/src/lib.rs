//! tutti-media: RTP legs, codecs, jitter buffers, the conference mixer, DTMF, tones,
//! playback and recording. It knows nothing of SIP or of the control APIs; its cores
//! are sans-IO state machines that the call engine drives with packets and ticks.
