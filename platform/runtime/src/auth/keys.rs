//! Ed25519 keys as one line of text each: the base64url (unpadded) encoding of the
//! 32-byte private seed or public key, as JWK's `d` and `x` spell them, so that a key
//! fits an environment variable, a `config.env` line or a Kubernetes Secret literal.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};

/// Why a configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("is empty")]
    Empty,
    #[error("is not base64url: {0}")]
    Encoding(String),
    #[error("holds {0} bytes; an Ed25519 key is 32 bytes (43 base64url characters)")]
    Length(usize),
}

fn decode(text: &str) -> Result<[u8; 32], KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|error| KeyError::Encoding(error.to_string()))?;
    let length = bytes.len();
    <[u8; 32]>::try_from(bytes).map_err(|_| KeyError::Length(length))
}

/// A private key: signs this service's tokens (and, for the orchestrator, grants).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKey")
            .field(&self.public().encode())
            .finish()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        Self::from_seed(rand::random())
    }

    /// The key whose private seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A key anyone can derive from `label`: for tests and development clusters only,
    /// where every party must agree on keys written nowhere secret.
    pub fn public_for_development(label: &str) -> Self {
        Self::from_seed(*blake3::hash(label.as_bytes()).as_bytes())
    }

    pub fn decode(text: &SecretString) -> Result<Self, KeyError> {
        decode(text.expose_secret().trim()).map(Self::from_seed)
    }

    /// The one-line text form, to be kept secret.
    pub fn encode(&self) -> SecretString {
        SecretString::from(URL_SAFE_NO_PAD.encode(self.0.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn encoding_key(&self) -> EncodingKey {
        let der = self
            .0
            .to_pkcs8_der()
            .expect("an Ed25519 seed always encodes as PKCS#8");
        EncodingKey::from_ed_der(der.as_bytes())
    }
}

/// A public key: verifies what the holder of its private half signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn decode(text: &str) -> Result<Self, KeyError> {
        let bytes = decode(text.trim())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|error| KeyError::Encoding(error.to_string()))?;
        Ok(Self(bytes))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text() {
        let key = SigningKey::generate();
        let again = SigningKey::decode(&key.encode()).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(
            PublicKey::decode(&key.public().encode()).unwrap(),
            key.public()
        );
    }

    #[test]
    fn malformed_keys_are_named() {
        assert!(matches!(PublicKey::decode(""), Err(KeyError::Empty)));
        assert!(matches!(
            PublicKey::decode("c2hvcnQ"),
            Err(KeyError::Length(5))
        ));
        assert!(matches!(
            PublicKey::decode("not base64!"),
            Err(KeyError::Encoding(_))
        ));
    }
}
