//! One entry of Consul's health answer, read into a source entry (the
//! mapping table is in the parent module's documentation).

use crate::prelude::*;

use super::{object, optional_string, port, reject, Members};
use crate::config::MAX_WEIGHT;
use crate::error::ErrorCode;
use crate::instance::InstanceSpec;
use crate::json::{describe, get, Json};
use crate::meta::Meta;
use crate::source::{Rejected, SourceEntry, SourceStatus};

/// The check Consul adds while a node is in maintenance.
const NODE_MAINTENANCE: &str = "_node_maintenance";
/// The check Consul adds while a service is in maintenance, before its ID.
const SERVICE_MAINTENANCE: &str = "_service_maintenance:";

/// How bad a status is, for "the worst wins".
fn severity(status: SourceStatus) -> u8 {
    match status {
        SourceStatus::Passing => 0,
        SourceStatus::Warning => 1,
        SourceStatus::Critical => 2,
        SourceStatus::Maintenance => 3,
    }
}

fn worst(a: SourceStatus, b: SourceStatus) -> SourceStatus {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// One entry of the answer, read but not yet combined with its node.
struct Item {
    at: usize,
    node: String,
    spec: InstanceSpec,
    passing_weight: u32,
    warning_weight: u32,
    /// The worst of the entry's own checks.
    own: SourceStatus,
}

/// Every entry of the answer as a source entry, or the reason it was skipped.
pub(super) fn read_entries(service: &str, items: &[Json]) -> (Vec<SourceEntry>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let mut read = Vec::with_capacity(items.len());
    // Node checks, worst first-seen per node name: they apply to every
    // service on the node, wherever in the answer they were listed.
    let mut nodes: Vec<(String, SourceStatus)> = Vec::new();
    for (at, item) in items.iter().enumerate() {
        match read_item(service, item, at, &mut nodes) {
            Ok(item) => read.push(item),
            Err(message) => rejected.push(reject(
                text!("[", at, "]"),
                ErrorCode::InvalidArgument,
                message,
            )),
        }
    }
    qualify_shared_ids(&mut read, &mut rejected);
    let mut entries = Vec::with_capacity(read.len());
    for mut item in read {
        let node = nodes
            .iter()
            .find(|(name, _)| *name == item.node)
            .map_or(SourceStatus::Passing, |(_, s)| *s);
        let status = worst(item.own, node);
        item.spec.weight = if status == SourceStatus::Warning {
            item.warning_weight
        } else {
            item.passing_weight
        };
        match item.spec.validate() {
            Ok(()) => entries.push(SourceEntry {
                spec: item.spec,
                status,
            }),
            Err(e) => rejected.push(reject(
                text!("[", item.at, "]"),
                ErrorCode::InvalidArgument,
                e.message(),
            )),
        }
    }
    // Rejections in answer order, whichever step made them.
    crate::sort::sort_by(&mut rejected, |a, b| position(&a.at) < position(&b.at));
    (entries, rejected)
}

/// The position in `[i]`.
fn position(at: &str) -> usize {
    let digits = at.trim_start_matches('[').trim_end_matches(']');
    digits.parse().unwrap_or(usize::MAX)
}

/// Names every entry whose `Service.ID` another entry shares
/// `<Node.Node>/<Service.ID>` (Consul keeps IDs unique per node only); an
/// entry that still repeats an earlier one (the same service twice on one
/// node) is skipped.
fn qualify_shared_ids(items: &mut Vec<Item>, rejected: &mut Vec<Rejected>) {
    let shared = repeated(items.iter().map(|i| i.spec.id.as_str()));
    for item in items.iter_mut() {
        if shared.binary_search(&item.spec.id).is_ok() {
            item.spec.id = text!(item.node, "/", item.spec.id);
        }
    }
    let twice = repeated(items.iter().map(|i| i.spec.id.as_str()));
    let mut seen: Vec<String> = Vec::new();
    items.retain(|item| {
        if twice.binary_search(&item.spec.id).is_err() {
            return true;
        }
        if seen.contains(&item.spec.id) {
            rejected.push(reject(
                text!("[", item.at, "]"),
                ErrorCode::Conflict,
                text!("Service.ID `", item.spec.id, "` repeats an earlier entry"),
            ));
            return false;
        }
        seen.push(item.spec.id.clone());
        true
    });
}

/// The names that occur more than once, sorted.
fn repeated<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<&str> = names.collect();
    crate::sort::sort_by(&mut names, |a, b| a < b);
    let mut out: Vec<String> = Vec::new();
    for pair in names.windows(2) {
        if let [a, b] = pair {
            if a == b && out.last().map(String::as_str) != Some(*a) {
                out.push(String::from(*a));
            }
        }
    }
    out
}

