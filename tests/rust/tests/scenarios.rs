//! Runs every scenario file (SPEC §9) through the Rust API and writes the
//! reference transcripts the other languages are compared with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use waypost::{
    CheckStatus, Config, DiscoverOptions, Event, Filter, InstanceSpec, PickOptions, Registry,
    Strategy,
};

fn scenario_dir() -> PathBuf {
    match std::env::var_os("WAYPOST_SCENARIOS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"),
    }
}

fn event_json(e: &Event) -> Value {
    serde_json::to_value(e).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn str_arg<'a>(step: &'a Map<String, Value>, key: &str) -> &'a str {
    step.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("step needs string `{key}`: {step:?}"))
}

fn filter_of(step: &Map<String, Value>) -> Filter {
    let tags = step
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    let meta = step
        .get("meta")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Filter { tags, meta }
}

struct Runner {
    reg: Registry,
    last_event: u64,
}

impl Runner {
    /// Runs one step; returns the transcript fields after `step`/`op`.
    fn run(
        &mut self,
        step: &Map<String, Value>,
        at: u64,
    ) -> Result<Map<String, Value>, waypost::Error> {
        let op = str_arg(step, "op");
        let mut out = Map::new();
        match op {
            "register" => {
                let instance = step
                    .get("instance")
                    .expect("register needs instance")
                    .to_string();
                let spec = InstanceSpec::from_json(&instance)?;
                self.reg.register(spec, at)?;
            }
            "deregister" => self.reg.deregister(str_arg(step, "id"), at)?,
            "heartbeat" => self.reg.heartbeat(str_arg(step, "id"), at)?,
            "begin" => self.reg.begin(str_arg(step, "id"), at)?,
            "end" => self.reg.end(str_arg(step, "id"), at)?,
            "check" => {
                let status: CheckStatus = str_arg(step, "status").parse()?;
                self.reg.report_check(str_arg(step, "id"), status, at)?
            }
            "outcome" => {
                let success = step
                    .get("success")
                    .and_then(Value::as_bool)
                    .expect("outcome needs success");
                self.reg.report_outcome(str_arg(step, "id"), success, at)?
            }
            "drain" => {
                let on = step.get("on").and_then(Value::as_bool).unwrap_or(true);
                self.reg.drain(str_arg(step, "id"), on, at)?
            }
            "tick" => {
                let events: Vec<Value> = self.reg.tick(at).iter().map(event_json).collect();
                out.insert("events".into(), events.into());
            }
            "discover" => {
                let options = DiscoverOptions {
                    all: step.get("all").and_then(Value::as_bool).unwrap_or(false),
                    filter: filter_of(step),
                };
                let found = self.reg.discover(str_arg(step, "service"), &options, at)?;
                let ids: Vec<Value> = found.iter().map(|v| v.instance.id().into()).collect();
                let health: Vec<Value> = found
                    .iter()
                    .map(|v| v.status.health.as_str().into())
                    .collect();
                out.insert("ids".into(), ids.into());
                out.insert("health".into(), health.into());
                out.insert("panic".into(), found.panic.into());
            }
            "pick" | "picks" => {
                let strategy: Strategy = str_arg(step, "strategy").parse()?;
                let mut options = PickOptions {
                    key: step.get("key").and_then(Value::as_str).map(str::to_owned),
                    zone: step.get("zone").and_then(Value::as_str).map(str::to_owned),
                    filter: filter_of(step),
                };
                let service = str_arg(step, "service");
                if op == "pick" {
                    let pick = self.reg.pick(service, strategy, &options, at)?;
                    let id = self.reg.instance(pick.handle).unwrap().id().to_owned();
                    out.insert("id".into(), id.into());
                    out.insert("panic".into(), pick.panic.into());
                } else {
                    let count = step.get("count").and_then(Value::as_u64).unwrap_or(1);
                    let prefix = step.get("key_prefix").and_then(Value::as_str);
                    let mut ids = Vec::new();
                    for i in 0..count {
                        if let Some(prefix) = prefix {
                            options.key = Some(format!("{prefix}{i}"));
                        }
                        let pick = self.reg.pick(service, strategy, &options, at)?;
                        ids.push(Value::from(self.reg.instance(pick.handle).unwrap().id()));
                    }
                    out.insert("ids".into(), ids.into());
                }
            }
            "events" => {
                let events = self.reg.events_since(self.last_event)?;
                if let Some(last) = events.last() {
                    self.last_event = last.index;
                }
                out.insert(
                    "events".into(),
                    events.iter().map(event_json).collect::<Vec<_>>().into(),
                );
            }
            "get" => {
                let view = self.reg.get(str_arg(step, "id"), at)?;
                out.insert("id".into(), view.instance.id().into());
                out.insert("service".into(), view.instance.service().into());
                out.insert("health".into(), view.status.health.as_str().into());
                out.insert("modify_index".into(), view.status.modify_index.into());
                out.insert("inflight".into(), view.status.inflight.into());
                if let Some(source) = view.instance.source() {
                    out.insert("source".into(), source.into());
                    out.insert("held".into(), view.status.held.into());
                }
            }
            "services" => {
                let names: Vec<Value> = self
                    .reg
                    .services(at)
                    .iter()
                    .map(|s| Value::from(&**s))
                    .collect();
                out.insert("services".into(), names.into());
            }
            "due_checks" => {
                let ids: Vec<Value> = self
                    .reg
                    .due_checks(at)
                    .iter()
                    .map(|s| Value::from(&**s))
                    .collect();
                out.insert("ids".into(), ids.into());
            }
            "snapshot_restore" => {
                let text = self.reg.snapshot();
                self.reg = Registry::restore(&text)?;
            }
            "sync" => {
                let entries = step.get("entries").expect("sync needs entries").to_string();
                let source = str_arg(step, "source");
                let report = self
                    .reg
                    .sync_json(source, str_arg(step, "service"), &entries, at)?;
                out.insert("report".into(), json_of(&report.to_json()));
            }
            "source_put" => {
                let entry = step
                    .get("entry")
                    .expect("source_put needs entry")
                    .to_string();
                let report = self
                    .reg
                    .source_put_json(str_arg(step, "source"), &entry, at)?;
                out.insert("report".into(), json_of(&report.to_json()));
            }
            "source_delete" => {
                let report =
                    self.reg
                        .source_delete(str_arg(step, "source"), str_arg(step, "id"), at)?;
                out.insert("report".into(), json_of(&report.to_json()));
            }
            "source_add" => {
                let options = step.get("options").expect("source_add needs options");
                self.reg
                    .source_add(str_arg(step, "name"), &options.to_string())?;
            }
            "source_request" => {
                let request = self.reg.source_request(str_arg(step, "name"))?;
                out.insert("request".into(), json_of(&request.to_json()));
            }
            "source_feed" | "etcd_range" | "etcd_watch" | "consul_health" | "k8s_slices" => {
                let default_name = match op {
                    "consul_health" => "consul",
                    "k8s_slices" => "k8s",
                    _ => "etcd",
                };
                let name = step
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(default_name);
                // A binary payload (a gRPC answer) comes as `body_base64`.
                let body = match step.get("body_base64").and_then(Value::as_str) {
                    Some(coded) => decode_base64(coded),
                    None => {
                        let payload = if op == "source_feed" {
                            step.get("body")
                        } else {
                            step.get("payload")
                        }
                        .expect("a feed needs its body or payload");
                        match payload {
                            Value::String(text) => text.clone().into_bytes(),
                            value => value.to_string().into_bytes(),
                        }
                    }
                };
                let status = step.get("status").and_then(Value::as_u64).unwrap_or(200);
                let index = step.get("index").and_then(Value::as_str);
                let report = self
                    .reg
                    .source_feed_bytes(name, &body, at, status as u16, index)?;
                out.insert("report".into(), json_of(&report.to_json()));
            }
            "k8s_watch" => {
                let name = step.get("name").and_then(Value::as_str).unwrap_or("k8s");
                let payload = step.get("payload").expect("a feed needs its payload");
                let text = |v: &Value| match v {
                    Value::String(text) => text.clone(),
                    value => value.to_string(),
                };
                // A watch message of several events: one JSON line each.
                let body = match payload {
                    Value::Array(events) => events.iter().map(text).collect::<Vec<_>>().join("\n"),
                    value => text(value),
                };
                let status = step.get("status").and_then(Value::as_u64).unwrap_or(200);
                let report = self.reg.source_feed(name, &body, at, status as u16, None)?;
                out.insert("report".into(), json_of(&report.to_json()));
            }
            other => panic!("unknown op `{other}`"),
        }
        Ok(out)
    }
}

