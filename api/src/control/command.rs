//! The commands of the Conference Control Interface as a typed enum, parsed from a
//! line's fields. Pure: no store, no clock; values are checked for shape here
//! (numbers, flags, dates) and for existence when the command is applied.

use std::fmt;

use super::codec::split_fields;
use super::error::{CommandError, ControlError};
use super::schedule::Schedule;

/// The longest telephone number or SIP URI CALLUSER takes.
const MAX_NUMBER_LEN: usize = 256;
/// The longest `<cn>` and `<pin>`, in digits.
const MAX_DIGITS: usize = 32;

macro_rules! verbs {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// A command name, as the protocol writes it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Verb { $($variant),+ }

        impl Verb {
            pub const ALL: &'static [Verb] = &[$(Verb::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Verb::$variant => $text),+ }
            }
        }
    };
}

verbs! {
    Login = "LOGIN",
    NewConf = "NEWCONF",
    DelConf = "DELCONF",
    ModConf = "MODCONF",
    GetConf = "GETCONF",
    ListConf = "LISTCONF",
    ListUser = "LISTUSER",
    CallUser = "CALLUSER",
    MoveUser = "MOVEUSER",
    DropUser = "DROPUSER",
    MuteUser = "MUTEUSER",
    MuteAll = "MUTEALL",
    PlayWav = "PLAYWAV",
    PlayWavAll = "PLAYWAVALL",
    StopWav = "STOPWAV",
    StopWavAll = "STOPWAVALL",
    PlayTts = "PLAYTTS",
    PlayTtsAll = "PLAYTTSALL",
    DtmfUser = "DTMFUSER",
    DtmfAll = "DTMFALL",
    KeepAlive = "KEEPALIVE",
    ConfBeep = "CONFBEEP",
}

impl Verb {
    /// The command a name denotes, ignoring ASCII case and surrounding spaces.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether a client may send it before LOGIN.
    pub fn allowed_before_login(self) -> bool {
        matches!(self, Self::Login | Self::KeepAlive)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings NEWCONF and MODCONF carry:
/// `<cn>,<company>,<organiser>,<maxusers>,<date>,<start>,<end>,<pin>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceFields {
    /// The dial-in number: digits only.
    pub cn: String,
    pub company: String,
    pub organiser: String,
    /// `None`: no limit (written as empty or 0).
    pub max_users: Option<i64>,
    pub schedule: Schedule,
    /// `None`: no PIN (written as empty).
    pub pin: Option<String>,
}

/// One parsed command. UIDs are as sent; whether they exist is checked on apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Login { password: String },
    NewConf(ConferenceFields),
    DelConf { conference: String },
    ModConf { conference: String, fields: ConferenceFields },
    GetConf { conference: String },
    ListConf,
    ListUser { conference: String },
    CallUser { conference: String, number: String, remote_command: Option<String> },
    MoveUser { caller: String, conference: String },
    DropUser { caller: String },
    MuteUser { caller: String, mute: bool },
    MuteAll { conference: String, mute: bool },
    PlayWav { caller: String, file: String, looped: bool },
    PlayWavAll { conference: String, file: String, looped: bool },
    StopWav { caller: String },
    StopWavAll { conference: String },
    PlayTts { caller: String, text: String },
    PlayTtsAll { conference: String, text: String },
    DtmfUser { caller: String, allowed: bool },
    DtmfAll { conference: String, allowed: bool },
    KeepAlive { text: Option<String> },
    ConfBeep { conference: String, on: bool },
}

