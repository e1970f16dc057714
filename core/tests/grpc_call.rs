//! The gRPC unary call's HTTP/2 (`waypost::GrpcCall`): what it sends, how
//! it reads every answer a server may give, in any pieces, and that no
//! bytes make it panic.
#![cfg(feature = "etcd-grpc")]

use proptest::prelude::*;
use waypost::{Error, GrpcCall, GrpcCallState, GRPC_MAX_REQUEST};

#[path = "support/h2.rs"]
mod h2;
use h2::frame as f;
use h2::*;

const MAX_WINDOW: u32 = 0x7fff_ffff;
const DEFAULT_WINDOW: u32 = 65_535;

const MSG: &[u8] = b"\0\0\0\0\x03abc";

fn call() -> GrpcCall {
    let mut c = GrpcCall::new("http", "127.0.0.1:2379", "/etcdserverpb.KV/Range", MSG, 8).unwrap();
    c.take_output();
    c
}

/// The frames of `bytes`: (type, flags, stream, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let n = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
        out.push((bytes[3], bytes[4], stream, bytes[9..9 + n].to_vec()));
        bytes = &bytes[9 + n..];
    }
    assert!(bytes.is_empty(), "a cut frame");
    out
}

fn settings() -> Vec<u8> {
    f(SETTINGS, 0, 0, &[])
}

/// A server's answer, named, and what a call makes of it: `Ok(answer)` or
/// `Err(part of the failure)`.
type Script = (&'static str, Vec<u8>, Result<Vec<u8>, &'static str>);

