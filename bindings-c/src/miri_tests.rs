//! The C entry points driven from Rust, so that Miri can check every kind
//! of `unsafe` block the binding has: borrowed strings (the inline ASCII
//! path and the general one, invalid UTF-8), out-pointers, owned strings
//! and error objects handed out and freed, caller buffers filled, the
//! cache bitset read, registries made, restored and freed.
//! `cargo +nightly miri test -p waypost-c miri` (where Miri installs); an
//! ordinary `cargo test` runs them too.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use crate::error::*;
use crate::instances::*;
use crate::pick::*;
use crate::registry::*;
use crate::watch::*;
use crate::waypost_string_free;

fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn p(v: &[u8]) -> *const c_char {
    v.as_ptr().cast()
}

/// Takes an owned string out, copies it and frees it.
unsafe fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    unsafe { waypost_string_free(s) };
    text
}

/// The status, with the error object's message checked and freed.
unsafe fn failed(status: waypost_status, err: *mut waypost_error) -> waypost_status {
    assert!(!err.is_null());
    let message = unsafe { CStr::from_ptr(waypost_error_message(err)) };
    assert!(!message.to_bytes().is_empty());
    assert_eq!(unsafe { waypost_error_code(err) }, status);
    unsafe { waypost_error_free(err) };
    status
}

