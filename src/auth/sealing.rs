//! Sealing of secrets kept at rest for a short while (the rendered message
//! of an unsent outbox row, which may carry a raw token): ChaCha20-Poly1305
//! under a server key, a random 96-bit nonce per seal, and the row's id as
//! associated data, so a sealed body moved to another row does not open.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Key, Nonce,
};

use super::opaque_token::random_bytes;

const NONCE_LEN: usize = 12;

/// The key that seals outbox bodies. Cheap to clone.
#[derive(Clone)]
pub struct SealKey(Key);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// A key from 32 stored bytes; `None` for any other length.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(|k| Self(Key::from(k)))
    }

    /// Nonce then ciphertext (with its tag) of `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&random_bytes(NONCE_LEN));
        let cipher = ChaCha20Poly1305::new(&self.0);
        let mut out = nonce.to_vec();
        // Encryption fails only for inputs over 256 GiB.
        if let Ok(ct) = cipher.encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        ) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// The plaintext of `sealed`, if it was sealed with this key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).ok()?;
        ChaCha20Poly1305::new(&self.0)
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_and_associated_data() {
        let key = SealKey::new(&random_bytes(32)).expect("32 bytes");
        let sealed = key.seal(b"row-1", b"token 123");
        assert!(!sealed.windows(9).any(|w| w == b"token 123"));
        assert_eq!(
            key.open(b"row-1", &sealed).as_deref(),
            Some(&b"token 123"[..])
        );
        assert_eq!(key.open(b"row-2", &sealed), None);
        let other = SealKey::new(&random_bytes(32)).expect("32 bytes");
        assert_eq!(other.open(b"row-1", &sealed), None);
        assert_ne!(
            key.seal(b"row-1", b"token 123"),
            sealed,
            "a fresh nonce each time"
        );
    }
}
