//! A software authenticator for the tests: webauthn-authenticator-rs's
//! `SoftPasskey` (its own CTAP and COSE code, not the server's), driven the
//! way a browser drives a platform authenticator.
//!
//! `SoftPasskey` keeps no discoverable credentials, so a browser's part is
//! played here: it is told which credential to use (`allowCredentials`),
//! and the user handle it does not return is filled in from the
//! registration, as a platform authenticator returns it. Neither is
//! signed, so the server's checks are the same as for a real passkey.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};
use webauthn_authenticator_rs::{softpasskey::SoftPasskey, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// Where the tests' pages live: any port of `localhost` is accepted.
pub const ORIGIN: &str = "http://localhost:5173";

/// One authenticator holding passkeys for one account.
pub struct Soft {
    key: SoftPasskey,
    /// Whether it verifies its user.
    uv: bool,
    /// The user handle of the last registration (base64url).
    pub handle: Option<String>,
    /// The credential id of the last registration (base64url).
    pub credential_id: Option<String>,
}

impl Soft {
    /// An authenticator that verifies its user (PIN or biometrics).
    pub fn new() -> Self {
        Self::with_uv(true)
    }

    /// `uv = false`: one that only tests presence (a bare security key).
    pub fn with_uv(uv: bool) -> Self {
        Self {
            key: SoftPasskey::new(uv),
            uv,
            handle: None,
            credential_id: None,
        }
    }

    /// `navigator.credentials.create(options)` at `origin`, as `toJSON()`.
    pub fn create(&mut self, origin: &str, options: &Value) -> Value {
        let mut options = options.clone();
        self.handle = options["publicKey"]["user"]["id"]
            .as_str()
            .map(str::to_owned);
        // SoftPasskey cannot store a discoverable credential and refuses
        // `requireResidentKey`; a platform authenticator would store it.
        options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(false);
        if !self.uv {
            // A client that drops the server's demand for user verification.
            options["publicKey"]["authenticatorSelection"]["userVerification"] =
                json!("discouraged");
        }
        let ccr: CreationChallengeResponse = serde_json::from_value(options).expect("options");
        let credential = self
            .key
            .do_registration(Url::parse(origin).unwrap(), ccr)
            .expect("the authenticator registers");
        let credential = serde_json::to_value(credential).unwrap();
        self.credential_id = credential["id"].as_str().map(str::to_owned);
        credential
    }

    /// `navigator.credentials.get(options)` at `origin`, as `toJSON()`,
    /// answered with this authenticator's passkey.
    pub fn get(&mut self, origin: &str, options: &Value) -> Value {
        let mut options = options.clone();
        let id = self.credential_id.clone().expect("a registered passkey");
        options["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        let rcr: RequestChallengeResponse = serde_json::from_value(options).expect("options");
        let assertion = self
            .key
            .do_authentication(Url::parse(origin).unwrap(), rcr)
            .expect("the authenticator signs");
        let mut assertion = serde_json::to_value(assertion).unwrap();
        assertion["response"]["userHandle"] = json!(self.handle.clone().expect("a handle"));
        assertion
    }
}

/// The 16 bytes of a base64url user handle.
pub fn handle_bytes(handle: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(handle.trim_end_matches('='))
        .unwrap()
}
