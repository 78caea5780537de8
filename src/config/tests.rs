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
fn quotas_parse_in_three_units() {
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
    assert!("10/day".parse::<RateQuota>().is_err());
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
