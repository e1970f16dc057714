//! Reading the answer's header blocks (HPACK, RFC 7541), only to name a
//! failed call: `:status`, `grpc-status` and `grpc-message`. The answer
//! itself never depends on them, so a block that does not decode ends the
//! reading (every later block would depend on the dynamic table it left
//! behind) and the call goes on as if no header were known.

use crate::prelude::*;

/// The static table (RFC 7541 Appendix A): index 1 is the first entry.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The Huffman code's length in bits for each byte value (RFC 7541
/// Appendix B); end-of-string is 30 bits. The code is canonical: codes are
/// given in order of length, then of symbol, so these lengths are the whole
/// code.
const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
];

const EOS_LENGTH: usize = 30;

/// The canonical code's decoding tables: how many codes each length has,
/// and the symbols in code order (the end-of-string symbol, 256, last).
struct Canonical {
    count: [u16; EOS_LENGTH + 1],
    symbols: [u16; 257],
}

const CANONICAL: Canonical = {
    let mut count = [0u16; EOS_LENGTH + 1];
    let mut symbols = [0u16; 257];
    let mut at = 0;
    let mut length = 1;
    while length <= EOS_LENGTH {
        let mut symbol = 0;
        while symbol < 257 {
            let l = if symbol < 256 {
                LENGTHS[symbol] as usize
            } else {
                EOS_LENGTH
            };
            if l == length {
                symbols[at] = symbol as u16;
                count[length] += 1;
                at += 1;
            }
            symbol += 1;
        }
        length += 1;
    }
    Canonical { count, symbols }
};

/// Decodes a Huffman-coded string (RFC 7541 §5.2); `None` when it does
/// not decode (the end-of-string symbol, or padding that is longer than 7
/// bits or not all ones).
fn huffman(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    // The code read so far, its length, the first code of that length and
    // the index in `symbols` of that first code.
    let (mut code, mut length, mut first, mut index) = (0u32, 0usize, 0u32, 0usize);
    for byte in bytes {
        for bit in (0..8).rev() {
            code |= u32::from(byte >> bit & 1);
            length += 1;
            let count = u32::from(*CANONICAL.count.get(length)?);
            if code < first + count {
                let symbol = *CANONICAL.symbols.get(index + (code - first) as usize)?;
                out.push(u8::try_from(symbol).ok()?); // 256 is end-of-string
                (code, length, first, index) = (0, 0, 0, 0);
            } else {
                index += count as usize;
                first = (first + count) << 1;
                code <<= 1;
            }
        }
    }
    // What is left is padding: a prefix of end-of-string, all ones, under
    // 8 bits. `code` holds its bits shifted left once.
    (length < 8 && code >> 1 == (1u32 << length) - 1).then_some(out)
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), at most 2²⁴.
fn integer(bytes: &mut &[u8], n: u32) -> Option<usize> {
    let (&first, rest) = bytes.split_first()?;
    *bytes = rest;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Some(value);
    }
    for shift in (0..=21).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value += usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// A string literal (RFC 7541 §5.2).
fn string(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let coded = bytes.first()? & 0x80 != 0;
    let n = integer(bytes, 7)?;
    let raw = bytes.get(..n)?;
    *bytes = &bytes[n..];
    if coded {
        huffman(raw)
    } else {
        Some(raw.to_vec())
    }
}

/// The size limit of the dynamic table: the default, since the client
/// never sends SETTINGS_HEADER_TABLE_SIZE.
const TABLE_SIZE: usize = 4096;