impl Command {
    pub fn verb(&self) -> Verb {
        match self {
            Self::Login { .. } => Verb::Login,
            Self::NewConf(_) => Verb::NewConf,
            Self::DelConf { .. } => Verb::DelConf,
            Self::ModConf { .. } => Verb::ModConf,
            Self::GetConf { .. } => Verb::GetConf,
            Self::ListConf => Verb::ListConf,
            Self::ListUser { .. } => Verb::ListUser,
            Self::CallUser { .. } => Verb::CallUser,
            Self::MoveUser { .. } => Verb::MoveUser,
            Self::DropUser { .. } => Verb::DropUser,
            Self::MuteUser { .. } => Verb::MuteUser,
            Self::MuteAll { .. } => Verb::MuteAll,
            Self::PlayWav { .. } => Verb::PlayWav,
            Self::PlayWavAll { .. } => Verb::PlayWavAll,
            Self::StopWav { .. } => Verb::StopWav,
            Self::StopWavAll { .. } => Verb::StopWavAll,
            Self::PlayTts { .. } => Verb::PlayTts,
            Self::PlayTtsAll { .. } => Verb::PlayTtsAll,
            Self::DtmfUser { .. } => Verb::DtmfUser,
            Self::DtmfAll { .. } => Verb::DtmfAll,
            Self::KeepAlive { .. } => Verb::KeepAlive,
            Self::ConfBeep { .. } => Verb::ConfBeep,
        }
    }
}

/// What a non-empty line holds: its verb, known before anything else is checked
/// so that even a malformed line's error names its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: Verb,
    /// The command, or why its fields are wrong.
    pub command: Result<Command, CommandError>,
}

/// Reads one line. `Ok(None)` for a blank line (ignored, not answered);
/// `Err` when the line names no command.
pub fn parse_line(line: &str) -> Result<Option<Request>, ControlError> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let fields = split_fields(line);
    // The name is the text before the first comma, so that a line with broken
    // quoting later on still gets its command's own error.
    let name = match &fields {
        Ok(fields) => fields.first().map(String::as_str).unwrap_or_default(),
        Err(_) => line.split(',').next().unwrap_or_default(),
    };
    let Some(verb) = Verb::from_name(name) else {
        return Err(match fields {
            Ok(_) => ControlError::UnknownCommand(name.trim().to_owned()),
            Err(_) => ControlError::Syntax,
        });
    };
    let command = match fields {
        Ok(fields) => parse_args(verb, &fields[1..]),
        Err(_) => Err(CommandError::Syntax),
    };
    Ok(Some(Request { verb, command }))
}

