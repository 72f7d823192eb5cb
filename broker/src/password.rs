//! Password hashes in RabbitMQ's format, so users move between our definitions file and
//! RabbitMQ's (`rabbitmqctl export_definitions`, `/api/definitions`) unchanged: the stored
//! `password_hash` is base64(salt ‖ H(salt ‖ utf8(password))) with a 4-byte random salt, and
//! H named by `hashing_algorithm` (`rabbit_password_hashing_sha256` is RabbitMQ's default;
//! see <https://www.rabbitmq.com/docs/passwords#computing-password-hash>).
//!
//! Must not: keep or log a plain password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256, Sha512};

/// Salt length RabbitMQ uses (`rabbit_password:generate_salt/0`).
const SALT_LEN: usize = 4;

/// How a stored hash was computed (RabbitMQ's `hashing_algorithm` module names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashingAlgorithm {
    /// `rabbit_password_hashing_sha256`, RabbitMQ's default since 3.6.
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// Anything else (`rabbit_password_hashing_md5` from RabbitMQ < 3.6, a plugin's): kept
    /// so the definitions round-trip, but no password matches it.
    Other(String),
}

impl HashingAlgorithm {
    /// The algorithm a definitions file names; an empty name means SHA-256, as in RabbitMQ's
    /// import of files that predate the field.
    pub fn from_name(name: &str) -> Self {
        match name {
            "" | "rabbit_password_hashing_sha256" => Self::Sha256,
            "rabbit_password_hashing_sha512" => Self::Sha512,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name RabbitMQ gives it in definitions.
    pub fn name(&self) -> &str {
        match self {
            Self::Sha256 => "rabbit_password_hashing_sha256",
            Self::Sha512 => "rabbit_password_hashing_sha512",
            Self::Other(name) => name,
        }
    }

    fn digest(&self, salt: &[u8], password: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Sha256 => Some(
                Sha256::new()
                    .chain_update(salt)
                    .chain_update(password)
                    .finalize()
                    .to_vec(),
            ),
            Self::Sha512 => Some(
                Sha512::new()
                    .chain_update(salt)
                    .chain_update(password)
                    .finalize()
                    .to_vec(),
            ),
            Self::Other(_) => None,
        }
    }
}

/// A stored password: salt and digest, never the password itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashingAlgorithm,
    /// salt ‖ digest, as RabbitMQ stores it (empty for a user without a password).
    salted: Vec<u8>,
}

/// A `password_hash` that is not base64.
#[derive(Debug, thiserror::Error)]
#[error("password_hash is not valid base64: {0}")]
pub struct InvalidHash(base64::DecodeError);

impl PasswordHash {
    /// Hashes `password` with SHA-256 and a fresh random salt (what RabbitMQ does for
    /// `add_user` and the default user).
    pub fn new(password: &str) -> Self {
        Self::with_salt(rand::random::<[u8; SALT_LEN]>(), password)
    }

    fn with_salt(salt: [u8; SALT_LEN], password: &str) -> Self {
        let algorithm = HashingAlgorithm::Sha256;
        let mut salted = salt.to_vec();
        salted.extend(
            algorithm
                .digest(&salt, password.as_bytes())
                .unwrap_or_default(),
        );
        Self { algorithm, salted }
    }

    /// A hash from a definitions file (`password_hash`, `hashing_algorithm`).
    pub fn from_definitions(password_hash: &str, algorithm: &str) -> Result<Self, InvalidHash> {
        Ok(Self {
            algorithm: HashingAlgorithm::from_name(algorithm),
            salted: BASE64.decode(password_hash).map_err(InvalidHash)?,
        })
    }

