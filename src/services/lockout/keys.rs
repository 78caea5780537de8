//! Who is trying ([`Client`]) and the two `login_attempts` keys of one
//! attempt ([`Keys`]): the email's pseudonym, and the client's key that
//! extends it.

use uuid::Uuid;

/// Who is trying, as far as the lockout can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client<'a> {
    /// An untrusted client: its IP bucket (`limits::ip_key`).
    Ip(&'a str),
    /// A trusted device of the account, proven by its device token: counted
    /// on its own, so attackers sharing its address cannot lock it out.
    Device(Uuid),
    /// A live session of the account (`changePassword`): trusted like a
    /// device, and counted per session, so one stolen session gets the
    /// threshold in all, from however many addresses it calls.
    Session(Uuid),
}

/// The two `login_attempts` keys of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The email's counter: its pseudonym.
    pub email: String,
    /// The client's counter for that email.
    pub client: String,
    /// Whether the client is a trusted device.
    pub trusted: bool,
}

impl Keys {
    /// Keys for `client` trying the email whose pseudonym is `pseudonym`.
    pub fn new(pseudonym: &str, client: Client<'_>) -> Self {
        let (client, trusted) = match client {
            Client::Ip(bucket) => (format!("{pseudonym}|ip:{bucket}"), false),
            Client::Device(id) => (format!("{pseudonym}|device:{id}"), true),
            Client::Session(id) => (format!("{pseudonym}|session:{id}"), true),
        };
        Self {
            email: pseudonym.to_owned(),
            client,
            trusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_extend_the_email_key_so_the_email_row_sorts_first() {
        let ip = Keys::new("abc", Client::Ip("192.0.2.1"));
        let device = Keys::new("abc", Client::Device(Uuid::nil()));
        assert!(ip.email < ip.client && ip.client.starts_with("abc|ip:"));
        assert!(device.trusted && !ip.trusted);
        assert_ne!(ip.client, device.client);
    }
}
