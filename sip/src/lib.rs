//! tutti-sip: SIP signalling for tutti on top of rsipstack, plus SDP offer/answer,
//! server-side digest and session timers. It knows nothing of conferences; the call
//! engine in the `tutti` package drives it through the small API exported here.
