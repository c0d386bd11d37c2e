use super::*;

fn se(interval: u32, refresher: Option<Refresher>) -> Option<SessionExpires> {
    Some(SessionExpires { interval, refresher })
}

fn accept(decision: UasDecision) -> TimerResponse {
    match decision {
        UasDecision::Accept(Some(response)) => response,
        other => panic!("expected a timer in the 2xx, got {other:?}"),
    }
}

#[test]
fn parse_session_expires_variants() {
    assert_eq!(SessionExpires::parse("1800").unwrap(), se(1800, None).unwrap());
    assert_eq!(
        SessionExpires::parse("1800;refresher=uac").unwrap(),
        se(1800, Some(Refresher::Uac)).unwrap()
    );
    assert_eq!(
        SessionExpires::parse(" 90 ; Refresher = UAS ; foo=bar;baz").unwrap(),
        se(90, Some(Refresher::Uas)).unwrap()
    );
    assert_eq!(SessionExpires::parse("4294967296").unwrap().interval, MAX_INTERVAL);
    for bad in [
        "",
        "abc",
        "-5",
        "18 00",
        "1800;refresher=proxy",
        "1800;refresher",
        "1800;;x",
        "1800;refresher=uac;refresher=uas",
        "0x10",
    ] {
        assert!(SessionExpires::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(se(1800, Some(Refresher::Uas)).unwrap().to_string(), "1800;refresher=uas");
    assert_eq!(se(90, None).unwrap().to_string(), "90");
}

#[test]
fn parse_min_se_variants() {
    assert_eq!(parse_min_se("90"), Ok(90));
    assert_eq!(parse_min_se(" 120 ;lr"), Ok(120));
    assert!(parse_min_se("").is_err());
    assert!(parse_min_se("ninety").is_err());
}

#[test]
fn uas_rejects_too_small_with_422_and_its_min_se() {
    let config = TimerConfig { min_se: 300, ..TimerConfig::default() };
    let request =
        TimerRequest { supports_timer: true, session_expires: se(120, None), min_se: Some(90) };
    assert_eq!(uas_decide(&config, &request), UasDecision::Reject { min_se: 300 });
    // Exactly our minimum is fine.
    let request = TimerRequest { session_expires: se(300, None), ..request };
    assert_eq!(accept(uas_decide(&config, &request)).session_expires.interval, 300);
    // Below the RFC floor with default config.
    let request =
        TimerRequest { supports_timer: true, session_expires: se(60, None), min_se: None };
    assert_eq!(
        uas_decide(&TimerConfig::default(), &request),
        UasDecision::Reject { min_se: MIN_SE_FLOOR }
    );
}

#[test]
fn uas_without_uac_support_never_sends_422_and_refreshes_itself() {
    let config = TimerConfig { min_se: 300, ..TimerConfig::default() };
    // A proxy inserted Session-Expires; the UAC does not support timers.
    let request = TimerRequest {
        supports_timer: false,
        session_expires: se(120, Some(Refresher::Uac)),
        min_se: None,
    };
    let response = accept(uas_decide(&config, &request));
    assert_eq!(response.session_expires, se(120, Some(Refresher::Uas)).unwrap());
    assert!(!response.require_timer);
    // Nothing asked, nothing supported: we still run a timer we refresh.
    let response = accept(uas_decide(&config, &TimerRequest::default()));
    assert_eq!(response.session_expires, se(1800, Some(Refresher::Uas)).unwrap());
    assert!(!response.require_timer);
    // An invalid tiny interval is read as the floor.
    let request =
        TimerRequest { supports_timer: false, session_expires: se(1, None), min_se: None };
    assert_eq!(accept(uas_decide(&config, &request)).session_expires.interval, MIN_SE_FLOOR);
}

#[test]
fn uas_refresher_choice_and_require_timer() {
    let config = TimerConfig::default();
    let asked = |refresher| TimerRequest {
        supports_timer: true,
        session_expires: se(600, refresher),
        min_se: None,
    };
    // The UAC's choice is kept.
    let r = accept(uas_decide(&config, &asked(Some(Refresher::Uas))));
    assert_eq!(r.session_expires.refresher, Some(Refresher::Uas));
    assert!(r.require_timer);
    let r = accept(uas_decide(&config, &asked(Some(Refresher::Uac))));
    assert_eq!(r.session_expires.refresher, Some(Refresher::Uac));
    assert!(r.require_timer);
    assert_eq!(r.negotiated(), Negotiated { interval: 600, refresher: Refresher::Uac });
    // Left to us: our preference.
    let r = accept(uas_decide(&config, &asked(None)));
    assert_eq!(r.session_expires.refresher, Some(Refresher::Uac));
    let uas_pref = TimerConfig { preferred_refresher: Refresher::Uas, ..config };
    let r = accept(uas_decide(&uas_pref, &asked(None)));
    assert_eq!(r.session_expires.refresher, Some(Refresher::Uas));
    // Supported but no Session-Expires: we ask for ours, Require: timer.
    let r = accept(uas_decide(
        &config,
        &TimerRequest { supports_timer: true, session_expires: None, min_se: Some(2000) },
    ));
    assert_eq!(r.session_expires.interval, 2000, "never below the request's Min-SE");
    assert!(r.require_timer);
}

#[test]
fn uas_may_lower_but_never_raise_and_respects_request_min_se() {
    let config = TimerConfig { session_expires: 900, ..TimerConfig::default() };
    let ask = |interval, min_se| TimerRequest {
        supports_timer: true,
        session_expires: se(interval, None),
        min_se,
    };
    assert_eq!(accept(uas_decide(&config, &ask(3600, None))).session_expires.interval, 900);
    assert_eq!(accept(uas_decide(&config, &ask(3600, Some(1200)))).session_expires.interval, 1200);
    assert_eq!(accept(uas_decide(&config, &ask(600, None))).session_expires.interval, 600);
}

#[test]
fn disabled_means_no_timer() {
    let config = TimerConfig { enabled: false, ..TimerConfig::default() };
    let request =
        TimerRequest { supports_timer: true, session_expires: se(30, None), min_se: None };
    assert_eq!(uas_decide(&config, &request), UasDecision::Accept(None));
    let uac = UacNegotiator::new(config);
    assert_eq!(uac.request().session_expires, None);
    assert!(uac.request().supports_timer);
    assert_eq!(uac.handle_2xx(None), None);
}

#[test]
fn uac_request_422_retry_and_2xx() {
    let mut uac =
        UacNegotiator::new(TimerConfig { session_expires: 300, ..TimerConfig::default() });
    let first = uac.request();
    assert!(first.supports_timer);
    assert_eq!(first.session_expires, se(300, None));
    assert_eq!(first.min_se, Some(90));

    uac.handle_422(Some(600)).unwrap();
    let retry = uac.request();
    assert_eq!(retry.session_expires, se(600, None));
    assert_eq!(retry.min_se, Some(600));
    // A 422 that asks for no more than we sent, or carries no Min-SE, would loop.
    assert_eq!(uac.handle_422(Some(600)), Err(TimerError::Useless422));
    assert_eq!(uac.handle_422(None), Err(TimerError::Useless422));

    assert_eq!(
        uac.handle_2xx(se(600, Some(Refresher::Uas))),
        Some(Negotiated { interval: 600, refresher: Refresher::Uas })
    );
    assert_eq!(
        uac.handle_2xx(se(600, None)),
        Some(Negotiated { interval: 600, refresher: Refresher::Uac })
    );
    // No Session-Expires in the 2xx: we refresh at our interval.
    assert_eq!(uac.handle_2xx(None), Some(Negotiated { interval: 600, refresher: Refresher::Uac }));
}

#[test]
fn deadlines_follow_rfc4028_section_10() {
    let t0 = Instant::now();
    let timer =
        SessionTimer::new(t0, Negotiated { interval: 1800, refresher: Refresher::Uac }, Role::Uac);
    assert!(timer.we_refresh());
    assert_eq!(timer.refresh_at(), Some(t0 + Duration::from_secs(900)));
    assert_eq!(timer.expires_at(), t0 + Duration::from_secs(1800 - 32));
    // Short intervals: a third rather than 32 s.
    let short =
        SessionTimer::new(t0, Negotiated { interval: 90, refresher: Refresher::Uas }, Role::Uac);
    assert!(!short.we_refresh());
    assert_eq!(short.refresh_at(), None);
    assert_eq!(short.expires_at(), t0 + Duration::from_secs(60));
    assert_eq!(short.poll_timeout(), Some(t0 + Duration::from_secs(60)));
}

#[test]
fn who_refreshes_depends_on_our_role() {
    let t0 = Instant::now();
    let n = |refresher| Negotiated { interval: 600, refresher };
    assert!(SessionTimer::new(t0, n(Refresher::Uac), Role::Uac).we_refresh());
    assert!(!SessionTimer::new(t0, n(Refresher::Uac), Role::Uas).we_refresh());
    assert!(SessionTimer::new(t0, n(Refresher::Uas), Role::Uas).we_refresh());
    assert!(!SessionTimer::new(t0, n(Refresher::Uas), Role::Uac).we_refresh());
}

#[test]
fn refresher_side_refreshes_once_then_expires_without_answer() {
    let t0 = Instant::now();
    let mut timer =
        SessionTimer::new(t0, Negotiated { interval: 600, refresher: Refresher::Uas }, Role::Uas);
    assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(299)), None);
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(300)), Some(TimerAction::Refresh));
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(301)), None, "only once");
    assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(568)));
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(568)), Some(TimerAction::Expire));
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(900)), None);
    assert_eq!(timer.poll_timeout(), None);
}

