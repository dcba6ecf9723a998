use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// A freshly generated key: `key` is shown to the caller once; only `token` is stored.
#[derive(Clone)]
pub struct NewKey {
    pub key: String,
    pub token: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"<redacted>")
            .field("token", &self.token)
            .finish()
    }
}

/// A new random key, `sk-` and 40 alphanumeric characters (≈ 238 bits).
pub fn generate_key() -> NewKey {
    let body: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let key = format!("sk-{body}");
    let token = hash_key(&key);
    NewKey { key, token }
}

/// The stored identity of a key: lowercase hex SHA-256, as LiteLLM stores `token`.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// LiteLLM's display form of a key: `sk-...` and its last four characters.
pub fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_differ_and_hash_to_their_token() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("sk-") && a.key.len() == 43);
        assert_eq!(hash_key(&a.key), a.token);
        assert!(!format!("{a:?}").contains(&a.key));
        assert_eq!(key_name("sk-abcdefgh"), "sk-...efgh");
    }
}
