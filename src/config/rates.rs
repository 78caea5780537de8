//! The rate rules: one table, one entry per rule.
//!
//! An entry says everything about a rule: its stable name (Redis keys,
//! metric labels, audit rows), its `WARDEN_RATE_*` variable, its default
//! quota, what its bucket is keyed by, and the help line of its flag. The
//! `rate_rules!` macro turns the table into the [`Rule`] enum and the
//! [`RateQuotas`] settings that [`Config`](super::Config) flattens in, so
//! adding a rule is one entry here (and a row in the README's configuration
//! table, which a test checks).
//!
//! The table lives in configuration, the lowest floor, because it owns
//! variable names and defaults; the limiter (`auth::limiter`) and the
//! services (`services::limits`) read it from here.

use std::time::Duration;

use super::values::RateQuota;

/// What a rule's bucket is keyed by; a key is its parts, in order, joined
/// by `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client's IP bucket: an IPv4 address, or an IPv6 address's
    /// `WARDEN_IPV6_PREFIX` network (`RequestMeta::bucket_key`).
    Ip,
    /// The email's pseudonym (a keyed hash): never the address itself.
    Email,
    /// The signed-in account's id.
    User,
    /// The id of the session an access token belongs to (its `sid`).
    Session,
    /// A presented API key, as a keyed hash of its own
    /// (`PresentedKey::rate_key`): never the key, nor the hash it is
    /// stored under.
    ApiKey,
}

/// The period a quota unit is written in, as a [`Duration`].
macro_rules! per {
    (s) => {
        Duration::from_secs(1)
    };
    (min) => {
        Duration::from_secs(60)
    };
    (h) => {
        Duration::from_secs(3600)
    };
    (d) => {
        Duration::from_secs(86_400)
    };
}

/// Generates [`Rule`] and [`RateQuotas`] from the table below. Each entry:
/// the variant's docs, `Variant { name, variable, field, default, key, help }`
/// where `field` is the setting's field in [`RateQuotas`] (clap derives the
/// flag from it: `rate_login_ip` is `--rate-login-ip`), `default` is
/// `COUNT / UNIT` with a unit of `s`, `min` or `h`, and `help` is the flag's
/// help line.
macro_rules! rate_rules {
    ($(
        $(#[$doc:meta])*
        $rule:ident {
            name: $name:literal,
            variable: $variable:literal,
            field: $field:ident,
            default: $count:literal / $unit:ident,
            key: [$($part:ident),+ $(,)?],
            help: $help:literal $(,)?
        }
    ),+ $(,)?) => {
        /// What is being limited, each with its own quota. Generated from
        /// the table in [`config::rates`](crate::config::rates).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($(#[$doc])* $rule,)+
        }

        impl Rule {
            /// How many rules there are.
            pub const COUNT: usize = [$($name),+].len();

            /// Every rule, in table order.
            pub const ALL: [Self; Self::COUNT] = [$(Self::$rule),+];

            /// Stable name, for keys, logs, metrics and the audit log.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$rule => $name,)+
                }
            }

            /// The `WARDEN_RATE_*` variable that sets its quota.
            pub fn variable(self) -> &'static str {
                match self {
                    $(Self::$rule => $variable,)+
                }
            }

            /// The quota when its variable is not set.
            pub fn default_quota(self) -> RateQuota {
                match self {
                    $(Self::$rule => RateQuota {
                        count: $count,
                        per: per!($unit),
                    },)+
                }
            }

            /// What its bucket is keyed by, in key order.
            pub fn key_parts(self) -> &'static [KeyPart] {
                match self {
                    $(Self::$rule => &[$(KeyPart::$part),+],)+
                }
            }

            /// Its place in [`ALL`](Self::ALL), for per-rule arrays.
            pub fn index(self) -> usize {
                self as usize
            }
        }

        /// The quota of every rule, one `WARDEN_RATE_*` setting each
        /// (flattened into [`Config`](super::Config) as `rates`).
        #[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
        pub struct RateQuotas {
            $(
                #[doc = $help]
                #[arg(
                    long,
                    env = $variable,
                    default_value = concat!(stringify!($count), "/", stringify!($unit)),
                    global = true
                )]
                pub $field: RateQuota,
            )+
        }

        impl RateQuotas {
            /// The same quota for every rule.
            pub fn uniform(quota: RateQuota) -> Self {
                Self { $($field: quota,)+ }
            }

            /// Every rule's default quota.
            pub fn defaults() -> Self {
                Self { $($field: Rule::$rule.default_quota(),)+ }
            }

            /// The quota of `rule`.
            pub fn get(&self, rule: Rule) -> RateQuota {
                match rule {
                    $(Rule::$rule => self.$field,)+
                }
            }

            /// Sets the quota of `rule`.
            pub fn set(&mut self, rule: Rule, quota: RateQuota) {
                match rule {
                    $(Rule::$rule => self.$field = quota,)+
                }
            }
        }

        /// Every rule's variable, for the list of known variables.
        pub const VARIABLES: [&str; Rule::COUNT] = [$($variable),+];
    };
}