#[test]
fn a_refresh_resets_the_deadlines() {
    let t0 = Instant::now();
    let mut timer =
        SessionTimer::new(t0, Negotiated { interval: 600, refresher: Refresher::Uac }, Role::Uas);
    assert!(!timer.we_refresh());
    assert_eq!(timer.poll_timeout(), Some(t0 + Duration::from_secs(568)));
    // The peer's re-INVITE arrives at 290 s; we answered it as UAS.
    let t1 = t0 + Duration::from_secs(290);
    timer.handle_refresh(t1, Negotiated { interval: 600, refresher: Refresher::Uac }, Role::Uas);
    assert_eq!(
        timer.handle_timeout(t0 + Duration::from_secs(600)),
        None,
        "not expired after reset"
    );
    assert_eq!(timer.poll_timeout(), Some(t1 + Duration::from_secs(568)));
    // An UPDATE we send (as UAC) makes us the refresher with a new interval.
    let t2 = t1 + Duration::from_secs(100);
    timer.handle_refresh(t2, Negotiated { interval: 1200, refresher: Refresher::Uac }, Role::Uac);
    assert!(timer.we_refresh());
    assert_eq!(timer.interval(), Duration::from_secs(1200));
    assert_eq!(timer.poll_timeout(), Some(t2 + Duration::from_secs(600)));
    assert_eq!(timer.handle_timeout(t2 + Duration::from_secs(600)), Some(TimerAction::Refresh));
    // Our refresh succeeded: the next refresh is due again, not the expiry.
    let t3 = t2 + Duration::from_secs(601);
    timer.handle_refresh(t3, Negotiated { interval: 1200, refresher: Refresher::Uac }, Role::Uac);
    assert_eq!(timer.poll_timeout(), Some(t3 + Duration::from_secs(600)));
}

