//! The reader the etcd payloads went through before: the whole payload
//! parsed into a [`Json`] tree, each key and value decoded into a new
//! buffer and each value parsed into a tree of its own. Kept as the
//! reference the mirror's reader is checked against (property tests and
//! the fuzz target, through [`etcd_readers_agree`]); the mirror never
//! calls it.

use crate::prelude::*;

use super::{bad, naming_record, wire_record, Buffers, Etcd, Failure, KvReader, Record};
use crate::error::{Error, Result};
use crate::json::{describe, get, Json};
use crate::source::base64;

/// Reads `body` twice, as a mirror of `prefix` at `revision` (watching or
/// not) would: through the reader the mirror uses and through the
/// reference. `Err` shows both readings when they differ in anything (the
/// changes, the rejections with their messages, the error, the mirror's
/// state after). For tests and fuzzing.
///
/// # Errors
/// Both readings, when they differ.
#[doc(hidden)]
pub fn etcd_readers_agree(
    prefix: &str,
    revision: u64,
    watching: bool,
    body: &str,
) -> core::result::Result<(), String> {
    let mut mirror = Etcd {
        prefix: prefix.into(),
        revision,
        watching,
        grpc: false,
    };
    let mut reference = mirror.clone();
    let read = mirror.feed(body, 200, None);
    let expected = reference.read(Json::parse(body), &KvReader::REFERENCE);
    if read == expected && mirror == reference {
        Ok(())
    } else {
        Err(format!(
            "mirror:    {read:?} -> {mirror:?}\nreference: {expected:?} -> {reference:?}"
        ))
    }
}

impl KvReader {
    /// Each key and value decoded into a new buffer, each value parsed
    /// into a tree.
    const REFERENCE: KvReader = KvReader {
        id: Etcd::tree_id,
        record: Etcd::tree_record,
    };
}

impl Etcd {
    /// The key of a kv, decoded and split into `(key, service, id)`; on
    /// failure the key text when it could be read, and why.
    fn tree_key(
        &self,
        kv: &[(String, Json)],
    ) -> core::result::Result<(String, String, String), (Option<String>, Error)> {
        let Some(Json::String(coded)) = get(kv, "key") else {
            return Err((None, bad("key", "expected a base64 string")));
        };
        let Some(bytes) = base64::decode(coded) else {
            return Err((None, bad("key", "not base64")));
        };
        let Ok(key) = String::from_utf8(bytes) else {
            return Err((None, bad("key", "not UTF-8")));
        };
        let rest = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'));
        let split = rest.and_then(|r| r.split_once('/'));
        match split {
            Some((service, id)) if !service.is_empty() && !id.is_empty() => {
                let (service, id) = (String::from(service), String::from(id));
                Ok((key, service, id))
            }
            _ => Err((Some(key), bad("key", "expected <prefix>/<service>/<id>"))),
        }
    }

    /// A kv with a value: the entry it describes.
    fn tree_record(
        &self,
        kv: &[(String, Json)],
        _: &mut Buffers,
    ) -> core::result::Result<Record, Failure> {
        let (key, service, id) = self.tree_key(kv).map_err(|(k, e)| (k, None, e))?;
        // The key and id are only copied into a rejection, never before.
        let record = value_members(kv).and_then(|members| {
            let naming = members
                .iter()
                .any(|(k, _)| k == "Addr" || k == "Op" || k == "Metadata");
            if naming {
                naming_record(&members, &service, &id)
            } else {
                wire_record(members, &service, &id)
            }
        });
        record.map_err(|e| (Some(key), Some(id), e))
    }

    fn tree_id(
        &self,
        kv: &[(String, Json)],
        _: &mut Buffers,
    ) -> core::result::Result<String, (Option<String>, Error)> {
        self.tree_key(kv).map(|(_, _, id)| id)
    }
}

/// The members of a kv's value: base64 of a JSON object.
fn value_members(kv: &[(String, Json)]) -> Result<Vec<(String, Json)>> {
    let value = match get(kv, "value") {
        Some(Json::String(coded)) => {
            base64::decode(coded).ok_or_else(|| bad("value", "not base64"))?
        }
        None | Some(Json::Null) => Vec::new(),
        Some(other) => {
            return Err(bad(
                "value",
                &text!("expected a base64 string, got ", describe(other)),
            ))
        }
    };
    let text = core::str::from_utf8(&value).map_err(|_| bad("value", "not UTF-8"))?;
    match Json::parse(text) {
        Ok(Json::Object(members)) => Ok(members),
        Ok(other) => Err(bad(
            "value",
            &text!("expected a JSON object, got ", describe(&other)),
        )),
        Err(e) => Err(bad("value", &text!("not valid JSON: ", e))),
    }
}
