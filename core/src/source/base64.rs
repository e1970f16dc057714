//! Base64 (RFC 4648), as the etcd JSON gateway writes byte fields: the
//! standard alphabet with padding. Decoding also takes the URL-safe
//! alphabet and missing padding (both are valid protobuf JSON).

use crate::prelude::*;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64 with padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let six = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(ALPHABET[six as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Each byte's six bits, both alphabets; 0xFF for a byte in neither.
const VALUES: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

/// The bytes of `text`; `None` when it is not base64 (a character outside
/// both alphabets, padding in the middle, or a lone trailing character).
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into(text, &mut out).then_some(out)
}

/// Decodes `text` into `out` (emptied first), as [`decode`] does; false
/// when it is not base64 (`out` then holds a part).
pub(crate) fn decode_into(text: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    let data = text.trim_end_matches('=');
    if text.len() - data.len() > 2 || data.len() % 4 == 1 {
        return false;
    }
    let mut quads = data.as_bytes().chunks_exact(4);
    out.resize(data.len() / 4 * 3, 0);
    for (quad, bytes) in (&mut quads).zip(out.chunks_exact_mut(3)) {
        let Some(n) = sextets(quad) else {
            return false;
        };
        bytes.copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    // Two or three characters left: their leading 8 or 16 bits.
    match (quads.remainder().len(), sextets(quads.remainder())) {
        (_, None) => return false,
        (2, Some(n)) => out.push((n >> 4) as u8),
        (3, Some(n)) => out.extend_from_slice(&[(n >> 10) as u8, (n >> 2) as u8]),
        _ => {}
    }
    true
}

/// The six-bit values of `chars`, one after another; `None` when one is in
/// neither alphabet.
fn sextets(chars: &[u8]) -> Option<u32> {
    chars.iter().try_fold(0u32, |n, &c| {
        let v = VALUES[usize::from(c)];
        (v != 0xFF).then_some((n << 6) | u32::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("/waypost/services/", "L3dheXBvc3Qvc2VydmljZXMv"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        for bad in ["Z", "Zm9vY", "Zm=9", "Zm9v===", "Zm 9v", "é"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }
}
