//! Unit tests of configuration parsing.
use super::*;
use clap::{CommandFactory, Parser};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    config: Config,
}

#[test]
fn every_setting_has_its_variable_listed() {
    let cmd = Wrapper::command();
    let mut from_args: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    from_args.sort();
    let mut known: Vec<String> = KNOWN_ENV.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(from_args, known);
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = Config::defaults().expect("defaults parse");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.database_url.expose_secret(),
        "sqlite://warden.db?mode=rwc"
    );
    assert_eq!(config.access_token_ttl, Duration::from_secs(900));
    assert_eq!(config.refresh_reuse_interval, Duration::from_secs(10));
    assert_eq!(config.bcrypt_cost, 12);
    assert_eq!(config.rates.rate_login_email.to_string(), "5/min");
    assert!(config.jwt_secret.is_none() && config.introspection && config.rate_limits);
}

#[test]
fn every_rate_rule_defaults_to_the_quota_of_its_table_entry() {
    let config = Config::defaults().expect("defaults parse");
    assert_eq!(config.rates, RateQuotas::defaults());
    for rule in Rule::ALL {
        let flag = Wrapper::command()
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == rule.variable()))
            .and_then(|a| a.get_long().map(str::to_owned));
        assert!(flag.is_some(), "{} has a flag", rule.variable());
        let set = Config::from_vars([(rule.variable(), "7/h")]).expect("a quota parses");
        assert_eq!(set.rates.get(rule).to_string(), "7/h", "{rule:?}");
        for other in Rule::ALL.into_iter().filter(|r| *r != rule) {
            assert_eq!(set.rates.get(other), other.default_quota(), "{other:?}");
        }
    }
}

#[test]
fn quotas_parse_in_four_units() {
    assert_eq!(
        "10/min"
            .parse::<RateQuota>()
            .map(|q| (q.count, q.per.as_secs())),
        Ok((10, 60))
    );
    assert_eq!("3/s".parse::<RateQuota>().map(|q| q.per.as_secs()), Ok(1));
    assert_eq!(
        "100/h".parse::<RateQuota>().map(|q| q.per.as_secs()),
        Ok(3600)
    );
    assert!("0/min".parse::<RateQuota>().is_err());
    assert!("ten/min".parse::<RateQuota>().is_err());
    assert!("10/week".parse::<RateQuota>().is_err());
    let daily = "30/d".parse::<RateQuota>().unwrap();
    assert_eq!((daily.count, daily.per.as_secs()), (30, 86_400));
    assert_eq!("30/day".parse::<RateQuota>(), Ok(daily));
    assert_eq!(daily.to_string(), "30/d", "shown as written");
}

#[test]
fn unknown_warden_variables_are_refused_by_name() {
    let err = check_unknown_env(["WARDEN_ACESS_TOKEN_TTL".to_string()]);
    assert!(matches!(err, Err(msg) if msg.contains("WARDEN_ACESS_TOKEN_TTL")));
    assert!(check_unknown_env(["WARDEN_LISTEN".into(), "HOME".into()]).is_ok());
    assert!(check_unknown_env(["WARDEN_TEST_DATABASE_URL".into()]).is_err());
}

#[test]
fn short_and_example_secrets_are_refused() {
    assert!(parse_jwt_secret("short").is_err());
    assert!(parse_jwt_secret("your-256-bit-secret-your-256-bit-secret").is_err());
    assert!(parse_jwt_secret(&"a".repeat(40)).is_err());
    assert!(parse_jwt_secret("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs").is_ok());
}

#[test]
fn database_passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://warden:hunter2@db:5432/warden"),
        "postgres://warden@db:5432/warden"
    );
    assert_eq!(
        redact_url("sqlite://warden.db?mode=rwc"),
        "sqlite://warden.db?mode=rwc"
    );
    assert_eq!(
        redact_url("postgres://db/warden?user=w&password=hunter2"),
        "postgres://db/warden"
    );
}

#[test]
fn database_urls_must_be_a_sqlite_file_or_postgres() {
    assert!(parse_database_url("sqlite://warden.db?mode=rwc").is_ok());
    assert!(parse_database_url("postgres://u:p@localhost/warden").is_ok());
    assert!(parse_database_url("sqlite::memory:").is_err());
    assert!(parse_database_url("mysql://localhost/warden").is_err());
}

#[test]
fn zero_durations_and_empty_names_are_refused() {
    assert!(parse_positive_duration("0s").is_err());
    assert!(parse_positive_duration("15m").is_ok());
    assert!(parse_non_empty("  ").is_err());
    assert!(parse_body_limit("10").is_err());
    assert!(parse_batch("0").is_err());
}

/// A config from command-line arguments alone (no environment).
fn from_args(args: &[&str]) -> Result<Config, String> {
    use clap::FromArgMatches;
    let mut argv = vec!["warden"];
    argv.extend_from_slice(args);
    let matches = Wrapper::command()
        .mut_args(|arg| arg.env(None))
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    Wrapper::from_arg_matches(&matches)
        .map(|w| w.config)
        .map_err(|e| e.to_string())
}

