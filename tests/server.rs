//! The real binary: it starts on ephemeral ports, answers /healthz and /metrics,
//! prints first-start secrets once, stops cleanly on SIGTERM and SIGINT with its
//! data intact, and reads its options with flag > environment > file precedence.

mod support;

use std::time::Duration;

use support::{Server, run, tutti};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn metric(body: &str, name: &str) -> i64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
}

#[test]
fn serves_health_and_metrics_then_stops_cleanly_with_data_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[]);

    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200);
    let health = json(&body);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].as_u64().is_some(), "{health}");

    let (status, body) = server.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&body, "tutti_customers"), 1);
    assert_eq!(metric(&body, "tutti_conferences"), 0);
    assert_eq!(metric(&body, "tutti_active_calls"), 0);
    // No room has ticked yet; the mixer's punctuality is shown all the same.
    assert_eq!(metric(&body, "tutti_mixer_tick_lateness_seconds_count"), 0);
    assert_eq!(metric(&body, "tutti_mixer_ticks_skipped_total"), 0);
    assert_eq!(metric(&body, "tutti_mixer_tick_duration_seconds_count"), 0);
    // What calls hold, at idle: nothing.
    for held in ["tutti_sip_calls", "tutti_sip_dialogs", "tutti_engine_calls", "tutti_live_callers"]
    {
        assert_eq!(metric(&body, held), 0, "{held}");
    }
    assert!(metric(&body, "tutti_runtime_tasks") > 0);

    // The CLI works against the running server's database (WAL allows it).
    let out = run(dir.path(), &["customer", "create", "--name", "Acme Ltd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = json(&String::from_utf8_lossy(&out.stdout));
    let uid = created["uid"].as_str().expect("uid").to_owned();
    assert_eq!(created["api_key"].as_str().map(str::len), Some(32));
    let (_, body) = server.get("/metrics");
    assert_eq!(metric(&body, "tutti_customers"), 2);

    let (status, _) = server.get("/no-such-page");
    assert_eq!(status, 404);

    let status = server.stop_with("TERM");
    assert_eq!(status.code(), Some(0), "SIGTERM must end with exit 0");
    server.wait_for_log("stopped", Duration::from_secs(5));

    // First start: a default customer and a control password, printed once.
    let first = server.stdout_after_exit();
    assert!(first.contains("customer UID:"), "{first}");
    assert!(first.contains("API key:"), "{first}");
    assert!(first.contains("control password:"), "{first}");
    assert!(!server.stderr_seen.join("\n").contains("API key"), "secrets stay out of the log");
    drop(server);

    // A restart keeps everything and prints no new secrets.
    let mut server = Server::start(dir.path(), &[]);
    let (_, body) = server.get("/metrics");
    assert_eq!(metric(&body, "tutti_customers"), 2);
    assert_eq!(server.stop_with("INT").code(), Some(0), "SIGINT must end with exit 0");
    let again = server.stdout_after_exit();
    assert!(
        !again.contains("API key") && !again.contains("password"),
        "printed once only: {again}"
    );

    let out = run(dir.path(), &["customer", "list"]);
    assert!(out.status.success());
    let list = json(&String::from_utf8_lossy(&out.stdout));
    let names: Vec<&str> =
        list.as_array().expect("array").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["default", "Acme Ltd"]);
    assert!(list[1]["uid"] == uid.as_str());
    assert!(list[1].get("api_key_hash").is_none(), "list never shows key material");
}

#[test]
fn configured_control_password_is_stored_and_no_password_is_generated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--control-password", "letmein"]);
    assert_eq!(server.stop_with("TERM").code(), Some(0));
    let out = server.stdout_after_exit();
    assert!(out.contains("customer UID:"), "{out}");
    assert!(!out.contains("control password:"), "a configured password is not generated: {out}");
}

#[test]
fn rotate_key_issues_a_new_key_and_unknown_customers_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(dir.path(), &["customer", "create", "--name", "Acme"]);
    let created = json(&String::from_utf8_lossy(&out.stdout));
    let uid = created["uid"].as_str().expect("uid");
    let out = run(dir.path(), &["customer", "rotate-key", uid]);
    assert!(out.status.success());
    let rotated = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rotated["uid"], uid);
    assert_ne!(rotated["api_key"], created["api_key"]);

    let out = run(dir.path(), &["customer", "rotate-key", "no-such-uid"]);
    assert!(!out.status.success());
    // The message names the UID that was not found.
    assert!(String::from_utf8_lossy(&out.stderr).contains("no customer with UID \"no-such-uid\""));
}

