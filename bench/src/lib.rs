//! Benchmarks of the waypost core: see `benches/`, and `src/bin/` for the
//! ones that are not criterion's.

// Base64, protocol buffers and HTTP/2 as the core's tests write them.
#[path = "../../core/tests/support/h2.rs"]
mod h2;
#[path = "../../core/tests/support/protobuf.rs"]
mod protobuf;
#[path = "../../core/tests/support/base64.rs"]
mod support;

pub mod etcd {
    //! The etcd payloads the source benchmarks feed: a 10 000-key range
    //! answer and one-event watch messages, in the gateway's JSON (base64
    //! keys and values, int64 as strings), each value an instance's wire
    //! form (one tag, a zone, weights 1-7).

    use waypost::{InstanceSpec, SourceEntry};

    use crate::support::base64;

    /// Keys in the range answer.
    pub const N: usize = 10_000;

    /// Instance `i` of service `api`, on `port`.
    pub fn entry(i: usize, port: u16) -> SourceEntry {
        let mut spec = InstanceSpec::new(
            format!("api-{i:07}"),
            "api",
            format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
            port,
        );
        spec.weight = 1 + (i % 7) as u32;
        spec.tags = vec!["v1".into()];
        spec.zone = Some("eu-1".into());
        SourceEntry::new(spec)
    }

    /// One kv of the range answer: instance `i` on `port`, written at `revision`.
    pub fn kv(i: usize, port: u16, revision: u64) -> String {
        let e = entry(i, port);
        let key = format!("/waypost/services/api/{}", e.spec.id);
        format!(
            r#"{{"key":"{}","create_revision":"2","mod_revision":"{revision}","version":"1","value":"{}","lease":"7587869812316352005"}}"#,
            base64(key.as_bytes(), false, true),
            base64(e.spec.to_json().as_bytes(), false, true)
        )
    }

    /// The range answer: every key under the prefix, at revision 10.
    pub fn range_payload() -> String {
        let kvs: Vec<String> = (0..N).map(|i| kv(i, 8080, 5)).collect();
        format!(
            r#"{{"header":{{"cluster_id":"1","member_id":"2","revision":"10","raft_term":"2"}},"kvs":[{}],"count":"{N}"}}"#,
            kvs.join(",")
        )
    }

    /// The same range as etcd's gRPC API answers it: a `RangeResponse`
    /// (header, then each kv with its key, revisions, version, value and
    /// lease) behind the 5-byte gRPC message prefix.
    pub fn range_grpc_payload() -> Vec<u8> {
        use crate::protobuf::{bytes_field as bytes, framed, varint_field as int};
        let mut message = Vec::new();
        let mut header = Vec::new();
        for (field, n) in [(1, 1), (2, 2), (3, 10), (4, 2)] {
            int(field, n, &mut header);
        }
        bytes(1, &header, &mut message);
        for i in 0..N {
            let e = entry(i, 8080);
            let key = format!("/waypost/services/api/{}", e.spec.id);
            let mut kv = Vec::new();
            bytes(1, key.as_bytes(), &mut kv);
            int(2, 2, &mut kv);
            int(3, 5, &mut kv);
            int(4, 1, &mut kv);
            bytes(5, e.spec.to_json().as_bytes(), &mut kv);
            int(6, 7_587_869_812_316_352_005, &mut kv);
            bytes(2, &kv, &mut message);
        }
        int(4, N as u64, &mut message);
        framed(&message)
    }

    /// A gRPC `answer` as a server sends it on the call's stream: its
    /// SETTINGS, HEADERS (`:status 200`), the answer in DATA frames of
    /// 16 KiB, and trailers (`grpc-status 0`).
    pub fn grpc_served(answer: &[u8]) -> Vec<u8> {
        use crate::h2::{frame, literal, DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS};
        let mut out = frame(SETTINGS, 0, 0, &[]);
        out.extend(frame(HEADERS, END_HEADERS, 1, &[0x88]));
        for chunk in answer.chunks(16_384) {
            out.extend(frame(DATA, 0, 1, chunk));
        }
        out.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &literal("grpc-status", "0"),
        ));
        out
    }

    /// A watch message with one PUT event: instance 7 on `port`.
    pub fn watch_payload(port: u16, revision: u64) -> String {
        format!(
            r#"{{"result":{{"header":{{"cluster_id":"1","member_id":"2","revision":"{revision}","raft_term":"2"}},"events":[{{"kv":{}}}]}}}}"#,
            kv(7, port, revision)
        )
    }
}