/// The answers a server may give.
fn scripts() -> Vec<Script> {
    let head = f(HEADERS, END_HEADERS, 1, b"\x88");
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let mut padded = vec![4];
    padded.extend_from_slice(&MSG[3..]);
    padded.extend_from_slice(&[0; 4]);
    vec![
        (
            "settings, ping, window update, priority, unknown, padding, trailers in two frames",
            cat(&[
                f(SETTINGS, 0, 0, b"\0\x03\0\0\0\x64"),
                f(PING, 0, 0, b"12345678"),
                f(WINDOW_UPDATE, 0, 0, b"\0\0\x01\0"),
                f(2, 0, 1, &[0; 5]),
                f(0xfa, 0, 0, b"unknown"),
                head.clone(),
                f(DATA, 0, 1, &MSG[..3]),
                f(DATA, PADDED, 1, &padded),
                f(HEADERS, END_STREAM, 1, b"\x40"),
                f(CONTINUATION, END_HEADERS, 1, b"\x40"),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "data ending the stream",
            cat(&[settings(), head.clone(), f(DATA, END_STREAM, 1, MSG)]),
            Ok(MSG.to_vec()),
        ),
        (
            "a graceful go away that covers the stream",
            cat(&[
                settings(),
                f(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]),
                head.clone(),
                f(DATA, END_STREAM, 1, MSG),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "trailers only",
            cat(&[settings(), f(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88")]),
            Err("no message"),
        ),
        (
            "reset",
            cat(&[settings(), head.clone(), f(RST_STREAM, 0, 1, &[0, 0, 0, 8])]),
            Err("reset the call (CANCEL)"),
        ),
        (
            "reset, unknown code",
            cat(&[settings(), f(RST_STREAM, 0, 1, &[0, 0, 1, 0])]),
            Err("reset the call (0x100)"),
        ),
        (
            "another stream reset",
            cat(&[
                settings(),
                f(RST_STREAM, 0, 3, &[0, 0, 0, 8]),
                head.clone(),
                f(DATA, END_STREAM, 1, MSG),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "go away",
            cat(&[settings(), f(GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\x0bslow down")]),
            Err("went away (ENHANCE_YOUR_CALM): slow down"),
        ),
        (
            "go away before the stream",
            cat(&[settings(), f(GOAWAY, 0, 0, &[0; 8])]),
            Err("went away (NO_ERROR)"),
        ),
        (
            "push",
            cat(&[
                settings(),
                f(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02\x88"),
            ]),
            Err("PUSH_PROMISE"),
        ),
        (
            "another stream",
            cat(&[settings(), f(DATA, 0, 3, MSG)]),
            Err("DATA on stream 3"),
        ),
        (
            "headers on another stream",
            cat(&[settings(), f(HEADERS, END_HEADERS, 3, b"\x88")]),
            Err("stream 3"),
        ),
        (
            "a continuation alone",
            cat(&[settings(), f(CONTINUATION, END_HEADERS, 1, b"\x88")]),
            Err("unexpected header frame"),
        ),
        (
            "bad padding",
            cat(&[
                settings(),
                head.clone(),
                f(DATA, PADDED, 1, b"\x09\x01\x02"),
            ]),
            Err("padding"),
        ),
        (
            "empty padded",
            cat(&[settings(), head.clone(), f(DATA, PADDED, 1, b"")]),
            Err("padding"),
        ),
        (
            "too big a frame",
            cat(&[settings(), b"\0\x40\x01\0\0\0\0\0\x01".to_vec()]),
            Err("FRAME_SIZE_ERROR"),
        ),
        (
            "interrupted header block",
            cat(&[settings(), f(HEADERS, 0, 1, b"\x88"), f(DATA, 0, 1, MSG)]),
            Err("interrupted"),
        ),
        (
            "malformed settings",
            cat(&[settings(), f(SETTINGS, 0, 0, b"\0\x03\0")]),
            Err("SETTINGS frame"),
        ),
        (
            "settings ack with a payload",
            cat(&[settings(), f(SETTINGS, ACK, 0, &[0; 6])]),
            Err("SETTINGS frame"),
        ),
        (
            "settings on a stream",
            cat(&[settings(), f(SETTINGS, 0, 1, b"")]),
            Err("SETTINGS frame"),
        ),
        (
            "malformed ping",
            cat(&[settings(), f(PING, 0, 0, b"1234")]),
            Err("PING frame"),
        ),
        (
            "malformed go away",
            cat(&[settings(), f(GOAWAY, 0, 0, b"1234")]),
            Err("GOAWAY frame"),
        ),
        (
            "malformed reset",
            cat(&[settings(), f(RST_STREAM, 0, 0, &[0; 4])]),
            Err("RST_STREAM frame"),
        ),
        (
            "malformed window update",
            cat(&[settings(), f(WINDOW_UPDATE, 0, 0, b"12")]),
            Err("WINDOW_UPDATE frame"),
        ),
        (
            "too big an answer",
            cat(&[
                settings(),
                head.clone(),
                f(DATA, 0, 1, MSG),
                f(DATA, END_STREAM, 1, b"d"),
            ]),
            Err("exceeds 8 bytes"),
        ),
        (
            "trailers only, with a gRPC status",
            cat(&[
                settings(),
                f(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    1,
                    &trailers("12", "unknown method Nope"),
                ),
            ]),
            Err("gRPC status 12 (UNIMPLEMENTED): unknown method Nope"),
        ),
        (
            "a message, then a failing status in two frames",
            {
                let t = trailers("13", "broken%21");
                cat(&[
                    settings(),
                    head.clone(),
                    f(DATA, 0, 1, MSG),
                    f(HEADERS, END_STREAM, 1, &t[..5]),
                    f(CONTINUATION, END_HEADERS, 1, &t[5..]),
                ])
            },
            Err("gRPC status 13 (INTERNAL): broken!"),
        ),
        (
            "a message, then status 0",
            cat(&[
                settings(),
                head.clone(),
                f(DATA, 0, 1, MSG),
                f(HEADERS, END_HEADERS | END_STREAM, 1, &trailers("0", "")),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "an HTTP error, padded and with priority",
            cat(&[
                settings(),
                f(
                    HEADERS,
                    END_HEADERS | PADDED | PRIORITY,
                    1,
                    b"\x02\0\0\0\0\x10\x48\x03503\0\0",
                ),
                f(DATA, END_STREAM, 1, MSG),
            ]),
            Err("HTTP status 503"),
        ),
        (
            "headers that do not decode are not read",
            cat(&[
                settings(),
                f(HEADERS, END_HEADERS, 1, b"\x80"),
                f(DATA, 0, 1, MSG),
                f(HEADERS, END_HEADERS | END_STREAM, 1, &trailers("13", "")),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "padding past a HEADERS frame stops the reading",
            cat(&[
                settings(),
                f(HEADERS, END_HEADERS | PADDED, 1, b"\x09\x88"),
                f(DATA, 0, 1, MSG),
                f(HEADERS, END_HEADERS | END_STREAM, 1, &trailers("13", "")),
            ]),
            Ok(MSG.to_vec()),
        ),
        (
            "HTTP/1.1",
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            Err("does not speak HTTP/2"),
        ),
        (
            "no SETTINGS first",
            head.clone(),
            Err("does not speak HTTP/2"),
        ),
        (
            "a settings ack first",
            f(SETTINGS, ACK, 0, b""),
            Err("does not speak HTTP/2"),
        ),
    ]
}

/// A trailer block: `grpc-status` and `grpc-message`, as gRPC servers
/// send them.
fn trailers(status: &str, message: &str) -> Vec<u8> {
    [
        literal("grpc-status", status),
        literal("grpc-message", message),
    ]
    .concat()
}

fn outcome(c: &GrpcCall) -> core::result::Result<Vec<u8>, String> {
    match c.state() {
        GrpcCallState::Answered => Ok(c.answer().to_vec()),
        GrpcCallState::Failed => Err(c.failure().to_owned()),
        GrpcCallState::Waiting => Err("still waiting".to_owned()),
    }
}

#[test]
fn each_script_reads_alike_whole_in_two_and_byte_by_byte() {
    for (name, script, want) in scripts() {
        let mut runs = Vec::new();
        let mut whole = call();
        whole.receive(&script);
        runs.push(whole);
        for cut in 0..=script.len() {
            let mut c = call();
            for part in [&script[..cut], &script[cut..]] {
                if !part.is_empty() {
                    c.receive(part);
                }
            }
            runs.push(c);
        }
        let mut bytes = call();
        for b in &script {
            bytes.receive(core::slice::from_ref(b));
        }
        runs.push(bytes);
        for c in &runs {
            match (&want, outcome(c)) {
                (Ok(want), Ok(got)) => assert_eq!(&got, want, "{name}"),
                (Err(want), Err(got)) => assert!(got.contains(want), "{name}: {got}"),
                (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }
}

#[test]
fn a_closed_connection_before_the_end_fails_and_after_it_changes_nothing() {
    let mut c = call();
    assert_eq!(c.receive(&settings()), GrpcCallState::Waiting);
    assert_eq!(
        c.receive(&f(HEADERS, END_HEADERS, 1, b"\x88")),
        GrpcCallState::Waiting
    );
    assert_eq!(c.receive(b""), GrpcCallState::Failed);
    assert!(c
        .failure()
        .contains("closed the connection before the answer ended"));
    assert!(c.answer().is_empty() && c.take_answer().is_empty());

    let mut c = call();
    let mut script = settings();
    script.extend(f(DATA, END_STREAM, 1, MSG));
    assert_eq!(c.receive(&script), GrpcCallState::Answered);
    assert_eq!(c.receive(b""), GrpcCallState::Answered);
    assert_eq!(c.receive(b"garbage after the end"), GrpcCallState::Answered);
    assert_eq!(c.take_answer(), MSG);
    assert!(c.failure().is_empty());
}

#[test]
fn what_the_call_sends() {
    let mut c = GrpcCall::new(
        "https",
        "etcd.example:2379",
        "/etcdserverpb.KV/Range",
        MSG,
        0,
    )
    .unwrap();
    let out = c.take_output();
    assert!(c.take_output().is_empty());
    assert!(out.starts_with(PREFACE));
    let got = frames(&out[PREFACE.len()..]);
    assert_eq!(got.len(), 4);
    assert_eq!((got[0].0, got[0].1, got[0].2), (SETTINGS, 0, 0));
    assert_eq!(got[0].3, [0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff]);
    assert_eq!((got[1].0, got[1].2), (WINDOW_UPDATE, 0));
    assert_eq!(
        u32::from_be_bytes([got[1].3[0], got[1].3[1], got[1].3[2], got[1].3[3]]),
        MAX_WINDOW - DEFAULT_WINDOW
    );
    assert_eq!((got[2].0, got[2].1, got[2].2), (HEADERS, END_HEADERS, 1));
    // Six literal fields without indexing: 0x00, name, value.
    let mut block = &got[2].3[..];
    let mut fields = Vec::new();
    while let Some((&0, rest)) = block.split_first() {
        let n = usize::from(rest[0]);
        let name = core::str::from_utf8(&rest[1..1 + n])
            .unwrap_or_default()
            .to_owned();
        let v = usize::from(rest[1 + n]);
        let value = core::str::from_utf8(&rest[2 + n..2 + n + v])
            .unwrap_or_default()
            .to_owned();
        fields.push((name, value));
        block = &rest[2 + n + v..];
    }
    assert!(block.is_empty());
    let want = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/etcdserverpb.KV/Range"),
        (":authority", "etcd.example:2379"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    assert_eq!(fields, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
    assert_eq!(got[3], (DATA, END_STREAM, 1, MSG.to_vec()));

    // Acknowledgements are queued as frames arrive; the goodbye after the answer.
    let mut script = f(SETTINGS, 0, 0, b"\0\x03\0\0\0\x64");
    script.extend(f(PING, 0, 0, b"12345678"));
    script.extend(f(PING, ACK, 0, b"87654321"));
    script.extend(f(SETTINGS, ACK, 0, b""));
    assert_eq!(c.receive(&script), GrpcCallState::Waiting);
    assert_eq!(
        frames(&c.take_output()),
        [
            (SETTINGS, ACK, 0, vec![]),
            (PING, ACK, 0, b"12345678".to_vec())
        ]
    );
    assert_eq!(
        c.receive(&f(DATA, END_STREAM, 1, MSG)),
        GrpcCallState::Answered
    );
    assert_eq!(frames(&c.take_output()), [(GOAWAY, 0, 0, vec![0; 8])]);
}

#[test]
fn a_long_message_goes_in_frames_and_an_empty_one_in_one() {
    let message = vec![7u8; 40_000];
    let mut c = GrpcCall::new("http", "h:1", "/p", &message, 0).unwrap();
    let out = c.take_output();
    let data: Vec<_> = frames(&out[PREFACE.len()..])
        .into_iter()
        .filter(|f| f.0 == DATA)
        .collect();
    assert_eq!(
        data.iter().map(|f| f.3.len()).collect::<Vec<_>>(),
        [16_384, 16_384, 7_232]
    );
    assert_eq!(
        data.iter().map(|f| f.1).collect::<Vec<_>>(),
        [0, 0, END_STREAM]
    );

    let mut c = GrpcCall::new("http", "h:1", "/p", b"", 0).unwrap();
    let out = c.take_output();
    let data: Vec<_> = frames(&out[PREFACE.len()..])
        .into_iter()
        .filter(|f| f.0 == DATA)
        .collect();
    assert_eq!(data, [(DATA, END_STREAM, 1, vec![])]);

    // Long names take HPACK's multi-byte lengths.
    let path = format!("/{}", "p".repeat(300));
    let mut c = GrpcCall::new("http", "h:1", &path, b"", 0).unwrap();
    let out = c.take_output();
    let headers = &frames(&out[PREFACE.len()..])[2].3;
    let at = headers
        .windows(5)
        .position(|w| w == b":path")
        .unwrap_or_default()
        + 5;
    assert_eq!(&headers[at..at + 3], [0x7f, 0xae, 0x01]); // 127 + 46 + 128
}

#[test]
fn bad_arguments_are_typed_errors() {
    let cases: [(&str, &str, &str, usize, &str); 7] = [
        ("ftp", "h:1", "/p", 0, "scheme"),
        ("http", "", "/p", 0, "authority"),
        ("http", "h 1", "/p", 0, "authority"),
        ("http", "h:1", "", 0, "path"),
        ("http", "h:1", "/p\u{e9}", 0, "path"),
        ("http", "h:1", "/p\n", 0, "path"),
        ("http", "h:1", "/p", GRPC_MAX_REQUEST + 1, "message"),
    ];
    for (scheme, authority, path, size, field) in cases {
        match GrpcCall::new(scheme, authority, path, &vec![0; size], 0) {
            Err(Error::InvalidArgument { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let long = "a".repeat(4097);
    assert!(GrpcCall::new("http", &long, "/p", b"", 0).is_err());
    assert!(GrpcCall::new("http", "h:1", "/p", &[0; GRPC_MAX_REQUEST], 0).is_ok());
}

/// `call` given `bytes` cut at `cuts` (sorted; out of range is the end).
fn split_run(mut c: GrpcCall, bytes: &[u8], cuts: &[usize]) -> GrpcCall {
    let mut at = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        let cut = cut.min(bytes.len()).max(at);
        if cut > at {
            c.receive(&bytes[at..cut]);
        }
        at = cut;
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes, in any pieces, after the server's SETTINGS or not: no
    /// panic, and the pieces do not change the outcome or what is sent.
    #[test]
    fn any_bytes_in_any_pieces(
        settings_first in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        mut cuts in proptest::collection::vec(0usize..320, 0..6),
    ) {
        let mut bytes = if settings_first { settings() } else { Vec::new() };
        bytes.extend(body);
        cuts.sort_unstable();
        let mut whole = call();
        if !bytes.is_empty() {
            whole.receive(&bytes);
        }
        let mut pieces = split_run(call(), &bytes, &cuts);
        prop_assert_eq!(outcome(&whole), outcome(&pieces));
        prop_assert_eq!(whole.take_output(), pieces.take_output());
        if whole.state() == GrpcCallState::Waiting {
            prop_assert_eq!(whole.receive(b""), GrpcCallState::Failed);
        }
    }

    /// Frames of the call's stream, in any pieces: the answer is the DATA.
    #[test]
    fn data_frames_in_any_pieces(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
        mut cuts in proptest::collection::vec(0usize..400, 0..8),
    ) {
        let mut bytes = settings();
        bytes.extend(f(HEADERS, END_HEADERS, 1, b"\x88"));
        for chunk in &chunks {
            bytes.extend(f(DATA, 0, 1, chunk));
        }
        bytes.extend(f(HEADERS, END_HEADERS | END_STREAM, 1, b"\x40"));
        cuts.sort_unstable();
        let c = split_run(GrpcCall::new("http", "h:1", "/p", b"", 1 << 20).unwrap(), &bytes, &cuts);
        let all = chunks.concat();
        if all.is_empty() {
            prop_assert_eq!(c.state(), GrpcCallState::Failed);
        } else {
            prop_assert_eq!(c.state(), GrpcCallState::Answered);
            prop_assert_eq!(c.answer(), &all[..]);
        }
    }
}
