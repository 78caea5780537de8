//! Unit tests of bucket keys: every rule's key against its declaration.

use std::net::IpAddr;

use super::*;

fn meta(ip: &str) -> RequestMeta {
    RequestMeta::new(ip.parse::<IpAddr>().ok(), None, "req".to_owned())
}

fn pseudonyms() -> EmailPseudonyms {
    EmailPseudonyms::new(vec![7; 32])
}

/// A well-formed key (its checksum is right), fixed so its bucket key can be pinned.
const KEY: &str = "wdn_00000000000000000000000000000000000000000002CZclj";

fn key() -> PresentedKey {
    PresentedKey::parse(KEY).unwrap()
}

fn user() -> Uuid {
    Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001)
}

fn session() -> Uuid {
    Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0002)
}

#[test]
fn every_rule_s_key_holds_exactly_the_parts_it_declares() {
    let pseudonyms = pseudonyms();
    let email = Email::parse("Alice@Example.com").unwrap();
    let meta = meta("203.0.113.9");
    let presented = key();
    let facts = KeyFacts::of(&meta)
        .with_email(&pseudonyms, &email)
        .with_user(user())
        .with_session(session())
        .with_api_key(&presented);
    let pseudonym = pseudonyms.of(&email);
    for rule in Rule::ALL {
        let key = facts.key(rule).unwrap();
        let parts = rule.key_parts();
        let expected: Vec<String> = parts
            .iter()
            .map(|part| match part {
                KeyPart::Ip => "203.0.113.9".to_owned(),
                KeyPart::Email => pseudonym.clone(),
                KeyPart::User => user().to_string(),
                KeyPart::Session => session().to_string(),
                KeyPart::ApiKey => presented.rate_key().to_owned(),
            })
            .collect();
        assert_eq!(key, expected.join("|"), "{rule:?}");
        assert_eq!(
            key.contains("203.0.113.9"),
            parts.contains(&KeyPart::Ip),
            "{rule:?}: {key}"
        );
        assert_eq!(
            key.contains(&pseudonym),
            parts.contains(&KeyPart::Email),
            "{rule:?}: {key}"
        );
        assert_eq!(
            key.contains(&user().to_string()),
            parts.contains(&KeyPart::User),
            "{rule:?}: {key}"
        );
        assert_eq!(
            key.contains(&session().to_string()),
            parts.contains(&KeyPart::Session),
            "{rule:?}: {key}"
        );
        let lower = key.to_lowercase();
        assert_eq!(
            key.contains(presented.rate_key()),
            parts.contains(&KeyPart::ApiKey),
            "{rule:?}: {key}"
        );
        assert!(
            !key.contains(KEY) && !key.contains(&KEY[4..20]),
            "{rule:?}: {key}"
        );
        assert!(
            !lower.contains("alice") && !lower.contains("example.com") && !key.contains('@'),
            "{rule:?}: a key never holds the address: {key}"
        );
    }
}

/// The helpers the operations call build the same key as the rule's
/// declaration, for every rule.
#[test]
fn the_helpers_the_operations_call_agree_with_each_rule_s_declaration() {
    let pseudonyms = pseudonyms();
    let email = Email::parse("alice@example.com").unwrap();
    for ip in ["203.0.113.9", "2001:db8:1:2:3:4:5:6"] {
        let meta = meta(ip);
        let presented = key();
        let facts = KeyFacts::of(&meta)
            .with_email(&pseudonyms, &email)
            .with_user(user())
            .with_session(session())
            .with_api_key(&presented);
        for rule in Rule::ALL {
            let from_helper = match rule.key_parts() {
                [KeyPart::Ip] => ip_key(&meta),
                [KeyPart::Ip, KeyPart::Email] => ip_email_key_under(&pseudonyms, &meta, &email),
                [KeyPart::User] => user_key(user()),
                [KeyPart::Session] => session_key(session()),
                [KeyPart::Email] => email_part(&pseudonyms, &email),
                [KeyPart::ApiKey] => api_key_key(&presented),
                other => panic!("{rule:?} is keyed by {other:?}: give it a helper"),
            };
            assert_eq!(facts.key(rule).unwrap(), from_helper, "{rule:?} from {ip}");
        }
    }
}

/// Buckets already in Redis must keep working across an upgrade: the bytes
/// of each kind of key are pinned (the pseudonym under a fixed test key).
#[test]
fn the_bytes_of_each_kind_of_key_are_pinned() {
    let pseudonyms = pseudonyms();
    let email = Email::parse("alice@example.com").unwrap();
    let v4 = meta("203.0.113.9");
    let v6 = meta("2001:db8:1:2:3:4:5:6");
    assert_eq!(ip_key(&v4), "203.0.113.9");
    assert_eq!(ip_key(&v6), "2001:db8:1:2::/64");
    assert_eq!(
        ip_email_key_under(&pseudonyms, &v4, &email),
        "203.0.113.9|25b8a6eab0ba83868bf3ae41ff5c9e23"
    );
    assert_eq!(user_key(user()), "01920000-0000-7000-8000-000000000001");
    assert_eq!(api_key_key(&key()), "e9feb669dbba5e3f3ad59a9286ddfeea");
    assert_eq!(ip_key(&RequestMeta::local("cli")), "unknown");
}

#[test]
fn a_part_the_caller_did_not_give_is_an_error_not_a_shared_bucket() {
    let meta = meta("203.0.113.9");
    let facts = KeyFacts::of(&meta);
    assert_eq!(facts.key(Rule::LoginIp).unwrap(), "203.0.113.9");
    assert!(facts.key(Rule::LoginEmail).is_err());
    assert!(facts.key(Rule::AuditLogUser).is_err());
}
