use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| {
            let d = |c: u8| char::from(c).to_digit(16).unwrap_or(0) as u8;
            d(p[0]) << 4 | d(p[1])
        })
        .collect()
}

#[test]
fn the_code_is_whole() {
    // A canonical code fills its space: Σ 2^-length over every symbol is 1.
    let mut sum = 0u64;
    for l in LENGTHS.iter().map(|l| usize::from(*l)).chain([EOS_LENGTH]) {
        sum += 1 << (EOS_LENGTH - l);
    }
    assert_eq!(sum, 1 << EOS_LENGTH);
    assert_eq!(CANONICAL.symbols[256], 256);
}

#[test]
fn huffman_strings_of_rfc_7541() {
    // RFC 7541 Appendix C.4 and C.6.
    for (coded, text) in [
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
        ("a8eb 1064 9cbf", "no-cache"),
        ("25a8 49e9 5ba9 7d7f", "custom-key"),
        ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
        ("6402", "302"),
        ("aec3 771a 4b", "private"),
        (
            "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
            "Mon, 21 Oct 2013 20:13:21 GMT",
        ),
        (
            "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
            "https://www.example.com",
        ),
        ("", ""),
    ] {
        assert_eq!(
            huffman(&hex(coded)).as_deref(),
            Some(text.as_bytes()),
            "{text}"
        );
    }
    // Padding of 8 bits or more, padding that is not all ones, and the
    // end-of-string symbol itself do not decode.
    assert_eq!(huffman(&hex("a8eb 1064 9cbf ff")), None);
    assert_eq!(huffman(&hex("a8eb 1064 9cbe")), None);
    assert_eq!(huffman(&hex("ffff fffc")), None);
    assert_eq!(huffman(&hex("ffff ffff")), None);
}

#[test]
fn request_blocks_of_rfc_7541_keep_the_table() {
    // RFC 7541 C.4: three requests on one connection, with Huffman.
    let mut h = Headers::new();
    h.read(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
    assert_eq!(h.size, 57);
    h.read(&hex("8286 84be 5886 a8eb 1064 9cbf"));
    assert_eq!(h.size, 110);
    h.read(&hex(
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ));
    assert_eq!(h.size, 164);
    assert!(!h.broken);
    let names: Vec<&[u8]> = h.table.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(names, [&b"custom-key"[..], b"cache-control", b":authority"]);
}

#[test]
fn response_blocks_of_rfc_7541_evict() {
    // RFC 7541 C.6, with its 256-byte table.
    let mut h = Headers::new();
    h.limit = 256;
    h.read(&hex(
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
    ));
    assert_eq!((h.size, h.status.as_deref()), (222, Some(&b"302"[..])));
    h.read(&hex("4883 640e ffc1 c0bf"));
    assert_eq!((h.size, h.status.as_deref()), (222, Some(&b"307"[..])));
    assert_eq!(
        h.failure().as_deref(),
        Some("the server answered HTTP status 307")
    );
}

/// A literal header field with incremental indexing and a new name.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_integer(&mut out, 0x40, 6, 0);
    put_string(&mut out, name.as_bytes(), false, &[]);
    put_string(&mut out, value.as_bytes(), false, &[]);
    out
}

#[test]
fn grpc_statuses_name_the_failure() {
    let mut h = Headers::new();
    h.read(&[0x88]); // :status 200
    assert_eq!(h.failure(), None);
    let mut trailers = literal("grpc-status", "12");
    trailers.extend(literal(
        "grpc-message",
        "unknown method Nope for service etcdserverpb.KV%20%E2%9C%93",
    ));
    h.read(&trailers);
    assert_eq!(
        h.failure().as_deref(),
        Some("gRPC status 12 (UNIMPLEMENTED): unknown method Nope for service etcdserverpb.KV \u{2713}")
    );
    // The same fields again, by their dynamic-table indexes (62: the
    // newest, grpc-message; 63: grpc-status).
    let mut again = Headers::new();
    again.read(&trailers);
    again.grpc_status = None;
    again.read(&[0xbf]);
    assert_eq!(again.grpc_status.as_deref(), Some(&b"12"[..]));
    let mut ok = Headers::new();
    ok.read(&literal("grpc-status", "0"));
    assert_eq!(ok.failure(), None);
    let mut odd = Headers::new();
    odd.read(&literal("grpc-status", "99"));
    assert_eq!(odd.failure().as_deref(), Some("gRPC status 99"));
}

#[test]
fn a_block_that_does_not_decode_stops_the_reading() {
    for bad in [
        &[0x80][..],                   // index 0
        &[0xff, 0x80][..],             // an index past both tables, cut short
        &[0xc0][..],                   // index 64, not in the table
        &[0x40, 0x05, b'a'][..],       // a name cut short
        &[0x3f, 0xe2, 0x1f][..],       // a table size of 4097
        &[0x40, 0x81, 0xff, 0x00][..], // a Huffman name that does not decode
    ] {
        let mut h = Headers::new();
        h.read(bad);
        assert!(h.broken, "{bad:?}");
        h.read(&literal("grpc-status", "13"));
        assert_eq!(h.failure(), None);
    }
    // An entry larger than the table empties it.
    let mut h = Headers::new();
    h.read(&literal("a", "b"));
    h.read(&[0x3f, 0x02]); // size update to 33: "a"/"b" is 34
    assert_eq!((h.table.len(), h.size, h.broken), (0, 0, false));
}