#[test]
fn clock_going_backwards_is_ignored() {
    let t0 = Instant::now() + Duration::from_secs(1000);
    let mut timer =
        SessionTimer::new(t0, Negotiated { interval: 600, refresher: Refresher::Uac }, Role::Uas);
    timer.handle_refresh(
        t0 - Duration::from_secs(500),
        Negotiated { interval: 600, refresher: Refresher::Uac },
        Role::Uas,
    );
    assert_eq!(timer.expires_at(), t0 + Duration::from_secs(568));
    assert_eq!(timer.handle_timeout(t0 - Duration::from_secs(900)), None);
}

#[test]
fn an_expired_timer_stays_expired() {
    let t0 = Instant::now();
    let mut timer =
        SessionTimer::new(t0, Negotiated { interval: 90, refresher: Refresher::Uac }, Role::Uas);
    assert_eq!(timer.handle_timeout(t0 + Duration::from_secs(60)), Some(TimerAction::Expire));
    timer.handle_refresh(
        t0 + Duration::from_secs(61),
        Negotiated { interval: 90, refresher: Refresher::Uac },
        Role::Uas,
    );
    assert_eq!(timer.poll_timeout(), None);
}

#[test]
fn a_refresh_keeps_the_current_interval_and_names_us_the_refresher() {
    // Our preference is 1800 s, but the session runs at 90 s: the refresh asks
    // for 90 with refresher=uac, and a 2xx without Session-Expires keeps 90.
    let uac = UacNegotiator::refresh(TimerConfig::default(), 90);
    let request = uac.request();
    assert_eq!(request.session_expires, se(90, Some(Refresher::Uac)));
    assert_eq!(request.min_se, Some(90));
    assert_eq!(uac.handle_2xx(None), Some(Negotiated { interval: 90, refresher: Refresher::Uac }));
    assert_eq!(
        uac.handle_2xx(se(90, Some(Refresher::Uac))),
        Some(Negotiated { interval: 90, refresher: Refresher::Uac })
    );
}