#[test]
fn miri_every_kind_of_unsafe_block() {
    unsafe {
        let mut reg: *mut waypost_registry = null_mut();
        let mut err: *mut waypost_error = null_mut();
        let config = c(r#"{"seed": 3, "ttl_ms": 1000, "event_retention": 8}"#);
        assert_eq!(
            waypost_registry_new_json(p(&config), &mut reg, &mut err),
            waypost_status::Ok
        );

        // Short ASCII (inline path), long and non-ASCII (general path).
        let long = "l".repeat(100);
        for (i, id) in ["a", long.as_str(), "é-ü"].iter().enumerate() {
            let id = c(id);
            let mut h: waypost_handle = 0;
            let status = waypost_register(
                reg,
                p(&id),
                p(&c("api")),
                p(&c("10.0.0.1")),
                80 + i as u32,
                0,
                &mut h,
                &mut err,
            );
            assert_eq!(status, waypost_status::Ok);
        }
        let bad = [b'a', 0xff, b'b', 0];
        let status = waypost_heartbeat(reg, bad.as_ptr().cast(), 1, &mut err);
        assert_eq!(failed(status, err), waypost_status::InvalidArgument);
        let status = waypost_heartbeat(reg, null(), 1, &mut err);
        assert_eq!(failed(status, err), waypost_status::NullArgument);
        assert_eq!(
            waypost_heartbeat(reg, p(&c("zz")), 1, null_mut()),
            waypost_status::NotFound
        );

        // Owned strings out.
        let mut json: *mut c_char = null_mut();
        assert_eq!(
            waypost_get(reg, p(&c("a")), 1, &mut json, &mut err),
            waypost_status::Ok
        );
        assert!(take(json).contains("\"id\":\"a\""));

        // A pick into a caller struct, its endpoint copied into fixed arrays.
        let mut r = waypost_pick_result::default();
        assert_eq!(
            waypost_pick(reg, p(&c("api")), 0, null(), 1, &mut r, &mut err),
            waypost_status::Ok
        );
        let mut ep: waypost_endpoint = std::mem::zeroed();
        assert_eq!(
            waypost_instance_endpoint(reg, r.handle, &mut ep, &mut err),
            waypost_status::Ok
        );
        assert_eq!(CStr::from_ptr(ep.id.as_ptr()).to_bytes(), b"a");

        // The cache bitset read by waypost_pick_fields.
        let bits = [1u64 << r.index];
        let known = waypost_pick_known {
            membership_epoch: r.membership_epoch,
            slots: bits.as_ptr(),
            words: 1,
        };
        let mut fields: *mut c_char = null_mut();
        let key = c("k");
        let options = waypost_pick_options {
            key: p(&key),
            zone: null(),
            filter_json: null(),
        };
        assert_eq!(
            waypost_pick_fields(
                reg,
                p(&c("api")),
                0,
                6,
                &options,
                1,
                &known,
                &mut r,
                &mut fields,
                &mut err
            ),
            waypost_status::Ok
        );
        assert!(fields.is_null());
        assert_eq!(
            waypost_pick_fields(
                reg,
                null(),
                0,
                0,
                null(),
                1,
                null(),
                &mut r,
                &mut fields,
                &mut err
            ),
            waypost_status::Ok
        );
        assert!(take(fields).contains("\"service\":\"api\""));

        // Caller buffers filled, and a capacity smaller than the answer.
        let mut handles = [0 as waypost_handle; 2];
        let mut health = [0u8; 2];
        let mut info = waypost_discovery::default();
        let status = waypost_discover_handles(
            reg,
            p(&c("api")),
            null(),
            1,
            handles.as_mut_ptr(),
            health.as_mut_ptr(),
            2,
            &mut info,
            &mut err,
        );
        assert_eq!(status, waypost_status::Ok);
        assert_eq!(info.count, 3);

        // Events past the top of the range; a snapshot, restored, and
        // restore refusing invalid UTF-8.
        assert_eq!(
            waypost_events_since(reg, u64::MAX, &mut json, &mut err),
            waypost_status::Ok
        );
        assert_eq!(take(json), "[]");
        assert_eq!(
            waypost_snapshot(reg, &mut json, &mut err),
            waypost_status::Ok
        );
        let snapshot = c(&take(json));
        let mut copy: *mut waypost_registry = null_mut();
        assert_eq!(
            waypost_registry_restore(p(&snapshot), &mut copy, &mut err),
            waypost_status::Ok
        );
        let mut stats = waypost_info::default();
        assert_eq!(
            waypost_registry_info(copy, &mut stats, &mut err),
            waypost_status::Ok
        );
        assert_eq!(stats.instances, 3);
        waypost_registry_free(copy);
        let status = waypost_registry_restore(bad.as_ptr().cast(), &mut copy, &mut err);
        assert_eq!(failed(status, err), waypost_status::InvalidSnapshot);
        assert!(copy.is_null());

        waypost_registry_free(reg);
        waypost_registry_free(null_mut());
        waypost_string_free(null_mut());
        waypost_error_free(null_mut());
    }
}

#[test]
fn miri_picker_entry_points() {
    use crate::picker::*;
    unsafe {
        let mut reg: *mut waypost_registry = null_mut();
        let mut err: *mut waypost_error = null_mut();
        let config = c(r#"{"seed": 5}"#);
        assert_eq!(
            waypost_registry_new_json(p(&config), &mut reg, &mut err),
            waypost_status::Ok
        );
        let specs = [
            r#"{"id": "a", "service": "api", "address": "10.0.0.1", "port": 80, "zone": "z1", "tags": ["x"]}"#,
            r#"{"id": "b", "service": "api", "address": "10.0.0.2", "port": 81, "zone": "z2"}"#,
        ];
        for spec in specs {
            let mut h: waypost_handle = 0;
            assert_eq!(
                waypost_register_json(reg, p(&c(spec)), 0, &mut h, &mut err),
                waypost_status::Ok
            );
        }

        // Pickers made plain and with options (zone and a filter read from
        // borrowed strings), a key refused.
        let mut plain: *mut waypost_picker = null_mut();
        assert_eq!(
            waypost_picker_new(reg, p(&c("api")), &mut plain, &mut err),
            waypost_status::Ok
        );
        let (zone, filter) = (c("z1"), c(r#"{"tags": ["x"]}"#));
        let options = waypost_pick_options {
            key: null(),
            zone: p(&zone),
            filter_json: p(&filter),
        };
        let mut zoned: *mut waypost_picker = null_mut();
        assert_eq!(
            waypost_picker_new_with(reg, p(&c("api")), &options, &mut zoned, &mut err),
            waypost_status::Ok
        );
        let key = c("k");
        let keyed = waypost_pick_options {
            key: p(&key),
            zone: null(),
            filter_json: null(),
        };
        let mut none: *mut waypost_picker = null_mut();
        let status = waypost_picker_new_with(reg, p(&c("api")), &keyed, &mut none, &mut err);
        assert_eq!(failed(status, err), waypost_status::InvalidArgument);
        assert!(none.is_null());

        // Picks into a caller struct; fields handed out once, then not
        // while the caller's bitset says it holds them.
        let mut r = waypost_pick_result::default();
        assert_eq!(
            waypost_picker_pick(zoned, 0, null(), 1, &mut r, &mut err),
            waypost_status::Ok
        );
        let mut fields: *mut c_char = null_mut();
        assert_eq!(
            waypost_picker_pick_fields(plain, 0, null(), 1, null(), &mut r, &mut fields, &mut err),
            waypost_status::Ok
        );
        assert!(take(fields).contains("\"service\":\"api\""));
        let bits = [u64::MAX];
        let known = waypost_pick_known {
            membership_epoch: r.membership_epoch,
            slots: bits.as_ptr(),
            words: 1,
        };
        assert_eq!(
            waypost_picker_pick_fields(plain, 0, null(), 2, &known, &mut r, &mut fields, &mut err),
            waypost_status::Ok
        );
        assert!(fields.is_null());
        let status = waypost_picker_pick(plain, 99, null(), 3, &mut r, &mut err);
        assert_eq!(failed(status, err), waypost_status::InvalidArgument);

        // Outcomes and in-flight marks by handle; an unknown handle fails.
        assert_eq!(
            waypost_picker_begin(plain, r.handle, &mut err),
            waypost_status::Ok
        );
        assert_eq!(
            waypost_picker_end(plain, r.handle, &mut err),
            waypost_status::Ok
        );
        assert_eq!(
            waypost_picker_report_outcome(plain, r.handle, true, 4, &mut err),
            waypost_status::Ok
        );
        let status = waypost_picker_begin(plain, u64::MAX, &mut err);
        assert_eq!(failed(status, err), waypost_status::NotFound);

        // Freed in any order: the registry outlives its last picker.
        waypost_picker_free(zoned);
        waypost_registry_free(reg);
        assert_eq!(
            waypost_picker_pick(plain, 0, null(), 5, &mut r, &mut err),
            waypost_status::Ok
        );
        waypost_picker_free(plain);
        waypost_picker_free(null_mut());
    }
}

#[test]
fn miri_grpc_call_buffers() {
    use crate::grpc::*;
    unsafe {
        let mut call: *mut waypost_grpc_call = null_mut();
        let mut err: *mut waypost_error = null_mut();
        let (scheme, authority, path) = (c("http"), c("h:1"), c("/p"));
        let msg = [0u8, 0, 0, 0, 1, 7];
        assert_eq!(
            waypost_grpc_call_new(
                p(&scheme),
                p(&authority),
                p(&path),
                msg.as_ptr(),
                msg.len(),
                0,
                &mut call,
                &mut err
            ),
            waypost_status::Ok
        );
        let (mut out, mut len) = (null(), 0usize);
        assert_eq!(
            waypost_grpc_call_output(call, &mut out, &mut len, &mut err),
            waypost_status::Ok
        );
        let sent = std::slice::from_raw_parts(out, len);
        assert_eq!(&sent[len - msg.len()..], msg);
        let mut answer = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
        answer.extend([0, 0, 6, 0, 1, 0, 0, 0, 1]);
        answer.extend(msg);
        let mut state = waypost_grpc_state::Failed;
        for piece in answer.chunks(5) {
            assert_eq!(
                waypost_grpc_call_receive(call, piece.as_ptr(), piece.len(), &mut state, &mut err),
                waypost_status::Ok
            );
        }
        assert_eq!(state, waypost_grpc_state::Answered);
        assert_eq!(
            waypost_grpc_call_answer(call, &mut out, &mut len, &mut err),
            waypost_status::Ok
        );
        assert_eq!(std::slice::from_raw_parts(out, len), msg);
        assert_eq!(
            CStr::from_ptr(waypost_grpc_call_failure(call)).to_bytes(),
            b""
        );
        assert_eq!(
            failed(
                waypost_grpc_call_receive(call, null(), 1, &mut state, &mut err),
                err
            ),
            waypost_status::NullArgument
        );
        waypost_grpc_call_free(call);

        assert_eq!(
            waypost_grpc_call_new(
                p(&scheme),
                p(&authority),
                p(&path),
                null(),
                0,
                0,
                &mut call,
                &mut err
            ),
            waypost_status::Ok
        );
        let junk = b"HTTP/1.1 200 OK\r\n";
        assert_eq!(
            waypost_grpc_call_receive(call, junk.as_ptr(), junk.len(), &mut state, &mut err),
            waypost_status::Ok
        );
        assert_eq!(state, waypost_grpc_state::Failed);
        let failure = CStr::from_ptr(waypost_grpc_call_failure(call))
            .to_str()
            .unwrap();
        assert!(failure.contains("does not speak HTTP/2"), "{failure}");
        waypost_grpc_call_free(call);
    }
}
