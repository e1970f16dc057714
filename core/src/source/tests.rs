//! The report's `changed` rule, alone and through the registry.

use super::*;
use crate::registry::Registry;
use crate::testing::TestResult;
use std::vec;

fn api(id: &str) -> SourceEntry {
    SourceEntry::new(InstanceSpec::new(id, "api", "10.0.0.1", 80))
}

#[test]
fn changed_is_any_count_that_moved_or_a_resync() {
    let none = SyncReport::default();
    assert!(!none.changed());
    // Each field alone makes a change.
    let each: [fn(&mut SyncReport); 5] = [
        |r| r.added = 1,
        |r| r.updated = 1,
        |r| r.removed = 1,
        |r| r.held = 1,
        |r| r.resync = true,
    ];
    for set in each {
        let mut report = SyncReport::default();
        set(&mut report);
        assert!(report.changed(), "{report:?}");
    }
    let quiet = [
        SyncReport {
            unchanged: 3,
            ..SyncReport::default()
        },
        SyncReport {
            rejected: vec![Rejected {
                at: "0".into(),
                code: ErrorCode::InvalidArgument,
                message: "invalid argument `port`: is required".into(),
            }],
            unchanged: 1,
            ..SyncReport::default()
        },
    ];
    for report in &quiet {
        assert!(!report.changed(), "{report:?}");
    }
}

#[test]
fn changed_is_written_last_in_the_json() {
    let held = SyncReport {
        held: 2,
        ..SyncReport::default()
    };
    assert_eq!(
        held.to_json(),
        r#"{"added":0,"updated":0,"removed":0,"unchanged":0,"held":2,"rejected":[],"resync":false,"changed":true}"#
    );
    let same = SyncReport {
        unchanged: 2,
        ..SyncReport::default()
    };
    assert!(same
        .to_json()
        .ends_with(r#","resync":false,"changed":false}"#));
}

#[test]
fn registry_reports_say_whether_anything_changed() -> TestResult {
    let mut reg = Registry::default();
    let first = reg.sync("etcd", "api", vec![api("a"), api("b")], 0)?;
    assert!(first.changed(), "{first:?}");
    // Listing the same state again changes nothing.
    let again = reg.sync("etcd", "api", vec![api("a"), api("b")], 1)?;
    assert_eq!((again.unchanged, again.changed()), (2, false), "{again:?}");
    let put = reg.source_put("etcd", api("a"), 2)?;
    assert!(!put.changed(), "{put:?}");
    let gone = reg.source_delete("etcd", "never-seen", 3)?;
    assert!(!gone.changed(), "{gone:?}");
    // An empty sync is held whole: held only, and that is a change.
    let held = reg.sync("etcd", "api", vec![], 4)?;
    assert_eq!(
        (
            held.added,
            held.updated,
            held.removed,
            held.held,
            held.resync
        ),
        (0, 0, 0, 2, false),
        "{held:?}"
    );
    assert!(held.changed(), "{held:?}");
    assert!(held.to_json().contains(r#""changed":true"#), "{held:?}");
    Ok(())
}
