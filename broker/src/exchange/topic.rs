//! Topic matching: words separated by `.`, `*` matches exactly one word, `#` zero or more.
//! Patterns are split once at bind time; matching is an iterative dynamic programme over the
//! words (no recursion, O(pattern × key) worst case).

/// A binding key split into words, ready to match routing keys against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern {
    words: Vec<Word>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Word {
    Literal(Box<str>),
    Star,
    Hash,
}

impl TopicPattern {
    /// Splits a binding key.
    pub fn new(pattern: &str) -> Self {
        let mut words: Vec<Word> = Vec::new();
        // An empty key has no words (RabbitMQ: `*` does not match "", `#` does).
        for w in pattern.split('.').filter(|_| !pattern.is_empty()) {
            let word = match w {
                "*" => Word::Star,
                "#" => Word::Hash,
                other => Word::Literal(other.into()),
            };
            // Consecutive `#` are equivalent to one.
            if !(word == Word::Hash && words.last() == Some(&Word::Hash)) {
                words.push(word);
            }
        }
        Self { words }
    }

    /// Whether `routing_key` matches.
    pub fn matches(&self, routing_key: &str) -> bool {
        let key = TopicKey::new(routing_key);
        self.matches_key(&key, &mut TopicScratch::default())
    }

    /// Whether an already split key matches; `scratch` is reused across bindings so routing
    /// one message through many bindings allocates once.
    pub fn matches_key(&self, key: &TopicKey<'_>, scratch: &mut TopicScratch) -> bool {
        let key = &key.words;
        // Fast paths for the common shapes.
        if let [Word::Hash] = self.words.as_slice() {
            return true;
        }
        if !self.words.contains(&Word::Hash) {
            // Without `#` the pattern consumes exactly one key word per pattern word.
            return self.words.len() == key.len()
                && self.words.iter().zip(key).all(|(w, k)| match w {
                    Word::Star => true,
                    Word::Literal(lit) => **lit == **k,
                    Word::Hash => false,
                });
        }
        // reachable[j]: the pattern prefix seen so far can consume exactly key[..j].
        let TopicScratch { reachable, next } = scratch;
        reachable.clear();
        reachable.resize(key.len() + 1, false);
        reachable[0] = true;
        for word in &self.words {
            next.clear();
            next.resize(key.len() + 1, false);
            match word {
                Word::Hash => {
                    let mut any = false;
                    for j in 0..=key.len() {
                        any |= reachable[j];
                        next[j] = any;
                    }
                }
                Word::Star => {
                    next[1..].copy_from_slice(&reachable[..key.len()]);
                }
                Word::Literal(lit) => {
                    for j in 0..key.len() {
                        next[j + 1] = reachable[j] && key[j] == &**lit;
                    }
                }
            }
            std::mem::swap(reachable, next);
            if !reachable.iter().any(|r| *r) {
                return false;
            }
        }
        reachable[key.len()]
    }
}

/// A routing key split into words once per message.
#[derive(Debug)]
pub struct TopicKey<'a> {
    words: Vec<&'a str>,
}

impl<'a> TopicKey<'a> {
    /// Splits `routing_key` (an empty key has no words).
    pub fn new(routing_key: &'a str) -> Self {
        let words = if routing_key.is_empty() {
            Vec::new()
        } else {
            routing_key.split('.').collect()
        };
        Self { words }
    }
}

/// Buffers reused by [`TopicPattern::matches_key`].
#[derive(Debug, Default)]
pub struct TopicScratch {
    reachable: Vec<bool>,
    next: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, k: &str) -> bool {
        TopicPattern::new(p).matches(k)
    }

    #[test]
    fn spec_examples() {
        assert!(m("a.b.c", "a.b.c"));
        assert!(!m("a.b.c", "a.b"));
        assert!(m("*.b.*", "a.b.c"));
        assert!(!m("*.b.*", "a.b"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#", ""));
        assert!(m("#", "a.b"));
        assert!(m("a.#.b", "a.b"));
        assert!(m("a.#.b", "a.x.y.b"));
        assert!(!m("a.#.b", "a.x.y.c"));
        assert!(m("#.b", "b"));
        assert!(!m("*", ""));
        assert!(!m("*", "a.b"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a.*.#", "a.b"));
        assert!(!m("a.*.#", "a"));
        assert!(m("#.#", "x"));
    }

    /// A simple recursive reference matcher for the property test (test-only; inputs are tiny).
    fn reference(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(&"#"), _) => reference(&p[1..], k) || (!k.is_empty() && reference(p, &k[1..])),
            (Some(_), None) => false,
            (Some(&"*"), Some(_)) => reference(&p[1..], &k[1..]),
            (Some(w), Some(x)) => w == x && reference(&p[1..], &k[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            p in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*"), Just("#")], 1..6),
            k in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..6),
        ) {
            let pattern = p.join(".");
            let key = k.join(".");
            prop_assert_eq!(m(&pattern, &key), reference(&p, &k), "{} vs {}", pattern, key);
        }
    }
}