#[test]
fn migrate_creates_the_database_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("nested/data");
    for _ in 0..2 {
        let out = run(&data, &["migrate"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(data.join("tutti.db").exists());
}

/// `tutti config` prints the effective settings; each option is given in two or
/// three places to show which one wins.
#[test]
fn flags_beat_environment_beat_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tutti.toml");
    std::fs::write(
        &file,
        r#"
sip-listen = "127.0.0.1:5001"
http-listen = "127.0.0.1:8001"
control-listen = "127.0.0.1:4001"
rtp-ports = "20000-20999"
log = "warn"
timezone = "Europe/Berlin"
"#,
    )
    .expect("write config");
    let out = tutti()
        .env("TUTTI_CONFIG", &file)
        .env("TUTTI_HTTP_LISTEN", "127.0.0.1:8002")
        .env("TUTTI_CONTROL_LISTEN", "127.0.0.1:4002")
        .env("TUTTI_TIMEZONE", "America/New_York")
        .env("TUTTI_RING_TIMEOUT", "7")
        .args(["--control-listen", "127.0.0.1:4003", "--max-calls", "12", "config"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let settings: toml::Table = text.parse().expect("config prints TOML");
    assert_eq!(settings["sip-listen"].as_str(), Some("127.0.0.1:5001"), "file only");
    assert_eq!(settings["rtp-ports"].as_str(), Some("20000-20999"), "file only");
    assert_eq!(settings["log"].as_str(), Some("warn"), "file only");
    assert_eq!(settings["http-listen"].as_str(), Some("127.0.0.1:8002"), "env over file");
    assert_eq!(settings["timezone"].as_str(), Some("America/New_York"), "env over file");
    assert_eq!(
        settings["control-listen"].as_str(),
        Some("127.0.0.1:4003"),
        "flag over env and file"
    );
    assert_eq!(settings["media-address"].as_str(), Some("127.0.0.1"), "follows the SIP address");
    assert_eq!(settings["data-dir"].as_str(), Some("./data"), "default");
    assert_eq!(settings["max-calls"].as_integer(), Some(12), "flag");
    assert_eq!(settings["ring-timeout"].as_integer(), Some(7), "env");

    // Empty values mean "not given": the default applies, not an empty password.
    let out = tutti()
        .env("TUTTI_CONTROL_PASSWORD", "")
        .env("TUTTI_LOG", " ")
        .arg("config")
        .output()
        .expect("run");
    let settings: toml::Table = String::from_utf8_lossy(&out.stdout).parse().expect("TOML");
    assert!(settings.get("control-password").is_none(), "{settings}");
    assert_eq!(settings["log"].as_str(), Some("info,rsipstack=warn"));

    // The same file given by flag; a flag after the subcommand works too.
    let out = tutti()
        .args(["config", "--config"])
        .arg(&file)
        .args(["--log", "debug"])
        .output()
        .expect("run");
    let settings: toml::Table = String::from_utf8_lossy(&out.stdout).parse().expect("TOML");
    assert_eq!(settings["http-listen"].as_str(), Some("127.0.0.1:8001"));
    assert_eq!(settings["log"].as_str(), Some("debug"));
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "sip_listen = \"127.0.0.1:5001\"\n").expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--config".into(), file.display().to_string()], "unknown field `sip_listen`"),
        (vec!["--config".into(), "/no/such/file.toml".into()], "cannot read config file"),
        (vec!["--rtp-ports".into(), "9000-8000".into()], "LOW <= HIGH"),
        (vec!["--timezone".into(), "Mars/Olympus".into()], "unknown time zone"),
        (vec!["--http-listen".into(), "localhost".into()], "invalid value"),
    ];
    for (args, message) in cases {
        let out = tutti().args(&args).arg("config").output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in {stderr}");
    }
}

/// docker-compose.yml passes TUTTI_* variables through with `${VAR:-default}`.
/// Unknown variables are silently ignored by the binary, so a misspelt one here
/// would do nothing: every name must be one `tutti --help` documents, and the
/// environment compose produces (defaults, empty secrets) must be accepted.
#[test]
fn docker_compose_environment_is_understood() {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .expect("read docker-compose.yml");
    let help = tutti().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut cmd = tutti();
    let mut seen = 0;
    for line in compose.lines().map(str::trim) {
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.starts_with("TUTTI_") {
            continue;
        }
        assert!(help.contains(&format!("env: {name}")), "{name} is not a tutti option");
        let value = value.trim();
        // `${VAR:-default}` expands to the default when VAR is unset.
        let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
            Some(inner) => inner.split_once(":-").map_or("", |(_, default)| default),
            None => value,
        };
        cmd.env(name, value);
        seen += 1;
    }
    assert!(seen >= 10, "found only {seen} TUTTI_* variables");
    let out = cmd.arg("config").output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings: toml::Table = String::from_utf8_lossy(&out.stdout).parse().expect("TOML");
    assert_eq!(settings["data-dir"].as_str(), Some("/data"));
    assert!(settings.get("control-password").is_none(), "empty means generated");
    assert!(settings.get("outbound-proxy").is_none());
}
