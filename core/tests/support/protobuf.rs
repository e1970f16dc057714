//! Protocol buffers as etcd's gRPC API writes them, for building payloads:
//! varints, fields, and the 5-byte gRPC message prefix.

/// A varint.
pub fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited field (bytes, a string or a message).
pub fn bytes_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A varint field.
pub fn varint_field(number: u64, n: u64, out: &mut Vec<u8>) {
    varint(number << 3, out);
    varint(n, out);
}

/// `message` behind the gRPC prefix: no compression, its length big-endian.
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}