fn check_expect(name: &str, i: usize, expect: &Map<String, Value>, line: &Map<String, Value>) {
    let ctx = format!("{name} step {i}: got {}", Value::Object(line.clone()));
    let ok = line["ok"].as_bool().unwrap();
    match expect.get("error") {
        Some(code) => {
            assert!(!ok, "{ctx}: expected error {code}");
            assert_eq!(&line["error"], code, "{ctx}");
        }
        None => assert!(ok, "{ctx}: expected success"),
    }
    for (key, want) in expect {
        match key.as_str() {
            "error" | "tolerance" => {}
            "ids" | "id" | "health" | "panic" | "services" | "source" | "held" => {
                assert_eq!(line.get(key), Some(want), "{ctx}: `{key}`")
            }
            "report" | "request" => {
                let got = line.get(key).unwrap_or_else(|| panic!("{ctx}: no `{key}`"));
                for (field, value) in want.as_object().unwrap() {
                    assert_eq!(got.get(field), Some(value), "{ctx}: {key} field `{field}`");
                }
            }
            "events" => {
                let got = line["events"].as_array().unwrap();
                let want = want.as_array().unwrap();
                assert_eq!(got.len(), want.len(), "{ctx}: number of events");
                for (g, w) in got.iter().zip(want) {
                    for (field, value) in w.as_object().unwrap() {
                        assert_eq!(
                            g.get(field),
                            Some(value),
                            "{ctx}: event field `{field}` of {w}"
                        );
                    }
                }
            }
            "counts" => {
                let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
                for id in line["ids"].as_array().unwrap() {
                    *counts.entry(id.as_str().unwrap()).or_default() += 1;
                }
                let want: BTreeMap<&str, u64> = want
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_u64().unwrap()))
                    .filter(|(_, v)| *v > 0)
                    .collect();
                assert_eq!(counts, want, "{ctx}: counts");
            }
            "shares" => {
                let ids = line["ids"].as_array().unwrap();
                let tolerance = expect
                    .get("tolerance")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.05);
                for (id, share) in want.as_object().unwrap() {
                    let n = ids.iter().filter(|x| x.as_str() == Some(id)).count();
                    let got = n as f64 / ids.len() as f64;
                    let share = share.as_f64().unwrap();
                    assert!(
                        (got - share).abs() <= tolerance,
                        "{ctx}: share of {id} is {got}, want {share}±{tolerance}"
                    );
                }
            }
            other => panic!("{ctx}: unknown expectation `{other}`"),
        }
    }
}

