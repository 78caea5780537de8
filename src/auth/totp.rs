//! Authenticator-app codes (RFC 6238 TOTP): the mechanism a second factor
//! is built on. SHA-1, 6 digits, 30-second steps and one step of skew each
//! way, the parameters every authenticator app supports.
//!
//! [`TotpKey::matching_step`] says *which* step a code matched, not only
//! whether it did: the caller stores the last accepted step and refuses a
//! code of that step or an earlier one, so a code seen over a shoulder or
//! replayed from a log is worth nothing once used. Code generation is
//! `totp-rs`'s; the tests check it against RFC 6238's published vectors
//! and against a generator written here from the RFC.

use qrcode::{render::svg, EcLevel, QrCode};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use totp_rs::{Algorithm, TOTP};

use super::opaque_token::{constant_time_eq, random_bytes};

/// Bytes of a new secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Steps accepted either side of the current one.
pub const SKEW: u64 = 1;

/// A TOTP secret. `Debug` never shows it.
pub struct TotpKey(SecretSlice<u8>);

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpKey([redacted])")
    }
}

impl TotpKey {
    /// A fresh random secret from the OS.
    pub fn generate() -> Self {
        Self(SecretSlice::from(random_bytes(SECRET_BYTES)))
    }

    /// A stored secret (after unsealing); `None` when shorter than 128 bits.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 16).then(|| Self(SecretSlice::from(bytes)))
    }

    /// The raw secret, for sealing at rest.
    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            // Skew is applied by `matching_step`, which needs the step.
            0,
            STEP,
            self.bytes().to_vec(),
            issuer.map(str::to_owned),
            account.to_owned(),
        )
        .ok()
    }

    /// The secret in base32 without padding, for typing into an app.
    pub fn base32(&self) -> SecretString {
        let text = self
            .totp(None, "")
            .map(|t| t.get_secret_base32())
            .unwrap_or_default();
        SecretString::from(text)
    }

    /// The `otpauth://totp/…` URI an authenticator app scans. A `:` in the
    /// issuer or account (which the URI format reserves) becomes a space.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> SecretString {
        let issuer = issuer.replace(':', " ");
        let account = account.replace(':', " ");
        let uri = self
            .totp(Some(&issuer), &account)
            .map(|t| t.get_url())
            .unwrap_or_default();
        SecretString::from(uri)
    }

    /// The code of the step holding `unix_time`.
    pub fn code_at(&self, unix_time: u64) -> String {
        self.totp(None, "")
            .map(|t| t.generate(unix_time))
            .unwrap_or_default()
    }

    /// The step (`unix_time / 30`) whose code `code` is, among the current
    /// one and [`SKEW`] either side; every candidate is compared, in
    /// constant time, whatever matched first.
    pub fn matching_step(&self, code: &str, unix_time: u64) -> Option<u64> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_time / STEP;
        let mut found = None;
        for step in now.saturating_sub(SKEW)..=now + SKEW {
            if constant_time_eq(self.code_at(step * STEP).as_bytes(), code.as_bytes()) {
                found = Some(step);
            }
        }
        found
    }
}

/// `uri` as an SVG QR code (medium error correction, quiet zone kept).
pub fn qr_svg(uri: &SecretString) -> Option<String> {
    let code = QrCode::with_error_correction_level(uri.expose_secret(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha1::Sha1;

    use super::*;

    /// RFC 6238's SHA-1 secret: the ASCII of "12345678901234567890".
    fn rfc_key() -> TotpKey {
        TotpKey::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    /// RFC 6238 Appendix B, SHA-1 rows: (time, 8-digit TOTP). A 6-digit
    /// code is the same number modulo 10^6.
    const VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    /// HOTP (RFC 4226 §5.3) at counter `time / 30`, written from the RFCs
    /// with the `hmac` and `sha1` crates: not the implementation the server
    /// uses.
    fn reference(key: &[u8], time: u64, digits: u32) -> String {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap();
        mac.update(&(time / 30).to_be_bytes());
        let hash = mac.finalize().into_bytes();
        let offset = usize::from(hash[19] & 0x0f);
        let binary = (u32::from(hash[offset]) & 0x7f) << 24
            | u32::from(hash[offset + 1]) << 16
            | u32::from(hash[offset + 2]) << 8
            | u32::from(hash[offset + 3]);
        format!(
            "{:0width$}",
            binary % 10u32.pow(digits),
            width = digits as usize
        )
    }

    #[test]
    fn codes_match_rfc_6238_vectors_and_an_independent_generator() {
        let key = rfc_key();
        for (time, eight) in VECTORS {
            assert_eq!(
                reference(key.bytes(), time, 8),
                eight,
                "reference at {time}"
            );
            assert_eq!(key.code_at(time), eight[2..], "6 digits at {time}");
        }
        let fresh = TotpKey::generate();
        assert_eq!(fresh.bytes().len(), SECRET_BYTES);
        for time in (0..40).map(|i| 1_700_000_000 + i * 977) {
            assert_eq!(fresh.code_at(time), reference(fresh.bytes(), time, 6));
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let key = rfc_key();
        let t = 1_111_111_111; // step 37037037, 1 s into it
        let step = t / STEP;
        let code = key.code_at(t);
        assert_eq!(key.matching_step(&code, t), Some(step));
        // Across the step boundaries: the previous and next step still take it.
        assert_eq!(key.matching_step(&code, t + STEP), Some(step));
        assert_eq!(key.matching_step(&code, t - STEP), Some(step));
        // Two steps away it is refused.
        assert_eq!(key.matching_step(&code, t + 2 * STEP), None);
        assert_eq!(key.matching_step(&code, t - 2 * STEP), None);
        // The next step's code, presented now, names that step.
        let next = key.code_at(t + STEP);
        assert_eq!(key.matching_step(&next, t), Some(step + 1));
        for bad in ["", "12345", "1234567", "12345a", " 123456"] {
            assert_eq!(key.matching_step(bad, t), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_and_qr_code_carry_the_secret_for_an_app() {
        let key = rfc_key();
        let base32 = key.base32();
        assert_eq!(base32.expose_secret(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = key.otpauth_uri("Acme: Auth", "ada@example.com");
        let uri = uri.expose_secret();
        assert!(
            uri.starts_with("otpauth://totp/Acme%20%20Auth:ada%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Acme%20%20Auth"), "{uri}");
        let svg = qr_svg(&SecretString::from(uri.to_owned())).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(
            !svg.contains("GEZDGNBV"),
            "the SVG draws the secret, it does not spell it"
        );
        assert_eq!(format!("{key:?}"), "TotpKey([redacted])");
        assert!(TotpKey::from_bytes(vec![1; 15]).is_none());
    }
}
