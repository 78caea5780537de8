//! WebAuthn through webauthn-rs: the relying party built from
//! configuration, and the few protocol facts the services need (the
//! challenge a client echoed, a credential's flags).

use webauthn_rs::prelude::{
    Credential, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder,
};

use crate::config::webauthn::RelyingParty;

/// How long a ceremony's challenge lives (also the timeout the browser is given).
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The relying party, or why the settings cannot make one.
pub fn build(rp: &RelyingParty, product_name: &str) -> Result<Webauthn, String> {
    let urls = rp
        .origins
        .iter()
        .map(|o| Url::parse(o).map_err(|e| format!("WARDEN_WEBAUTHN_ORIGINS: `{o}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((first, rest)) = urls.split_first() else {
        return Err("WARDEN_WEBAUTHN_ORIGINS: no origin to accept passkeys from".into());
    };
    let mut builder = WebauthnBuilder::new(&rp.id, first)
        .map_err(|e| format!("WARDEN_WEBAUTHN_RP_ID `{}` with `{first}`: {e}", rp.id))?
        .rp_name(product_name)
        .timeout(CEREMONY_TTL)
        .allow_any_port(rp.any_port());
    for url in rest {
        builder = builder.append_allowed_origin(url);
    }
    builder
        .build()
        .map_err(|e| format!("WARDEN_WEBAUTHN_RP_ID / WARDEN_WEBAUTHN_ORIGINS: {e}"))
}

/// The challenge (base64url, as sent) a client's `clientDataJSON` echoes.
fn echoed_challenge(client_data_json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json).ok()?;
    (data.challenge.len() <= 128).then_some(data.challenge.trim_end_matches('=').to_owned())
}

/// The challenge a registration response answers.
pub fn registration_challenge(response: &RegisterPublicKeyCredential) -> Option<String> {
    echoed_challenge(&response.response.client_data_json)
}

/// The challenge an assertion answers.
pub fn assertion_challenge(response: &PublicKeyCredential) -> Option<String> {
    echoed_challenge(&response.response.client_data_json)
}

/// A credential id as stored: base64url without padding.
pub fn credential_id(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The counter and backup flags a stored passkey has now.
pub struct Flags {
    /// Signature counter (0: the authenticator keeps none).
    pub counter: u32,
    /// May be synced to other devices.
    pub backup_eligible: bool,
    /// Is synced now.
    pub backup_state: bool,
}

/// The flags of `passkey`.
pub fn flags(passkey: &Passkey) -> Flags {
    let cred = Credential::from(passkey.clone());
    Flags {
        counter: cred.counter,
        backup_eligible: cred.backup_eligible,
        backup_state: cred.backup_state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echoed_challenge_is_read_without_padding_and_bounded() {
        let json = br#"{"type":"webauthn.get","challenge":"abc_-1==","origin":"http://localhost"}"#;
        assert_eq!(echoed_challenge(json).as_deref(), Some("abc_-1"));
        let long = format!(r#"{{"challenge":"{}"}}"#, "a".repeat(129));
        assert_eq!(echoed_challenge(long.as_bytes()), None);
        assert_eq!(echoed_challenge(b"not json"), None);
    }

    #[test]
    fn localhost_accepts_any_port_and_a_domain_does_not() {
        let rp = RelyingParty {
            id: "localhost".into(),
            origins: vec!["http://localhost:8080".into()],
        };
        assert!(build(&rp, "Warden").is_ok());
        let wrong = RelyingParty {
            id: "example.com".into(),
            origins: vec!["https://evil.test".into()],
        };
        // webauthn-rs refuses an origin that is not the RP ID or under it.
        assert!(build(&wrong, "Warden").is_err());
    }
}