/// The canonical codes, assigned the textbook way (by length, then symbol),
/// apart from the decoder's tables: `(code, length)` per byte value.
fn codes() -> Vec<(u32, u32)> {
    let mut order: Vec<usize> = (0..256).collect();
    order.sort_by_key(|&s| (LENGTHS[s], s));
    let mut out = vec![(0u32, 0u32); 256];
    let (mut code, mut prev) = (0u32, u32::from(LENGTHS[order[0]]));
    for (i, &s) in order.iter().enumerate() {
        let length = u32::from(LENGTHS[s]);
        if i > 0 {
            code = (code + 1) << (length - prev);
        }
        prev = length;
        out[s] = (code, length);
    }
    out
}

fn huffman_encode(text: &[u8], codes: &[(u32, u32)]) -> Vec<u8> {
    let (mut out, mut bits, mut n) = (Vec::new(), 0u64, 0u32);
    for &b in text {
        let (code, length) = codes[usize::from(b)];
        bits = bits << length | u64::from(code);
        n += length;
        while n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    if n > 0 {
        out.push((bits << (8 - n)) as u8 | (0xff >> n));
    }
    out
}

fn put_integer(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_string(out: &mut Vec<u8>, text: &[u8], coded: bool, codes: &[(u32, u32)]) {
    if coded {
        let bytes = huffman_encode(text, codes);
        put_integer(out, 0x80, 7, bytes.len());
        out.extend(bytes);
    } else {
        put_integer(out, 0, 7, text.len());
        out.extend_from_slice(text);
    }
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Blocks written every way HPACK allows (indexed, literal with and
    /// without indexing, never indexed, static or new names, Huffman or
    /// plain, table size updates) read back to the fields written, with
    /// the encoder's dynamic table.
    #[test]
    fn blocks_written_every_way_read_back(
        blocks in proptest::collection::vec(
            (
                proptest::option::of(0usize..600),
                proptest::collection::vec(
                    (0usize..5, proptest::collection::vec(any::<u8>(), 0..40), 0u8..4, any::<bool>(), any::<bool>(), any::<usize>()),
                    0..8,
                ),
            ),
            1..6,
        ),
    ) {
        let codes = codes();
        let names: [&[u8]; 5] = [b":status", b"grpc-status", b"grpc-message", b"content-type", b"x-other"];
        let mut h = Headers::new();
        // The encoder's own table, newest first, and its size limit.
        let mut table: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut limit = TABLE_SIZE;
        let mut want: [Option<Vec<u8>>; 3] = [None, None, None];
        for (update, fields) in blocks {
            let mut block = Vec::new();
            if let Some(size) = update {
                put_integer(&mut block, 0x20, 5, size);
                limit = size;
            }
            let evict = |table: &mut Vec<(Vec<u8>, Vec<u8>)>, limit: usize| {
                while table.iter().map(|(n, v)| n.len() + v.len() + 32).sum::<usize>() > limit {
                    table.pop();
                }
            };
            evict(&mut table, limit);
            for (name_at, value, how, name_coded, value_coded, pick) in fields {
                let (name, value): (Vec<u8>, Vec<u8>) = if how == 3 && !table.is_empty() {
                    // Indexed, from the dynamic table.
                    let i = pick % table.len();
                    put_integer(&mut block, 0x80, 7, 62 + i);
                    table[i].clone()
                } else {
                    let name = names[name_at].to_vec();
                    let (first, n) = match how {
                        0 => (0x40, 6),
                        1 => (0x00, 4),
                        _ => (0x10, 4),
                    };
                    // content-type is static entry 31: refer to it by index.
                    if name == b"content-type" {
                        put_integer(&mut block, first, n, 31);
                    } else {
                        put_integer(&mut block, first, n, 0);
                        put_string(&mut block, &name, name_coded, &codes);
                    }
                    put_string(&mut block, &value, value_coded, &codes);
                    if first == 0x40 {
                        table.insert(0, (name.clone(), value.clone()));
                        evict(&mut table, limit);
                    }
                    (name, value)
                };
                if let Some(slot) = [&b":status"[..], b"grpc-status", b"grpc-message"].iter().position(|n| *n == name) {
                    want[slot] = Some(value);
                }
            }
            h.read(&block);
            prop_assert!(!h.broken);
        }
        prop_assert_eq!(&h.table, &table);
        prop_assert_eq!(&h.status, &want[0]);
        prop_assert_eq!(&h.grpc_status, &want[1]);
        prop_assert_eq!(&h.grpc_message, &want[2]);
    }
}
