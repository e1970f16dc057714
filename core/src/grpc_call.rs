//! One gRPC unary call over HTTP/2 (RFC 9113), without I/O: the bytes a
//! client sends and the reading of what the server answers. A host opens a
//! connection (TLS with ALPN `h2` for https), sends [`GrpcCall::take_output`],
//! hands every read to [`GrpcCall::receive`] (an empty read: the server
//! closed the connection) and sends what each read queued, until the call
//! is answered or failed. Python's and Go's etcd helpers make their gRPC
//! range read this way (SPEC §10.4); Node has `node:http2`.
//!
//! Each call is one connection, closed afterwards, which keeps the client
//! small: the request's headers are HPACK literals without indexing (no
//! tables to keep), the answer's headers are read only to name a failure
//! (`:status`, `grpc-status`, `grpc-message`: [`hpack`]), and the windows
//! are opened wide at once, so an answer of up to 2 GiB needs no flow
//! control. The answer is the DATA of the call's stream, concatenated: the
//! length-prefixed gRPC message, its 5-byte prefix included. A call whose
//! answer carries no DATA, or whose headers say it failed, failed.

use crate::prelude::*;

use crate::error::{Error, Result};

mod hpack;

/// The largest request message: the stream's send window before the
/// server's SETTINGS, so a request needs no flow control (an etcd range
/// request is ~40 bytes).
pub const GRPC_MAX_REQUEST: usize = 65_535;
/// The largest answer a call reads unless [`GrpcCall::new`] is told less.
pub const GRPC_MAX_ANSWER: usize = 256 << 20;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

const MAX_WINDOW: u32 = 0x7fff_ffff;
const DEFAULT_WINDOW: u32 = 65_535;
/// The largest frame payload either side may send before
/// SETTINGS_MAX_FRAME_SIZE raises it; the client never raises it, so no
/// frame it reads is larger.
const MAX_FRAME: usize = 16_384;
/// The one stream a call opens.
const STREAM: u32 = 1;
/// The most of one header block the call keeps to read (a longer one is
/// not read: see [`hpack`]).
const MAX_HEADER_BLOCK: usize = 64 * 1024;
const PRIORITY_FLAG: u8 = 0x20;

const ERROR_CODES: [&str; 14] = [
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
];

fn error_name(code: u32) -> String {
    match ERROR_CODES.get(code as usize) {
        Some(name) => (*name).to_owned(),
        None => format!("0x{code:x}"),
    }
}

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCallState {
    /// The answer has not ended: read on.
    Waiting,
    /// The answer is whole: [`GrpcCall::answer`].
    Answered,
    /// The call failed: [`GrpcCall::failure`] says how.
    Failed,
}

impl GrpcCallState {
    /// `"waiting"`, `"answered"` or `"failed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GrpcCallState::Waiting => "waiting",
            GrpcCallState::Answered => "answered",
            GrpcCallState::Failed => "failed",
        }
    }
}

