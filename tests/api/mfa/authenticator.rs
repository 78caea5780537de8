//! An authenticator app for the tests, written from RFC 6238 (TOTP over
//! RFC 4226's HOTP, HMAC-SHA1, 6 digits, 30 s) and RFC 4648 (base32).

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A TOTP secret as an app holds it.
pub struct Authenticator(Vec<u8>);

impl Authenticator {
    /// From the base32 text a user would type (no padding, uppercase).
    pub fn from_base32(text: &str) -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut bits = 0u32;
        let mut held = 0u32;
        let mut out = Vec::new();
        for c in text.bytes().filter(|&c| c != b'=') {
            let value = ALPHABET
                .iter()
                .position(|&a| a == c.to_ascii_uppercase())
                .unwrap_or_else(|| panic!("not base32: {c}"));
            bits = (bits << 5) | u32::try_from(value).unwrap();
            held += 5;
            if held >= 8 {
                held -= 8;
                out.push(u8::try_from((bits >> held) & 0xff).unwrap());
            }
        }
        Self(out)
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The code of the step holding `unix_time`.
    pub fn code_at(&self, unix_time: u64) -> String {
        let counter = unix_time / 30;
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.0).unwrap();
        mac.update(&counter.to_be_bytes());
        let hash = mac.finalize().into_bytes();
        let offset = usize::from(hash[19] & 0x0f);
        let binary = (u32::from(hash[offset]) & 0x7f) << 24
            | u32::from(hash[offset + 1]) << 16
            | u32::from(hash[offset + 2]) << 8
            | u32::from(hash[offset + 3]);
        format!("{:06}", binary % 1_000_000)
    }
}

#[test]
fn the_test_authenticator_matches_rfc_6238s_sha1_vectors() {
    // RFC 6238 appendix B: the ASCII secret "12345678901234567890", 8 digits
    // there; the last six of each are what a 6-digit code is.
    let auth = Authenticator::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(auth.bytes(), b"12345678901234567890");
    for (t, eight) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_234_567_890, "89005924"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(auth.code_at(t), eight[2..], "T = {t}");
    }
}
