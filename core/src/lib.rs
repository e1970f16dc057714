//! # waypost
//!
//! A sans-IO service-discovery core: a registry of service instances with
//! leases (TTL) and check-based health, outlier ejection, panic and
//! self-preservation, seven load-balancing strategies, an event stream and
//! snapshots. It never reads a clock, never draws entropy, never spawns a
//! thread and never does I/O: time comes in as `now` (ms) on every call and
//! randomness from a seeded generator, so the same calls give the same
//! answers on every platform and in every language binding.
//!
//! ```
//! use waypost::{Config, InstanceSpec, PickOptions, Registry, Strategy};
//!
//! let mut reg = Registry::new(Config { ttl_ms: 10_000, seed: 7, ..Config::default() })?;
//! reg.register(InstanceSpec::new("api-1", "api", "10.0.0.1", 8080), 0)?;
//! reg.register(InstanceSpec::new("api-2", "api", "10.0.0.2", 8080), 0)?;
//! reg.heartbeat("api-1", 9_000)?;
//! // api-2's lease ran out at 10 000: at 10 001 only api-1 is picked.
//! let pick = reg.pick("api", Strategy::RoundRobin, &PickOptions::default(), 10_001)?;
//! assert_eq!(reg.instance(pick.handle).map(|i| i.id()), Some("api-1"));
//! # Ok::<(), waypost::Error>(())
//! ```
//!
//! Cargo features: `pickers` (default) adds worker-local pickers
//! (`Registry::picker`); `record-reader` (default) reads etcd records
//! without building a JSON tree; `serde` (off by default) derives serde's
//! `Serialize` / `Deserialize` on the public types (`Config`,
//! `InstanceSpec`, `InstanceStatus` and `Event` as the same JSON as their
//! `to_json`).
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

// The core needs only an allocator, never the operating system, so it
// builds without `std`: the WebAssembly module then carries none of std's
// panic and formatting runtime. Unit tests run with std.
extern crate alloc;
#[cfg(test)]
extern crate std;
#[cfg(test)]
mod testing;

/// What std's prelude would bring into every module, but `ToString`: its
/// `to_string()` formats through `core::fmt` (see `text`).
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

#[macro_use]
mod text;
#[macro_use]
mod names;

mod balancer;
mod config;
mod error;
mod events;
#[cfg(feature = "etcd-grpc")]
mod grpc_call;
mod health;
mod host_cache;
mod instance;
mod instance_fields;
pub mod json;
mod meta;
mod metrics;
mod registry;
mod rng;
mod sort;
mod source;
mod status_fields;

pub use balancer::{fnv1a64, Strategy};
pub use config::{
    Config, ConfigField, ConfigKind, CONFIG_FIELDS, CONFIG_KEYS, DAY_MS, LIMITS, MAX_ID_BYTES,
    MAX_KEY_BYTES, MAX_META, MAX_META_KEY_BYTES, MAX_META_VALUE_BYTES, MAX_PORT, MAX_PREFIX_BYTES,
    MAX_TAGS, MAX_WEIGHT, MAX_ZONE_BYTES,
};
pub use error::{Error, ErrorCode, Result};
pub use events::{Event, EventKind, MAX_EVENT_INDEX};
#[cfg(feature = "etcd-grpc")]
pub use grpc_call::{GrpcCall, GrpcCallState, GRPC_MAX_ANSWER, GRPC_MAX_REQUEST};
pub use health::{CheckStatus, Health};
pub use host_cache::{DiscoverAnswers, DiscoverStamp, InstanceObjects, InstanceStamp};
pub use instance::{
    Filter, Instance, InstanceDefault, InstanceField, InstanceKind, InstanceSpec, INSTANCE_FIELDS,
    INSTANCE_KEYS,
};
#[cfg(feature = "serde")]
pub use instance_fields::InstanceSpecWire;
pub use meta::Meta;
pub use metrics::{RegistryMetrics, ServiceMetrics, ServiceMetricsView};
pub use registry::entry_status::InstanceStatus;
pub use registry::SNAPSHOT_FORMAT;
#[cfg(feature = "pickers")]
pub use registry::{
    pick_tables_alive, PickTable, Picked, Picker, PICKER_OUTCOME_BATCH, PICKER_OUTCOME_CAP,
    PICKER_OUTCOME_DELAY_MS,
};
pub use registry::{
    DiscoverOptions, Discovery, Handle, InstanceView, Pick, PickOptions, Registry, ServiceRef,
};
#[doc(hidden)]
pub use source::etcd_readers_agree;
#[cfg(feature = "consul-registration")]
pub use source::{ConsulRegistration, CONSUL_MAINTENANCE_REASON, MAX_CONSUL_CHECK_S};
pub use source::{
    Rejected, SourceEntry, SourceKind, SourceRequest, SourceStatus, SyncReport, DEFAULT_ETCD_PREFIX,
};
pub use status_fields::{StatusField, StatusKind, StatusPresence, STATUS_FIELDS};

/// The crate version, as every binding reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