    /// The `password_hash` of the definitions file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.salted)
    }

    /// The algorithm (`hashing_algorithm` in the definitions file).
    pub fn algorithm(&self) -> &HashingAlgorithm {
        &self.algorithm
    }

    /// Whether `password` is the one this hash was made from.
    pub fn verify(&self, password: &str) -> bool {
        let Some((salt, stored)) = self.salted.split_at_checked(SALT_LEN) else {
            return false;
        };
        let Some(computed) = self.algorithm.digest(salt, password.as_bytes()) else {
            return false;
        };
        // Same length by construction of the algorithm; compare without an early exit.
        computed.len() == stored.len()
            && computed
                .iter()
                .zip(stored)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by RabbitMQ 3.10.8: `rabbitmqctl add_user h3-hash-probe 'S3cret pässwörd!'`, then
    /// `rabbitmqctl export_definitions -` (the user was deleted again).
    const RABBITMQ_HASH: &str = "7rkL9lhq1mWYuOHvj0BoNtaNX//3xCV43fc3+K5L7jFzkl8h";
    const RABBITMQ_PASSWORD: &str = "S3cret pässwörd!";
    /// The default `guest` user of the same RabbitMQ (`guest` / `guest`).
    const RABBITMQ_GUEST_HASH: &str = "RJek3VUqR1xy4Yo2h/+xf/FBwoJcDXGGJ5Ok4CFfpQkrG1uz";

    #[test]
    fn accepts_hashes_made_by_rabbitmq() {
        let h = PasswordHash::from_definitions(RABBITMQ_HASH, "rabbit_password_hashing_sha256")
            .expect("base64");
        assert!(h.verify(RABBITMQ_PASSWORD));
        assert!(!h.verify("S3cret passwörd!"));
        assert!(!h.verify(""));
        let guest = PasswordHash::from_definitions(RABBITMQ_GUEST_HASH, "").expect("base64");
        assert_eq!(guest.algorithm(), &HashingAlgorithm::Sha256);
        assert!(guest.verify("guest"));
        assert!(!guest.verify("Guest"));
    }

    #[test]
    fn our_hashes_have_rabbitmqs_layout() {
        let h = PasswordHash::new("secret");
        let raw = BASE64.decode(h.to_base64()).expect("base64");
        assert_eq!(
            raw.len(),
            SALT_LEN + 32,
            "4-byte salt, then a SHA-256 digest"
        );
        let (salt, digest) = raw.split_at(SALT_LEN);
        let expected = Sha256::new()
            .chain_update(salt)
            .chain_update(b"secret")
            .finalize();
        assert_eq!(digest, expected.as_slice());
        assert_eq!(h.algorithm().name(), "rabbit_password_hashing_sha256");
        assert!(h.verify("secret"));
        assert!(!h.verify("secret "));
        // Salted: the same password hashes differently each time.
        assert_ne!(PasswordHash::new("secret").to_base64(), h.to_base64());
        let again = PasswordHash::from_definitions(&h.to_base64(), h.algorithm().name())
            .expect("round trip");
        assert!(again.verify("secret"));
    }

    #[test]
    fn sha512_and_unusable_hashes() {
        let salt = [1u8, 2, 3, 4];
        let mut raw = salt.to_vec();
        raw.extend(
            Sha512::new()
                .chain_update(salt)
                .chain_update(b"pw")
                .finalize(),
        );
        let h =
            PasswordHash::from_definitions(&BASE64.encode(&raw), "rabbit_password_hashing_sha512")
                .expect("base64");
        assert!(h.verify("pw"));
        assert!(!h.verify("pw2"));
        // A user without a password (RabbitMQ allows it for x509 logins) never matches.
        let empty = PasswordHash::from_definitions("", "rabbit_password_hashing_sha256")
            .expect("empty is valid base64");
        assert!(!empty.verify(""));
        let md5 =
            PasswordHash::from_definitions(RABBITMQ_GUEST_HASH, "rabbit_password_hashing_md5")
                .expect("base64");
        assert!(!md5.verify("guest"));
        assert_eq!(md5.algorithm().name(), "rabbit_password_hashing_md5");
        assert!(PasswordHash::from_definitions("not base64!", "").is_err());
        assert!(!format!("{h:?}").contains(&BASE64.encode(&raw)));
    }
}
