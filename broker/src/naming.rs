//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags.

use rand::Rng;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// 22 random URL-safe characters (128 bits, as RabbitMQ's base64-encoded GUIDs).
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..64)] as char)
        .collect()
}