/// One gRPC unary call (see the module's text).
#[derive(Debug)]
pub struct GrpcCall {
    /// Bytes to send, not yet taken.
    out: Vec<u8>,
    /// Bytes received that do not yet make a whole frame.
    pending: Vec<u8>,
    answer: Vec<u8>,
    max_answer: usize,
    state: GrpcCallState,
    failure: String,
    /// No frame read yet: the first must be the server's SETTINGS.
    first: bool,
    /// A header block waits for its CONTINUATION.
    open_block: bool,
    /// That block's HEADERS carried END_STREAM.
    ending: bool,
    /// The header block being gathered.
    block: Vec<u8>,
    /// What the answer's headers said.
    headers: hpack::Headers,
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string length: an integer with a 7-bit prefix and the prefix's
/// high bit clear, i.e. no Huffman coding (RFC 7541 §5.1).
fn hpack_length(out: &mut Vec<u8>, mut n: usize) {
    if n < 0x7f {
        out.push(n as u8);
        return;
    }
    out.push(0x7f);
    n -= 0x7f;
    while n >= 0x80 {
        out.push(0x80 | (n & 0x7f) as u8);
        n >>= 7;
    }
    out.push(n as u8);
}

impl GrpcCall {
    /// A call of `path` (e.g. `/etcdserverpb.KV/Range`) at `authority`
    /// (`host:port`) over `scheme` (`http` or `https`) with `message`, the
    /// length-prefixed request; the call fails once its answer exceeds
    /// `max_answer` bytes (at most [`GRPC_MAX_ANSWER`]; 0 means that).
    /// What to send first is queued: the preface, SETTINGS (no push; the
    /// widest stream window), the connection window raised to the widest,
    /// the request's HEADERS and its DATA, the last frame ending the stream.
    ///
    /// Errors: `InvalidArgument` for another scheme, an empty authority or
    /// path, a byte outside visible ASCII in either, or a message over
    /// [`GRPC_MAX_REQUEST`] bytes.
    pub fn new(
        scheme: &str,
        authority: &str,
        path: &str,
        message: &[u8],
        max_answer: usize,
    ) -> Result<GrpcCall> {
        let invalid = |field: &str, reason: String| Error::InvalidArgument {
            field: field.to_owned(),
            reason,
        };
        if scheme != "http" && scheme != "https" {
            return Err(invalid("scheme", "expected http or https".to_owned()));
        }
        for (field, value) in [("authority", authority), ("path", path)] {
            // MAX_FRAME bounds the header block; both fit in it with room.
            if value.is_empty()
                || value.len() > 4096
                || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(invalid(
                    field,
                    "expected 1 to 4096 bytes of visible ASCII".to_owned(),
                ));
            }
        }
        if message.len() > GRPC_MAX_REQUEST {
            return Err(invalid(
                "message",
                format!(
                    "a request of {} bytes exceeds {GRPC_MAX_REQUEST}",
                    message.len()
                ),
            ));
        }
        let mut headers = Vec::with_capacity(128 + authority.len() + path.len());
        for (name, value) in [
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            // Literal header field without indexing, new name (RFC 7541
            // §6.2.2): neither the static nor the dynamic table is needed.
            headers.push(0);
            hpack_length(&mut headers, name.len());
            headers.extend_from_slice(name.as_bytes());
            hpack_length(&mut headers, value.len());
            headers.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(PREFACE.len() + 80 + headers.len() + message.len());
        out.extend_from_slice(PREFACE);
        let mut settings = Vec::with_capacity(12);
        for (id, value) in [
            (SETTINGS_ENABLE_PUSH, 0),
            (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
        ] {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        frame(&mut out, SETTINGS, 0, 0, &settings);
        frame(
            &mut out,
            WINDOW_UPDATE,
            0,
            0,
            &(MAX_WINDOW - DEFAULT_WINDOW).to_be_bytes(),
        );
        frame(&mut out, HEADERS, END_HEADERS, STREAM, &headers);
        let mut chunks = message.chunks(MAX_FRAME).peekable();
        if chunks.peek().is_none() {
            frame(&mut out, DATA, END_STREAM, STREAM, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_STREAM
            } else {
                0
            };
            frame(&mut out, DATA, flags, STREAM, chunk);
        }
        Ok(GrpcCall {
            out,
            pending: Vec::new(),
            answer: Vec::new(),
            max_answer: if max_answer == 0 {
                GRPC_MAX_ANSWER
            } else {
                max_answer.min(GRPC_MAX_ANSWER)
            },
            state: GrpcCallState::Waiting,
            failure: String::new(),
            first: true,
            open_block: false,
            ending: false,
            block: Vec::new(),
            headers: hpack::Headers::new(),
        })
    }

    /// Where the call stands.
    pub fn state(&self) -> GrpcCallState {
        self.state
    }

    /// The bytes to send now, taken (empty when there are none). After the
    /// answer, a polite goodbye (GOAWAY) waits here: sending it is
    /// optional, and a failure to send it changes nothing.
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// The answer: the DATA of the call's stream once it is
    /// [`GrpcCallState::Answered`] (empty before).
    pub fn answer(&self) -> &[u8] {
        if self.state == GrpcCallState::Answered {
            &self.answer
        } else {
            &[]
        }
    }

    /// Takes the answer (empty unless answered).
    pub fn take_answer(&mut self) -> Vec<u8> {
        if self.state == GrpcCallState::Answered {
            core::mem::take(&mut self.answer)
        } else {
            Vec::new()
        }
    }

    /// How the call failed (empty unless [`GrpcCallState::Failed`]).
    pub fn failure(&self) -> &str {
        &self.failure
    }

    /// Reads what the server sent: `bytes` as read, in any pieces; empty
    /// when the server closed the connection. Queues what HTTP/2 asks a
    /// client to answer on the way (RFC 9113 §6: SETTINGS and PING
    /// acknowledgements) and says where the call stands. Once answered or
    /// failed, further bytes change nothing.
    pub fn receive(&mut self, bytes: &[u8]) -> GrpcCallState {
        if self.state != GrpcCallState::Waiting {
            return self.state;
        }
        if bytes.is_empty() {
            return self
                .fail("the server closed the connection before the answer ended".to_owned());
        }
        self.pending.extend_from_slice(bytes);
        let pending = core::mem::take(&mut self.pending);
        let mut at = 0;
        while self.state == GrpcCallState::Waiting {
            let Some(head) = pending.get(at..at + 9) else {
                break;
            };
            let (kind, flags) = (head[3], head[4]);
            if self.first && (kind != SETTINGS || flags & ACK != 0) {
                // The server's preface is a SETTINGS frame (RFC 9113 §3.4):
                // anything else is a server or proxy without HTTP/2.
                let shown: String = head
                    .iter()
                    .flat_map(|&b| core::ascii::escape_default(b))
                    .map(char::from)
                    .collect();
                self.fail(format!(
                    "the server does not speak HTTP/2 (its answer began \"{shown}\")"
                ));
                break;
            }
            let length =
                usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            if length > MAX_FRAME {
                self.fail(format!(
                    "a frame of {length} bytes exceeds {MAX_FRAME} (FRAME_SIZE_ERROR)"
                ));
                break;
            }
            let Some(payload) = pending.get(at + 9..at + 9 + length) else {
                break;
            };
            self.first = false;
            let stream = u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]);
            at += 9 + length;
            self.frame(kind, flags, stream, payload);
        }
        if self.state == GrpcCallState::Waiting {
            self.pending = pending;
            self.pending.drain(..at);
        }
        self.state
    }