rate_rules! {
    /// `login` per client IP.
    LoginIp {
        name: "login_ip",
        variable: "WARDEN_RATE_LOGIN_IP",
        field: rate_login_ip,
        default: 10 / min,
        key: [Ip],
        help: "`login` quota per client IP.",
    },
    /// `login` per client IP and email.
    LoginEmail {
        name: "login_email",
        variable: "WARDEN_RATE_LOGIN_EMAIL",
        field: rate_login_email,
        default: 5 / min,
        key: [Ip, Email],
        help: "`login` quota per client IP and email.",
    },
    /// `register` per client IP.
    RegisterIp {
        name: "register_ip",
        variable: "WARDEN_RATE_REGISTER_IP",
        field: rate_register_ip,
        default: 5 / min,
        key: [Ip],
        help: "`register` quota per client IP.",
    },
    /// `refresh` per client IP.
    RefreshIp {
        name: "refresh_ip",
        variable: "WARDEN_RATE_REFRESH_IP",
        field: rate_refresh_ip,
        default: 30 / min,
        key: [Ip],
        help: "`refresh` quota per client IP.",
    },
    /// `auditLog` reads per account (user id): every read is a database
    /// query, so a token must not turn into a flood of them.
    AuditLogUser {
        name: "audit_log_user",
        variable: "WARDEN_RATE_AUDIT_LOG",
        field: rate_audit_log,
        default: 60 / min,
        key: [User],
        help: "`auditLog` reads per user.",
    },
    /// Operations that send mail (`sendVerificationEmail`,
    /// `requestPasswordReset`, `requestEmailChange`) per client IP.
    MailIp {
        name: "mail_ip",
        variable: "WARDEN_RATE_MAIL_IP",
        field: rate_mail_ip,
        default: 10 / min,
        key: [Ip],
        help: "Mail-sending operations (`sendVerificationEmail`, `requestPasswordReset`, `requestEmailChange`) per client IP.",
    },
    /// Mail to one address, whoever asks: a flood of requests cannot
    /// flood an inbox. Every mail it lets through reaches the owner, whose
    /// newest link keeps working, so it cannot lock the owner out.
    MailEmail {
        name: "mail_email",
        variable: "WARDEN_RATE_MAIL_EMAIL",
        field: rate_mail_email,
        default: 5 / h,
        key: [Email],
        help: "Mail-sending operations per email address.",
    },
    /// `verifyEmail`, `resetPassword` and `confirmEmailChange` per client
    /// IP, link tokens and codes alike.
    EmailTokenIp {
        name: "email_token_ip",
        variable: "WARDEN_RATE_EMAIL_TOKEN_IP",
        field: rate_email_token_ip,
        default: 30 / min,
        key: [Ip],
        help: "`verifyEmail`, `resetPassword` and `confirmEmailChange` per client IP.",
    },
    /// Codes tried for one address (on top of each code's five tries). A
    /// day's cap: at 30 tries a day, a year of guessing finds a code with
    /// about 1% chance, while the owner's link keeps working.
    EmailCode {
        name: "email_code",
        variable: "WARDEN_RATE_EMAIL_CODE",
        field: rate_email_code,
        default: 30 / d,
        key: [Email],
        help: "6-digit codes tried per email address (each code also dies after 5 wrong tries); a day's cap, so guessing a million codes stays out of reach.",
    },
    /// Passkey ceremonies (`startPasskeyRegistration`, `startPasskeyLogin`,
    /// `finishPasskeyLogin`) per client IP: each start stores a challenge,
    /// each finish checks a signature.
    PasskeyIp {
        name: "passkey_ip",
        variable: "WARDEN_RATE_PASSKEY_IP",
        field: rate_passkey_ip,
        default: 30 / min,
        key: [Ip],
        help: "Passkey ceremonies (starting a registration or sign-in, finishing a sign-in) per client IP.",
    },
    /// Authenticator-app and recovery codes tried for one account, from
    /// anywhere (`completeLogin`, `confirmTotpEnrollment`, and the code
    /// checks of a signed-in caller). A 6-digit code is a small space: the
    /// lockout's email-wide threshold alone would let someone who has the
    /// password try thousands a day, and a right password clears the
    /// per-client count. Only a caller who has the password (or a session)
    /// can spend it, and a password reset ends that.
    MfaUser {
        name: "mfa_user",
        variable: "WARDEN_RATE_MFA_USER",
        field: rate_mfa_user,
        default: 10 / h,
        key: [User],
        help: "Authenticator-app and recovery codes tried per account, from anywhere; a password reset stops whoever is guessing.",
    },
    /// Requests authenticated by one API key, counted before the key is
    /// looked up: a flood with a leaked (or made-up) key costs no database
    /// round trip once its bucket is empty.
    ApiKey {
        name: "api_key",
        variable: "WARDEN_RATE_API_KEY",
        field: rate_api_key,
        default: 600 / min,
        key: [ApiKey],
        help: "GraphQL requests per API key, counted before the key is looked up.",
    },
    /// `exportMyData` per account: each export reads every table the
    /// account has rows in.
    ExportUser {
        name: "export_user",
        variable: "WARDEN_RATE_EXPORT",
        field: rate_export,
        default: 10 / h,
        key: [User],
        help: "`exportMyData` per account.",
    },
    /// GraphQL operations by a caller without credentials (no token, or
    /// one that did not verify or has expired), per client IP: one unit
    /// per operation of a request, batches included, spent before it is
    /// parsed. The per-operation rules (`login`, `register`, …) still
    /// apply inside it.
    AnonymousIp {
        name: "anonymous_ip",
        variable: "WARDEN_RATE_ANONYMOUS",
        field: rate_anonymous,
        default: 600 / min,
        key: [Ip],
        help: "GraphQL operations per client IP by callers without a valid access token or API key.",
    },
    /// GraphQL operations by a signed-in user, per session: a revoked
    /// session's token (a thief's, say) spends its own bucket, never the
    /// owner's.
    UserCaller {
        name: "user",
        variable: "WARDEN_RATE_USER",
        field: rate_user,
        default: 1200 / min,
        key: [Session],
        help: "GraphQL operations per session by a signed-in user (an access token with the `USER` role).",
    },
    /// GraphQL operations by a signed-in administrator, per session: an
    /// administrator paging through accounts needs a larger budget.
    AdminCaller {
        name: "admin",
        variable: "WARDEN_RATE_ADMIN",
        field: rate_admin,
        default: 6000 / min,
        key: [Session],
        help: "GraphQL operations per session by a signed-in administrator (an access token with the `ADMIN` role).",
    },
    /// `/oauth/introspect` calls per calling key: a gateway asks once per
    /// request it serves, for all its users, so its budget is its own and
    /// large.
    IntrospectKey {
        name: "introspect_key",
        variable: "WARDEN_RATE_INTROSPECT",
        field: rate_introspect,
        default: 60000 / min,
        key: [ApiKey],
        help: "`/oauth/introspect` calls per calling API key (a gateway's whole traffic), counted before the key is looked up.",
    },
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_variables_and_fields_are_unique_and_in_table_order() {
        let names: HashSet<_> = Rule::ALL.iter().map(|r| r.name()).collect();
        let variables: HashSet<_> = VARIABLES.iter().collect();
        assert_eq!(names.len(), Rule::COUNT);
        assert_eq!(variables.len(), Rule::COUNT);
        for (index, rule) in Rule::ALL.iter().enumerate() {
            assert_eq!(rule.index(), index);
            assert_eq!(VARIABLES[index], rule.variable());
            assert!(rule.variable().starts_with("WARDEN_RATE_"), "{rule:?}");
            assert!(!rule.key_parts().is_empty(), "{rule:?}");
        }
    }

    #[test]
    fn setting_a_rule_changes_that_rule_alone() {
        let mut quotas = RateQuotas::defaults();
        let one: RateQuota = "1/h".parse().unwrap();
        for rule in Rule::ALL {
            assert_ne!(quotas.get(rule), one, "{rule:?}");
            quotas.set(rule, one);
            assert_eq!(quotas.get(rule), one, "{rule:?}");
        }
        assert_eq!(quotas, RateQuotas::uniform(one));
    }

    #[test]
    fn the_key_parts_of_existing_rules_are_pinned() {
        // A bucket's key is stored in Redis: changing a rule's parts would
        // strand the buckets of a running deployment.
        let keys: Vec<_> = Rule::ALL
            .iter()
            .map(|r| (r.name(), r.key_parts()))
            .collect();
        assert_eq!(
            keys,
            [
                ("login_ip", &[KeyPart::Ip][..]),
                ("login_email", &[KeyPart::Ip, KeyPart::Email][..]),
                ("register_ip", &[KeyPart::Ip][..]),
                ("refresh_ip", &[KeyPart::Ip][..]),
                ("audit_log_user", &[KeyPart::User][..]),
                ("mail_ip", &[KeyPart::Ip][..]),
                ("mail_email", &[KeyPart::Email][..]),
                ("email_token_ip", &[KeyPart::Ip][..]),
                ("email_code", &[KeyPart::Email][..]),
                ("passkey_ip", &[KeyPart::Ip][..]),
                ("mfa_user", &[KeyPart::User][..]),
                ("api_key", &[KeyPart::ApiKey][..]),
                ("export_user", &[KeyPart::User][..]),
                ("anonymous_ip", &[KeyPart::Ip][..]),
                ("user", &[KeyPart::Session][..]),
                ("admin", &[KeyPart::Session][..]),
                ("introspect_key", &[KeyPart::ApiKey][..]),
            ]
        );
    }

    /// The README's configuration table has one row per rule, naming its
    /// variable and its default.
    #[test]
    fn every_rule_has_its_row_in_the_readme() {
        // Read at run time: an `include_str!` would make every README edit
        // recompile the library's unit tests.
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        for rule in Rule::ALL {
            let row = format!("| `{}` | `{}` |", rule.variable(), rule.default_quota());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }
}