/// Builds the command from the fields after the name.
pub fn parse_args(verb: Verb, args: &[String]) -> Result<Command, CommandError> {
    use Command as C;
    let one = || exactly::<1>(args);
    let two = || exactly::<2>(args);
    let three = || exactly::<3>(args);
    Ok(match verb {
        Verb::Login => {
            let [password] = one()?;
            C::Login { password: password.clone() }
        }
        Verb::NewConf => C::NewConf(conference_fields(args)?),
        Verb::ModConf => {
            let (conference, rest) = args.split_first().ok_or(CommandError::Syntax)?;
            C::ModConf {
                conference: guid(conference, "conf-guid")?,
                fields: conference_fields(rest)?,
            }
        }
        Verb::DelConf => C::DelConf { conference: conf_guid(one()?)? },
        Verb::GetConf => C::GetConf { conference: conf_guid(one()?)? },
        Verb::ListConf => {
            exactly::<0>(args)?;
            C::ListConf
        }
        Verb::ListUser => C::ListUser { conference: conf_guid(one()?)? },
        Verb::CallUser => {
            let (conference, number, remote) = match args {
                [c, n] => (c, n, None),
                [c, n, r] => (c, n, Some(r)),
                _ => return Err(CommandError::Syntax),
            };
            C::CallUser {
                conference: guid(conference, "conf-guid")?,
                number: dial_number(number)?,
                remote_command: remote.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()),
            }
        }
        Verb::MoveUser => {
            let [caller, conference] = two()?;
            C::MoveUser {
                caller: guid(caller, "call-guid")?,
                conference: guid(conference, "conf-guid")?,
            }
        }
        Verb::DropUser => C::DropUser { caller: call_guid(one()?)? },
        Verb::MuteUser => {
            let [caller, mute] = two()?;
            C::MuteUser { caller: guid(caller, "call-guid")?, mute: flag(mute, "mute value")? }
        }
        Verb::MuteAll => {
            let [conference, mute] = two()?;
            C::MuteAll {
                conference: guid(conference, "conf-guid")?,
                mute: flag(mute, "mute value")?,
            }
        }
        Verb::PlayWav => {
            let [caller, file, looped] = three()?;
            C::PlayWav {
                caller: guid(caller, "call-guid")?,
                file: wav_name(file)?,
                looped: flag(looped, "loop value")?,
            }
        }
        Verb::PlayWavAll => {
            let [conference, file, looped] = three()?;
            C::PlayWavAll {
                conference: guid(conference, "conf-guid")?,
                file: wav_name(file)?,
                looped: flag(looped, "loop value")?,
            }
        }
        Verb::StopWav => C::StopWav { caller: call_guid(one()?)? },
        Verb::StopWavAll => C::StopWavAll { conference: conf_guid(one()?)? },
        Verb::PlayTts => {
            let [caller, text] = two()?;
            C::PlayTts { caller: guid(caller, "call-guid")?, text: tts_text(text)? }
        }
        Verb::PlayTtsAll => {
            let [conference, text] = two()?;
            C::PlayTtsAll { conference: guid(conference, "conf-guid")?, text: tts_text(text)? }
        }
        Verb::DtmfUser => {
            let [caller, allowed] = two()?;
            C::DtmfUser {
                caller: guid(caller, "call-guid")?,
                allowed: flag(allowed, "dtmf-allow value")?,
            }
        }
        Verb::DtmfAll => {
            let [conference, allowed] = two()?;
            C::DtmfAll {
                conference: guid(conference, "conf-guid")?,
                allowed: flag(allowed, "dtmf-allow value")?,
            }
        }
        Verb::KeepAlive => match args {
            [] => C::KeepAlive { text: None },
            [text] => C::KeepAlive { text: Some(text.clone()).filter(|t| !t.is_empty()) },
            _ => return Err(CommandError::Syntax),
        },
        Verb::ConfBeep => {
            let [conference, on] = two()?;
            C::ConfBeep { conference: guid(conference, "conf-guid")?, on: flag(on, "beep value")? }
        }
    })
}

fn exactly<const N: usize>(args: &[String]) -> Result<&[String; N], CommandError> {
    args.try_into().map_err(|_| CommandError::Syntax)
}

fn conf_guid([field]: &[String; 1]) -> Result<String, CommandError> {
    guid(field, "conf-guid")
}

fn call_guid([field]: &[String; 1]) -> Result<String, CommandError> {
    guid(field, "call-guid")
}

/// A conference or caller UID: non-empty letters, digits, `-` and `_`.
fn guid(field: &str, what: &'static str) -> Result<String, CommandError> {
    let field = field.trim();
    let ok = !field.is_empty()
        && field.len() <= 64
        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(field.to_owned()) } else { Err(CommandError::Invalid(what)) }
}

/// `<mute>`, `<loop>`, `<listen-only>`, `<dtmf-allow>`: 0/1, true/false, on/off
/// (also yes/no), any case.
pub fn flag(field: &str, what: &'static str) -> Result<bool, CommandError> {
    let field = field.trim();
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(field));
    if is(&["1", "true", "on", "yes"]) {
        Ok(true)
    } else if is(&["0", "false", "off", "no"]) {
        Ok(false)
    } else {
        Err(CommandError::Invalid(what))
    }
}

fn digits(field: &str, what: &'static str) -> Result<String, CommandError> {
    let field = field.trim();
    if field.len() <= MAX_DIGITS && field.bytes().all(|b| b.is_ascii_digit()) {
        Ok(field.to_owned())
    } else {
        Err(CommandError::Invalid(what))
    }
}