/// The decoder's state across a connection's header blocks, and what it
/// has learnt.
#[derive(Debug, Default)]
pub(super) struct Headers {
    /// Newest first.
    table: Vec<(Vec<u8>, Vec<u8>)>,
    size: usize,
    limit: usize,
    /// A block did not decode: nothing more is read.
    broken: bool,
    pub status: Option<Vec<u8>>,
    pub grpc_status: Option<Vec<u8>>,
    pub grpc_message: Option<Vec<u8>>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers {
            limit: TABLE_SIZE,
            ..Headers::default()
        }
    }

    /// Reads one whole header block.
    pub fn read(&mut self, block: &[u8]) {
        if !self.broken && self.decode(block).is_none() {
            self.stop();
        }
    }

    /// Reads nothing more (a block did not decode, or could not be kept).
    pub fn stop(&mut self) {
        self.broken = true;
        self.table = Vec::new();
    }

    fn field(&self, index: usize) -> Option<(&[u8], &[u8])> {
        match index {
            0 => None,
            1..=61 => STATIC
                .get(index - 1)
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (n.as_slice(), v.as_slice())),
        }
    }

    fn evict(&mut self) {
        while self.size > self.limit {
            match self.table.pop() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => self.size = 0,
            }
        }
    }

    fn decode(&mut self, mut block: &[u8]) -> Option<()> {
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed field.
                let index = integer(&mut block, 7)?;
                let (name, value) = self.field(index)?;
                // Only the three names are kept: nothing else is copied.
                if let Some(slot) = Headers::slot(name) {
                    let value = value.to_vec();
                    *self.kept(slot) = Some(value);
                }
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update.
                let size = integer(&mut block, 5)?;
                if size > TABLE_SIZE {
                    return None;
                }
                self.limit = size;
                self.evict();
            } else {
                // A literal: with incremental indexing (01), without
                // indexing (0000) or never indexed (0001).
                let indexing = first & 0xc0 == 0x40;
                let index = integer(&mut block, if indexing { 6 } else { 4 })?;
                let name = match index {
                    0 => string(&mut block)?,
                    i => self.field(i)?.0.to_vec(),
                };
                let value = string(&mut block)?;
                if indexing {
                    let size = name.len() + value.len() + 32;
                    self.table.insert(0, (name.clone(), value.clone()));
                    self.size += size;
                    self.evict();
                }
                self.learn(&name, value);
            }
        }
        Some(())
    }

    /// Which of the kept headers `name` is.
    fn slot(name: &[u8]) -> Option<usize> {
        [&b":status"[..], b"grpc-status", b"grpc-message"]
            .iter()
            .position(|n| *n == name)
    }

    fn kept(&mut self, slot: usize) -> &mut Option<Vec<u8>> {
        match slot {
            0 => &mut self.status,
            1 => &mut self.grpc_status,
            _ => &mut self.grpc_message,
        }
    }

    fn learn(&mut self, name: &[u8], value: Vec<u8>) {
        if let Some(slot) = Headers::slot(name) {
            *self.kept(slot) = Some(value);
        }
    }
}

const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `grpc-message` decoded: percent-encoded UTF-8 (gRPC over HTTP/2), shown
/// lossily and cut at 200 bytes.
fn message_text(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let hex = |at: usize| raw.get(at).and_then(|c| char::from(*c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out.truncate(200);
    String::from_utf8_lossy(&out).into_owned()
}

impl Headers {
    /// Why the answer is a failure, when its headers say so: an HTTP
    /// status other than 200, or a gRPC status other than 0.
    pub fn failure(&self) -> Option<String> {
        if let Some(status) = self.status.as_deref().filter(|s| *s != b"200") {
            return Some(format!(
                "the server answered HTTP status {}",
                String::from_utf8_lossy(status)
            ));
        }
        let code = self.grpc_status.as_deref().filter(|s| *s != b"0")?;
        let number = core::str::from_utf8(code)
            .ok()
            .and_then(|c| c.parse::<usize>().ok());
        let mut out = match number.and_then(|n| GRPC_CODES.get(n)) {
            Some(name) => format!("gRPC status {} ({name})", String::from_utf8_lossy(code)),
            None => format!("gRPC status {}", String::from_utf8_lossy(code)),
        };
        if let Some(message) = self.grpc_message.as_deref().filter(|m| !m.is_empty()) {
            out.push_str(": ");
            out.push_str(&message_text(message));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;
