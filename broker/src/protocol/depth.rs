//! Nesting-depth guard. amq-protocol parses field tables recursively, so a peer could send a
//! table nested tens of thousands deep in one frame and overflow the stack. Before a payload
//! reaches amq-protocol we walk its field tables with a bounded-depth scanner and refuse
//! anything deeper than [`MAX_TABLE_DEPTH`] (or malformed) with `502 SYNTAX_ERROR`.

use crate::error::ConnectionException;

/// Deepest nesting of tables/arrays we accept. RabbitMQ's own clients never come near it.
pub const MAX_TABLE_DEPTH: usize = 64;

/// Checks the tables inside a method payload (class id, method id, arguments).
pub fn check_method(payload: &[u8]) -> Result<(), ConnectionException> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
        too_deep: false,
    };
    let (Some(class), Some(method)) = (r.u16(), r.u16()) else {
        return Err(ConnectionException::syntax_error("method frame too short"));
    };
    // Layouts of the methods that carry a field table (everything before the table).
    let ok = match (class, method) {
        // connection.start-ok: client-properties first.
        (10, 11) => r.table(0),
        // exchange.declare: reserved, exchange, type, bits, arguments.
        (40, 10) => r.skip(2) && r.shortstr() && r.shortstr() && r.skip(1) && r.table(0),
        // exchange.bind / unbind: reserved, destination, source, routing-key, bits, arguments.
        (40, 30 | 40) => {
            r.skip(2) && r.shortstr() && r.shortstr() && r.shortstr() && r.skip(1) && r.table(0)
        }
        // queue.declare: reserved, queue, bits, arguments.
        (50, 10) => r.skip(2) && r.shortstr() && r.skip(1) && r.table(0),
        // queue.bind: reserved, queue, exchange, routing-key, bits, arguments.
        (50, 20) => {
            r.skip(2) && r.shortstr() && r.shortstr() && r.shortstr() && r.skip(1) && r.table(0)
        }
        // queue.unbind: reserved, queue, exchange, routing-key, arguments.
        (50, 50) => r.skip(2) && r.shortstr() && r.shortstr() && r.shortstr() && r.table(0),
        // basic.consume: reserved, queue, consumer-tag, bits, arguments.
        (60, 20) => r.skip(2) && r.shortstr() && r.shortstr() && r.skip(1) && r.table(0),
        _ => true,
    };
    check_result(ok, &r, payload)
}

/// Checks the `headers` table of basic properties (property flags, then the fields).
pub fn check_properties(props: &[u8]) -> Result<(), ConnectionException> {
    let mut r = Reader {
        buf: props,
        pos: 0,
        too_deep: false,
    };
    let Some(flags) = r.u16() else {
        return Err(ConnectionException::syntax_error(
            "content header too short",
        ));
    };
    let ok = (flags & 0x8000 == 0 || r.shortstr())
        && (flags & 0x4000 == 0 || r.shortstr())
        && (flags & 0x2000 == 0 || r.table(0));
    check_result(ok, &r, props)
}

/// Whether a length-prefixed field table is well formed and not nested too deep.
pub fn table_ok(framed: &[u8]) -> bool {
    let mut r = Reader {
        buf: framed,
        pos: 0,
        too_deep: false,
    };
    r.table(0) && r.pos == framed.len()
}

/// Too deep is our own refusal (502); anything else malformed is reported as RabbitMQ does
/// for undecodable frames (501).
fn check_result(ok: bool, r: &Reader<'_>, payload: &[u8]) -> Result<(), ConnectionException> {
    if ok {
        Ok(())
    } else if r.too_deep {
        Err(ConnectionException::syntax_error(format!(
            "field tables nested deeper than {MAX_TABLE_DEPTH} levels"
        )))
    } else {
        Err(ConnectionException::frame_error(format!(
            "cannot decode {}",
            super::frame::erlang_binary(payload.get(4..).unwrap_or_default())
        )))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Set when the scan stopped at the depth limit (as opposed to malformed input).
    too_deep: bool,
}

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> bool {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }

    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        let s = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let s = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn shortstr(&mut self) -> bool {
        self.u8().is_some_and(|n| self.skip(n as usize))
    }

    fn longstr(&mut self) -> bool {
        self.u32().is_some_and(|n| self.skip(n as usize))
    }

    /// A table at nesting `depth`; recursion is bounded by `MAX_TABLE_DEPTH`.
    fn table(&mut self, depth: usize) -> bool {
        if depth >= MAX_TABLE_DEPTH {
            self.too_deep = true;
            return false;
        }
        let Some(len) = self.u32() else { return false };
        let Some(end) = self
            .pos
            .checked_add(len as usize)
            .filter(|e| *e <= self.buf.len())
        else {
            return false;
        };
        while self.pos < end {
            if !(self.shortstr() && self.value(depth)) {
                return false;
            }
        }
        self.pos == end
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth >= MAX_TABLE_DEPTH {
            self.too_deep = true;
            return false;
        }
        let Some(len) = self.u32() else { return false };
        let Some(end) = self
            .pos
            .checked_add(len as usize)
            .filter(|e| *e <= self.buf.len())
        else {
            return false;
        };
        while self.pos < end {
            if !self.value(depth) {
                return false;
            }
        }
        self.pos == end
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.u8() {
            Some(b't' | b'b' | b'B') => self.skip(1),
            Some(b's' | b'u') => self.skip(2),
            Some(b'I' | b'i' | b'f') => self.skip(4),
            Some(b'l' | b'L' | b'd' | b'T') => self.skip(8),
            Some(b'D') => self.skip(5),
            Some(b'V') => true,
            Some(b'S' | b'x') => self.longstr(),
            Some(b'F') => self.table(depth + 1),
            Some(b'A') => self.array(depth + 1),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `basic.consume` whose arguments nest `depth` tables.
    fn consume_with_nesting(depth: usize) -> Vec<u8> {
        // Innermost table is empty; each level wraps the previous in {"k": F(...)}.
        let mut table = 0u32.to_be_bytes().to_vec();
        for _ in 0..depth {
            let mut outer = Vec::new();
            let entry_len = 1 + 1 + 1 + table.len();
            outer.extend_from_slice(&(entry_len as u32).to_be_bytes());
            outer.extend_from_slice(&[1, b'k', b'F']);
            outer.extend_from_slice(&table);
            table = outer;
        }
        let mut p = vec![0, 60, 0, 20, 0, 0, 1, b'q', 0, 0];
        p.extend_from_slice(&table);
        p
    }

    #[test]
    fn shallow_tables_pass() {
        assert!(check_method(&consume_with_nesting(3)).is_ok());
    }

    #[test]
    fn deep_tables_are_refused_without_recursing_deeply() {
        let err = check_method(&consume_with_nesting(100_000)).expect_err("too deep");
        assert_eq!(err.code, 502);
    }

    #[test]
    fn truncated_table_is_refused() {
        let mut p = consume_with_nesting(2);
        p.truncate(p.len() - 2);
        assert!(check_method(&p).is_err());
    }
}