fn conference_fields(args: &[String]) -> Result<ConferenceFields, CommandError> {
    let [cn, company, organiser, max_users, date, start, end, pin] = exactly::<8>(args)?;
    let cn = digits(cn, "conference number")?;
    if cn.is_empty() {
        return Err(CommandError::Invalid("conference number"));
    }
    let max_users = match max_users.trim() {
        "" | "0" => None,
        text => match text.parse::<u32>() {
            Ok(n) => Some(i64::from(n)),
            Err(_) => return Err(CommandError::Invalid("maxusers")),
        },
    };
    let pin = digits(pin, "pin")?;
    Ok(ConferenceFields {
        cn,
        company: company.clone(),
        organiser: organiser.clone(),
        max_users,
        schedule: Schedule::parse(date, start, end)?,
        pin: Some(pin).filter(|p| !p.is_empty()),
    })
}

/// A telephone number or SIP URI: non-empty, no spaces or control characters.
fn dial_number(field: &str) -> Result<String, CommandError> {
    let field = field.trim();
    let ok = !field.is_empty()
        && field.len() <= MAX_NUMBER_LEN
        && !field.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(field.to_owned()) } else { Err(CommandError::Invalid("number")) }
}

/// A WAV name as sent; where it may point is checked against the sounds
/// directory on apply.
fn wav_name(field: &str) -> Result<String, CommandError> {
    let field = field.trim();
    if field.is_empty() { Err(CommandError::Invalid("wav-file")) } else { Ok(field.to_owned()) }
}