/// Every boolean setting, how to read it from a config, and its default.
type Switch = (&'static str, fn(&Config) -> bool, bool);

const SWITCHES: &[Switch] = &[
    ("introspection", |c| c.introspection, true),
    ("rate-limits", |c| c.rate_limits, true),
    ("cookie-secure", |c| c.cookie_secure, true),
    ("pwned-passwords", |c| c.pwned_passwords, false),
    (
        "require-email-verification",
        |c| c.require_email_verification,
        false,
    ),
];

#[test]
fn every_switch_takes_every_flag_form() {
    for (flag, get, default) in SWITCHES {
        let long = format!("--{flag}");
        assert_eq!(get(&from_args(&[]).unwrap()), *default, "{flag} default");
        assert!(
            get(&from_args(&[&long]).unwrap()),
            "{long} alone turns it on"
        );
        for (value, expected) in [
            ("true", true),
            ("false", false),
            ("on", true),
            ("off", false),
            ("TRUE", true),
            ("Off", false),
        ] {
            let joined = format!("{long}={value}");
            assert_eq!(get(&from_args(&[&joined]).unwrap()), expected, "{joined}");
            assert_eq!(
                get(&from_args(&[&long, value]).unwrap()),
                expected,
                "{long} {value}"
            );
        }
        // A bare switch followed by another flag leaves that flag alone.
        let config = from_args(&[&long, "--max-batch", "3"]).unwrap();
        assert!(
            get(&config) && config.max_batch == 3,
            "{long} --max-batch 3"
        );
        let err = from_args(&[&format!("{long}=maybe")]).unwrap_err();
        assert!(err.contains("true or false"), "{err}");
    }
}

#[test]
fn every_switch_of_the_config_is_in_the_switch_test() {
    // A `bool` field left to clap's defaults gets `SetTrue`, which takes no
    // value (`--x=false` fails): none may. Every setting whose value may be
    // left out is a switch of the test above (or the cookie mode).
    let cmd = Wrapper::command();
    for arg in cmd.get_arguments() {
        assert!(
            !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse),
            "--{:?} takes no value: give it action = ArgAction::Set",
            arg.get_long()
        );
    }
    let mut optional: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.get_num_args().is_some_and(|n| n.min_values() == 0))
        .filter_map(|a| a.get_long().map(str::to_owned))
        .filter(|long| long != "refresh-cookie")
        .collect();
    let mut listed: Vec<String> = SWITCHES.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    optional.sort();
    assert_eq!(optional, listed);
}

#[test]
fn the_refresh_cookie_mode_takes_every_flag_form_and_any_case() {
    let mode = |args: &[&str]| from_args(args).map(|c| c.refresh_cookie);
    assert_eq!(mode(&[]), Ok(RefreshCookieMode::Off));
    assert_eq!(mode(&["--refresh-cookie"]), Ok(RefreshCookieMode::On));
    assert_eq!(mode(&["--refresh-cookie=true"]), Ok(RefreshCookieMode::On));
    assert_eq!(mode(&["--refresh-cookie", "ON"]), Ok(RefreshCookieMode::On));
    assert_eq!(
        mode(&["--refresh-cookie=false"]),
        Ok(RefreshCookieMode::Off)
    );
    assert_eq!(
        mode(&["--refresh-cookie", "Only"]),
        Ok(RefreshCookieMode::Only)
    );
    let err = mode(&["--refresh-cookie=sometimes"]).unwrap_err();
    assert!(err.contains("off, on, only"), "{err}");
}

#[test]
fn enum_values_are_case_insensitive_and_a_bad_one_lists_the_valid_ones() {
    let log = |v: &str| Config::from_vars([("WARDEN_LOG_FORMAT", v)]).map(|c| c.log_format);
    assert_eq!(log("JSON"), Ok(LogFormat::Json));
    assert_eq!(log("Pretty"), Ok(LogFormat::Pretty));
    let err = log("yaml").unwrap_err();
    assert!(err.contains("pretty, json"), "{err}");
    let alg = |v: &str| Config::from_vars([("WARDEN_JWT_ALGORITHM", v)]).map(|c| c.jwt_algorithm);
    assert_eq!(alg("eddsa"), Ok(JwtAlgorithm::EdDsa));
    assert_eq!(alg("hs256"), Ok(JwtAlgorithm::Hs256));
    let err = alg("RS256").unwrap_err();
    assert!(err.contains("HS256, EdDSA"), "{err}");
    assert!(parse_enum::<LogFormat>("xml")
        .unwrap_err()
        .ends_with("is not one of pretty, json"));
}

/// Settings that have no default on purpose (unset means "none").
const WITHOUT_DEFAULT: &[&str] = &[
    "WARDEN_REDIS_URL",
    "WARDEN_JWT_SECRET",
    "WARDEN_TRUSTED_PROXIES",
    "WARDEN_CORS_ORIGINS",
    "WARDEN_COOKIE_DOMAIN",
    "WARDEN_PUBLIC_URL",
    "WARDEN_METRICS_LISTEN",
    "WARDEN_SMTP_URL",
    "WARDEN_SMTP_PASSWORD",
    "WARDEN_SMTP_CA_FILE",
    "WARDEN_APP_URL",
    "WARDEN_MAIL_TEMPLATES",
    "WARDEN_WEBAUTHN_RP_ID",
    "WARDEN_WEBAUTHN_ORIGINS",
];

#[test]
fn every_setting_shows_its_variable_and_default_in_help() {
    let help = Wrapper::command().render_long_help().to_string();
    for name in KNOWN_ENV {
        let arg = Wrapper::command()
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == *name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} has a flag"));
        let long = arg.get_long().unwrap_or_default().to_owned();
        assert!(help.contains(&format!("[env: {name}")), "help names {name}");
        if WITHOUT_DEFAULT.contains(name) {
            continue;
        }
        let default = arg
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| {
                panic!(
                    "{name} (--{long}) has no default: give it one, or list it in WITHOUT_DEFAULT"
                )
            });
        assert!(
            help.contains(&format!("[default: {default}]")),
            "help shows --{long}'s default {default}"
        );
    }
}