/// Standard base64, padded (what the vectors write).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {text}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn run_file(path: &Path) -> Vec<Value> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut config_map = doc
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    config_map.entry("seed").or_insert(json!(0));
    let config = Config::from_json(&Value::Object(config_map).to_string())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut runner = Runner {
        reg: Registry::new(config).unwrap(),
        last_event: 0,
    };
    let mut at = 0;
    let mut transcript = Vec::new();
    for (i, step) in doc["steps"].as_array().unwrap().iter().enumerate() {
        let step = step.as_object().unwrap();
        if let Some(t) = step.get("at") {
            at = t.as_u64().unwrap();
        }
        let op = str_arg(step, "op");
        let mut line = Map::new();
        line.insert("step".into(), i.into());
        line.insert("op".into(), op.into());
        match runner.run(step, at) {
            Ok(fields) => {
                line.insert("ok".into(), true.into());
                line.extend(fields);
            }
            Err(e) => {
                line.insert("ok".into(), false.into());
                line.insert("error".into(), e.code().as_str().into());
            }
        }
        if let Some(expect) = step.get("expect") {
            check_expect(&name, i, expect.as_object().unwrap(), &line);
        } else {
            assert!(
                line["ok"].as_bool().unwrap(),
                "{name} step {i}: {}",
                Value::Object(line.clone())
            );
        }
        transcript.push(Value::Object(line));
    }
    transcript
}

#[test]
fn every_scenario_file_passes() {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    let out_dir = std::env::var_os("WAYPOST_TRANSCRIPTS").map(|d| PathBuf::from(d).join("rust"));
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d).unwrap();
    }
    for path in &files {
        let transcript = run_file(path);
        if let Some(d) = &out_dir {
            let stem = path.file_stem().unwrap().to_string_lossy();
            let text: String = transcript.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(d.join(format!("{stem}.jsonl")), text).unwrap();
        }
    }
    println!("{} scenario files passed", files.len());
}