fn tts_text(field: &str) -> Result<String, CommandError> {
    if field.trim().is_empty() { Err(CommandError::Invalid("text")) } else { Ok(field.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil;

    fn parse(line: &str) -> Result<Command, CommandError> {
        parse_line(line).expect("a command").expect("not blank").command
    }

    #[test]
    fn names_ignore_case_and_spaces() {
        assert_eq!(parse(" listconf "), Ok(Command::ListConf));
        assert_eq!(parse("KeepAlive"), Ok(Command::KeepAlive { text: None }));
    }

    #[test]
    fn blank_lines_are_ignored() {
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line(" \t"), Ok(None));
    }

    #[test]
    fn unknown_commands_are_named_back() {
        assert_eq!(parse_line("LIST"), Err(ControlError::UnknownCommand("LIST".into())));
        assert_eq!(parse_line(" list ,x"), Err(ControlError::UnknownCommand("list".into())));
        assert_eq!(parse_line("\"open"), Err(ControlError::Syntax));
    }

    #[test]
    fn broken_quoting_is_a_syntax_error_of_its_command() {
        let req = parse_line("PLAYTTS,abc,\"unterminated").expect("known").expect("line");
        assert_eq!(req.verb, Verb::PlayTts);
        assert_eq!(req.command, Err(CommandError::Syntax));
    }

    #[test]
    fn newconf_with_every_field() {
        let cmd = parse("NEWCONF,1234,\"Acme, Ltd\",“Bob Smith”,10,01/12/2026,09:30,10:30,4321");
        let Ok(Command::NewConf(f)) = cmd else { panic!("{cmd:?}") };
        assert_eq!(f.cn, "1234");
        assert_eq!(f.company, "Acme, Ltd");
        assert_eq!(f.organiser, "Bob Smith");
        assert_eq!(f.max_users, Some(10));
        assert_eq!(f.schedule.date, Some(civil::date(2026, 12, 1)));
        assert_eq!(f.schedule.start, Some(civil::time(9, 30, 0, 0)));
        assert_eq!(f.schedule.end, Some(civil::time(10, 30, 0, 0)));
        assert_eq!(f.pin.as_deref(), Some("4321"));
    }

    #[test]
    fn newconf_with_empty_optional_fields() {
        let Ok(Command::NewConf(f)) = parse("NEWCONF,55,,,,,,,") else { panic!() };
        assert_eq!(f.max_users, None);
        assert_eq!(f.schedule, Schedule::default());
        assert_eq!(f.pin, None);
        assert_eq!(f.company, "");
        let Ok(Command::NewConf(f)) = parse("NEWCONF,55,,,0,,,,") else { panic!() };
        assert_eq!(f.max_users, None);
    }

    #[test]
    fn newconf_field_checks() {
        assert_eq!(parse("NEWCONF,55,a,b,10,,,"), Err(CommandError::Syntax), "too few");
        assert_eq!(parse("NEWCONF,55,a,b,10,,,,,"), Err(CommandError::Syntax), "too many");
        assert_eq!(parse("NEWCONF,,a,b,10,,,,"), Err(CommandError::Invalid("conference number")));
        assert_eq!(parse("NEWCONF,5a,a,b,,,,,"), Err(CommandError::Invalid("conference number")));
        assert_eq!(parse("NEWCONF,5,a,b,-1,,,,"), Err(CommandError::Invalid("maxusers")));
        assert_eq!(parse("NEWCONF,5,a,b,ten,,,,"), Err(CommandError::Invalid("maxusers")));
        assert_eq!(parse("NEWCONF,5,a,b,,,,,12a"), Err(CommandError::Invalid("pin")));
        assert!(matches!(parse("NEWCONF,5,a,b,,32/01/2026,,,"), Err(CommandError::Schedule(_))));
    }

    #[test]
    fn modconf_takes_the_guid_then_the_newconf_fields() {
        let Ok(Command::ModConf { conference, fields }) = parse("MODCONF,abc-1,77,X,Y,5,,,,")
        else {
            panic!()
        };
        assert_eq!(conference, "abc-1");
        assert_eq!(fields.cn, "77");
        assert_eq!(parse("MODCONF"), Err(CommandError::Syntax));
        assert_eq!(parse("MODCONF,abc,77"), Err(CommandError::Syntax));
    }

    #[test]
    fn flags_take_every_documented_spelling() {
        for (text, want) in [
            ("1", true),
            ("true", true),
            ("ON", true),
            ("0", false),
            ("False", false),
            ("off", false),
        ] {
            assert_eq!(
                parse(&format!("MUTEUSER,u1,{text}")),
                Ok(Command::MuteUser { caller: "u1".into(), mute: want })
            );
        }
        assert_eq!(parse("MUTEUSER,u1,2"), Err(CommandError::Invalid("mute value")));
        assert_eq!(parse("MUTEUSER,u1,"), Err(CommandError::Invalid("mute value")));
        assert_eq!(parse("PLAYWAV,u1,a.wav,maybe"), Err(CommandError::Invalid("loop value")));
    }

    #[test]
    fn field_counts_are_exact() {
        for line in [
            "LOGIN",
            "LOGIN,a,b",
            "DELCONF",
            "GETCONF,a,b",
            "LISTCONF,x",
            "LISTUSER",
            "CALLUSER,c",
            "CALLUSER,c,1,2,3",
            "MOVEUSER,u",
            "DROPUSER,u,c",
            "MUTEALL,c",
            "PLAYWAV,u,a.wav",
            "PLAYWAVALL,c,a.wav,1,2",
            "STOPWAV",
            "STOPWAVALL,c,1",
            "PLAYTTS,u",
            "PLAYTTSALL,c,a,b",
            "DTMFUSER,u",
            "DTMFALL,c,1,1",
            "KEEPALIVE,a,b",
            "CONFBEEP,c",
        ] {
            assert_eq!(parse(line), Err(CommandError::Syntax), "{line}");
        }
    }

    #[test]
    fn calluser_with_and_without_a_remote_command() {
        assert_eq!(
            parse("CALLUSER,c1,01234 "),
            Ok(Command::CallUser {
                conference: "c1".into(),
                number: "01234".into(),
                remote_command: None
            })
        );
        assert_eq!(
            parse("CALLUSER,c1,sip:bob@example.com,!LeaveRecording"),
            Ok(Command::CallUser {
                conference: "c1".into(),
                number: "sip:bob@example.com".into(),
                remote_command: Some("!LeaveRecording".into())
            })
        );
        assert_eq!(parse("CALLUSER,c1,,"), Err(CommandError::Invalid("number")));
        assert_eq!(parse("CALLUSER,c1,\"1 2\""), Err(CommandError::Invalid("number")));
    }

    #[test]
    fn guids_are_checked_for_shape() {
        assert_eq!(parse("GETCONF,"), Err(CommandError::Invalid("conf-guid")));
        assert_eq!(parse("DROPUSER,\"a b\""), Err(CommandError::Invalid("call-guid")));
        assert_eq!(parse("DROPUSER,../x"), Err(CommandError::Invalid("call-guid")));
    }

    #[test]
    fn keepalive_text_is_optional_and_may_hold_commas_when_quoted() {
        assert_eq!(parse("KEEPALIVE,"), Ok(Command::KeepAlive { text: None }));
        assert_eq!(
            parse("KEEPALIVE,\"a, b\""),
            Ok(Command::KeepAlive { text: Some("a, b".into()) })
        );
    }

    #[test]
    fn tts_keeps_its_text_and_refuses_empty_text() {
        assert_eq!(
            parse("PLAYTTS,u,\" Hello, world \""),
            Ok(Command::PlayTts { caller: "u".into(), text: " Hello, world ".into() })
        );
        assert_eq!(parse("PLAYTTSALL,c,"), Err(CommandError::Invalid("text")));
    }

    /// A deterministic stand-in for the fuzz target (api/fuzz), run with every
    /// `cargo test`: random lines from protocol-shaped pieces never panic, and no
    /// answer to them holds a line break.
    #[test]
    fn random_protocol_shaped_lines_never_panic() {
        use super::super::codec::LineDecoder;
        const PIECES: &[&str] = &[
            ",",
            "\"",
            "\"\"",
            "“",
            "”",
            " ",
            "\r",
            "\n",
            "\r\n",
            "0",
            "1",
            "on",
            "x",
            "é",
            "NEWCONF",
            "MODCONF",
            "CALLUSER",
            "PLAYWAV",
            "KEEPALIVE",
            "LOGIN",
            "abc-1",
            "12:30",
            "01/02/2026",
            "2026-02-29",
            "24:00",
            "../",
            "/",
            "\\",
            "\u{0}",
            "\u{85}",
            "99999999999",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut decoder = LineDecoder::new(64);
        for _ in 0..20_000 {
            let mut input = String::new();
            for _ in 0..next() % 24 {
                input.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let bytes = input.as_bytes();
            let cut = (next() as usize) % (bytes.len() + 1);
            decoder.handle_bytes(&bytes[..cut]);
            decoder.handle_bytes(&bytes[cut..]);
            decoder.handle_bytes(b"\xff\x93");
            while let Some(line) = decoder.poll_line() {
                let Ok(line) = line else { continue };
                let answer = match parse_line(&line) {
                    Ok(Some(Request { verb, command: Err(e) })) => e.on(verb).to_line(),
                    Ok(Some(Request { command: Ok(Command::NewConf(f)), .. })) => {
                        let _ = f.schedule.to_instants(&jiff::tz::TimeZone::UTC);
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => e.to_line(),
                };
                assert!(!answer.contains(['\r', '\n']), "{answer:?}");
            }
            assert!(decoder.buffered() <= 65);
        }
    }

    #[test]
    fn every_verb_parses_from_its_own_name() {
        for verb in Verb::ALL {
            assert_eq!(Verb::from_name(verb.as_str()), Some(*verb));
            let req = parse_line(verb.as_str()).expect("known").expect("line");
            assert_eq!(req.verb, *verb);
        }
    }
}