fn read_item(
    service: &str,
    item: &Json,
    at: usize,
    nodes: &mut Vec<(String, SourceStatus)>,
) -> Result<Item, String> {
    let entry = object(Some(item), "entry")?;
    let node = object(get(entry, "Node"), "Node")?;
    let svc = object(get(entry, "Service"), "Service")?;
    let id = string(svc, "ID", "Service.ID")?;
    if id.is_empty() {
        return Err("Service.ID is empty".into());
    }
    let name = string(svc, "Service", "Service.Service")?;
    if !name.eq_ignore_ascii_case(service) {
        return Err(text!(
            "Service.Service `",
            name,
            "` is not the mirrored service `",
            service,
            "`"
        ));
    }
    let node_name = string(node, "Node", "Node.Node")?;
    let address = match string(svc, "Address", "Service.Address")? {
        "" => string(node, "Address", "Node.Address")?,
        a => a,
    };
    if address.is_empty() {
        return Err("Service.Address and Node.Address are both empty".into());
    }
    let port = port(get(svc, "Port"), "Service.Port")?;
    let mut spec = InstanceSpec::new(id, service, address, port);
    spec.tags = tags(get(svc, "Tags"))?;
    spec.meta = meta(get(svc, "Meta"), "Service.Meta")?;
    spec.zone = zone(svc, node)?;
    let (passing_weight, warning_weight) = weights(get(svc, "Weights"))?;
    let (own, on_node) = checks(get(entry, "Checks"), id)?;
    if let Some(status) = on_node {
        match nodes.iter_mut().find(|(n, _)| n == node_name) {
            Some((_, s)) => *s = worst(*s, status),
            None => nodes.push((node_name.to_owned(), status)),
        }
    }
    Ok(Item {
        at,
        node: node_name.to_owned(),
        spec,
        passing_weight,
        warning_weight,
        own,
    })
}

/// The worst of the entry's service checks, and of its node checks (None
/// when it lists none).
fn checks(value: Option<&Json>, id: &str) -> Result<(SourceStatus, Option<SourceStatus>), String> {
    let list = match value {
        None | Some(Json::Null) => return Ok((SourceStatus::Passing, None)),
        Some(Json::Array(list)) => list,
        Some(v) => return Err(text!("Checks must be an array, got ", describe(v))),
    };
    let mut own = SourceStatus::Passing;
    let mut node: Option<SourceStatus> = None;
    for (k, check) in list.iter().enumerate() {
        let path = |field: &str| text!("Checks[", k, "].", field);
        let check = object(Some(check), &text!("Checks[", k, "]"))?;
        let check_id = string(check, "CheckID", &path("CheckID"))?;
        let service_id = string(check, "ServiceID", &path("ServiceID"))?;
        let status = match string(check, "Status", &path("Status"))? {
            "passing" => SourceStatus::Passing,
            "warning" => SourceStatus::Warning,
            "critical" => SourceStatus::Critical,
            other => {
                return Err(text!(
                    path("Status"),
                    " must be passing, warning or critical, got `",
                    other,
                    "`"
                ))
            }
        };
        let maintenance =
            check_id == NODE_MAINTENANCE || check_id.strip_prefix(SERVICE_MAINTENANCE) == Some(id);
        let status = if maintenance {
            SourceStatus::Maintenance
        } else {
            status
        };
        if service_id.is_empty() {
            node = Some(worst(node.unwrap_or_default(), status));
        } else if service_id == id {
            own = worst(own, status);
        }
    }
    Ok((own, node))
}

/// `Weights.Passing` and `Weights.Warning`, 1 when absent, clamped into
/// waypost's 1..=[`MAX_WEIGHT`] (Consul allows a warning weight of 0).
fn weights(value: Option<&Json>) -> Result<(u32, u32), String> {
    let w = match value {
        None | Some(Json::Null) => return Ok((1, 1)),
        Some(v) => object(Some(v), "Service.Weights")?,
    };
    let one = |key: &str| -> Result<u32, String> {
        match get(w, key) {
            None | Some(Json::Null) => Ok(1),
            Some(v) => v
                .as_u64()
                .map(|n| n.clamp(1, u64::from(MAX_WEIGHT)) as u32)
                .ok_or_else(|| {
                    text!(
                        "Service.Weights.",
                        key,
                        " must be a non-negative integer, got ",
                        describe(v)
                    )
                }),
        }
    };
    Ok((one("Passing")?, one("Warning")?))
}

fn zone(svc: &Members, node: &Members) -> Result<Option<String>, String> {
    for (owner, path) in [(svc, "Service.Locality"), (node, "Node.Locality")] {
        if let Some(locality) = get(owner, "Locality").filter(|v| **v != Json::Null) {
            let locality = object(Some(locality), path)?;
            let zone = optional_string(locality, "Zone", &text!(path, ".Zone"))?;
            if let Some(z) = zone.filter(|z| !z.is_empty()) {
                return Ok(Some(z.to_owned()));
            }
        }
    }
    let node_meta = meta(get(node, "Meta"), "Node.Meta")?;
    Ok(node_meta
        .get("zone")
        .filter(|z| !z.is_empty())
        .map(String::from))
}

fn tags(value: Option<&Json>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str().map(String::from).ok_or_else(|| {
                    text!("Service.Tags[", i, "] must be a string, got ", describe(t))
                })
            })
            .collect(),
        Some(v) => Err(text!("Service.Tags must be an array, got ", describe(v))),
    }
}

fn meta(value: Option<&Json>, path: &str) -> Result<Meta, String> {
    let mut meta = Meta::new();
    match value {
        None | Some(Json::Null) => {}
        Some(Json::Object(members)) => {
            if members.len() > crate::MAX_META {
                return Err(text!(path, " has more than ", crate::MAX_META, " entries"));
            }
            for (k, v) in members {
                let v = v
                    .as_str()
                    .ok_or_else(|| text!(path, ".", k, " must be a string, got ", describe(v)))?;
                meta.insert(k.clone(), v.to_owned());
            }
        }
        Some(v) => return Err(text!(path, " must be an object, got ", describe(v))),
    }
    Ok(meta)
}

/// A string member; absent or null reads as empty (Go's zero value).
fn string<'a>(members: &'a Members, key: &str, path: &str) -> Result<&'a str, String> {
    Ok(optional_string(members, key, path)?.unwrap_or_default())
}