    fn fail(&mut self, failure: String) -> GrpcCallState {
        self.failure = failure;
        self.state = GrpcCallState::Failed;
        self.answer = Vec::new();
        self.state
    }

    fn answered(&mut self) {
        if let Some(failure) = self.headers.failure() {
            self.fail(failure);
            return;
        }
        if self.answer.is_empty() {
            self.fail(
                "the answer has no message (gRPC sent only a status: the call failed)".to_owned(),
            );
            return;
        }
        self.state = GrpcCallState::Answered;
        frame(&mut self.out, GOAWAY, 0, 0, &[0; 8]);
    }

    /// One whole frame.
    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let length = payload.len();
        if self.open_block && (kind != CONTINUATION || stream != STREAM) {
            self.fail("a header block was interrupted (PROTOCOL_ERROR)".to_owned());
            return;
        }
        let word = |at: usize| -> u32 {
            payload
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            SETTINGS => {
                if stream != 0 || (flags & ACK != 0 && length != 0) || length % 6 != 0 {
                    self.fail("a malformed SETTINGS frame (PROTOCOL_ERROR)".to_owned());
                } else if flags & ACK == 0 {
                    frame(&mut self.out, SETTINGS, ACK, 0, &[]);
                }
            }
            PING => {
                if stream != 0 || length != 8 {
                    self.fail("a malformed PING frame (PROTOCOL_ERROR)".to_owned());
                } else if flags & ACK == 0 {
                    frame(&mut self.out, PING, ACK, 0, payload);
                }
            }
            GOAWAY => {
                if stream != 0 || length < 8 {
                    self.fail("a malformed GOAWAY frame (PROTOCOL_ERROR)".to_owned());
                    return;
                }
                let (last, code) = (word(0) & 0x7fff_ffff, word(4));
                // A graceful GOAWAY that still covers the stream lets it finish.
                if code != 0 || last < STREAM {
                    let detail = &payload[8..length.min(208)];
                    let mut failure = format!("the server went away ({})", error_name(code));
                    if !detail.is_empty() {
                        failure.push_str(": ");
                        failure.push_str(&String::from_utf8_lossy(detail));
                    }
                    self.fail(failure);
                }
            }
            RST_STREAM => {
                if stream == 0 || length != 4 {
                    self.fail("a malformed RST_STREAM frame (PROTOCOL_ERROR)".to_owned());
                } else if stream == STREAM {
                    self.fail(format!(
                        "the server reset the call ({})",
                        error_name(word(0))
                    ));
                }
            }
            WINDOW_UPDATE if length != 4 => {
                self.fail("a malformed WINDOW_UPDATE frame (FRAME_SIZE_ERROR)".to_owned());
            }
            HEADERS | CONTINUATION => {
                if stream != STREAM || (kind == CONTINUATION && !self.open_block) {
                    self.fail(format!(
                        "an unexpected header frame on stream {stream} (PROTOCOL_ERROR)"
                    ));
                    return;
                }
                let mut fragment = payload;
                if kind == HEADERS {
                    self.ending = flags & END_STREAM != 0;
                    fragment = headers_fragment(flags, payload).unwrap_or_else(|| {
                        self.headers.stop();
                        &[]
                    });
                }
                if self.block.len() + fragment.len() > MAX_HEADER_BLOCK {
                    self.headers.stop();
                } else {
                    self.block.extend_from_slice(fragment);
                }
                self.open_block = flags & END_HEADERS == 0;
                if !self.open_block {
                    self.headers.read(&self.block);
                    self.block.clear();
                    if self.ending {
                        self.answered();
                    }
                }
            }
            DATA => {
                if stream != STREAM {
                    self.fail(format!("DATA on stream {stream} (PROTOCOL_ERROR)"));
                    return;
                }
                let mut data = payload;
                if flags & PADDED != 0 {
                    match payload.split_first() {
                        Some((&pad, rest)) if usize::from(pad) < length => {
                            data = &rest[..rest.len() - usize::from(pad)];
                        }
                        _ => {
                            self.fail(
                                "a DATA frame's padding exceeds it (PROTOCOL_ERROR)".to_owned(),
                            );
                            return;
                        }
                    }
                }
                if self.answer.len() + data.len() > self.max_answer {
                    self.fail(format!("the answer exceeds {} bytes", self.max_answer));
                    return;
                }
                self.answer.extend_from_slice(data);
                if flags & END_STREAM != 0 {
                    self.answered();
                }
            }
            PUSH_PROMISE => {
                self.fail("PUSH_PROMISE although push is off (PROTOCOL_ERROR)".to_owned());
            }
            // PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).
            _ => {}
        }
    }
}

/// A HEADERS frame's header block fragment: its payload without padding
/// and priority fields (RFC 9113 §6.2); `None` when those exceed it.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, tail) = rest.split_first()?;
        pad = usize::from(n);
        rest = tail;
    }
    if flags & PRIORITY_FLAG != 0 {
        rest = rest.get(5..)?;
    }
    rest.get(..rest.len().checked_sub(pad)?)
}
