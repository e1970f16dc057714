//! Writes what the bindings must spell out statically (a C struct, Go
//! types, type stubs) from the core's tables, so each fact stays written
//! once, in the core.
//!
//!     cargo run -q -p waypost-gen            fails, naming each stale file
//!     cargo run -q -p waypost-gen -- --write rewrites them
//!
//! An output is a whole file, or the lines between `BEGIN GENERATED <name>`
//! and `END GENERATED <name>` markers in a file that is otherwise written
//! by hand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod config;
mod instance;
mod instance_read;
mod names;
mod status;

/// Where one piece of generated text goes.
pub enum Target {
    /// The whole file, after the given formatter (if any).
    File(&'static str, Option<&'static [&'static str]>),
    /// The lines between the markers named so, in this file.
    Region(&'static str, &'static str),
}

/// Rust files go through rustfmt, Go files through gofmt, as `make test` checks them.
pub const RUSTFMT: &[&str] = &["rustfmt", "--edition", "2021"];
pub const GOFMT: &[&str] = &["gofmt"];

fn formatted(text: String, command: Option<&[&str]>) -> Result<String, String> {
    let Some([program, args @ ..]) = command else {
        return Ok(text);
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| format!("{program}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} rejected the generated text:\n{text}"));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// The file's new content with `body` in place.
fn apply(root: &Path, target: &Target, body: String) -> Result<(PathBuf, String, String), String> {
    let (path, new) = match target {
        Target::File(path, format) => (root.join(path), formatted(body, *format)?),
        Target::Region(path, name) => {
            let path = root.join(path);
            let old =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let begin = format!("BEGIN GENERATED {name}");
            let end = format!("END GENERATED {name}");
            let mut out = String::new();
            let mut lines = old.split_inclusive('\n');
            let mut found = false;
            while let Some(line) = lines.next() {
                out.push_str(line);
                if line.contains(&begin) {
                    found = true;
                    out.push_str(&body);
                    let rest: Vec<&str> =
                        lines.by_ref().skip_while(|l| !l.contains(&end)).collect();
                    if rest.is_empty() {
                        return Err(format!("{}: no `{end}` line", path.display()));
                    }
                    out.extend(rest);
                    break;
                }
            }
            if !found {
                return Err(format!("{}: no `{begin}` line", path.display()));
            }
            (path, out)
        }
    };
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    Ok((path, old, new))
}

/// Checks (or with `write`, rewrites) every output; returns the stale
/// files' paths.
fn run(write: bool) -> Result<Vec<String>, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut stale = Vec::new();
    for (target, body) in config::outputs()
        .into_iter()
        .chain(instance::outputs())
        .chain(instance_read::outputs())
        .chain(names::outputs())
        .chain(status::outputs())
    {
        let (path, old, new) = apply(&root, &target, body)?;
        if old == new {
            continue;
        }
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if write {
            std::fs::write(&path, new).map_err(|e| format!("{shown}: {e}"))?;
            println!("gen: wrote {shown}");
        }
        stale.push(shown);
    }
    Ok(stale)
}

fn main() -> ExitCode {
    let write = std::env::args().any(|a| a == "--write");
    match run(write) {
        Err(e) => {
            eprintln!("gen: {e}");
            ExitCode::FAILURE
        }
        Ok(stale) if !write && !stale.is_empty() => {
            for shown in stale {
                eprintln!("gen: {shown} is stale (run `make gen`)");
            }
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
    }
}

/// `snake_case` → `CamelCase`, with Go's initialisms.
pub fn camel(key: &str, go: bool) -> String {
    key.split('_')
        .map(|w| match w {
            "ttl" | "id" if go => w.to_uppercase(),
            _ => {
                let mut c = w.chars();
                c.next()
                    .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
            }
        })
        .collect()
}

/// `snake_case` → `lowerCamelCase` (JavaScript keys).
pub fn lower_camel(key: &str) -> String {
    let c = camel(key, false);
    let mut chars = c.chars();
    chars
        .next()
        .map_or(String::new(), |f| f.to_lowercase().chain(chars).collect())
}

/// A Go field name: `CamelCase` with Go's initialisms; a duration (a
/// `_ms` key of a 64-bit integer, a `time.Duration` in Go) drops the suffix.
pub fn go_field(key: &str, duration: bool) -> String {
    camel(
        key.strip_suffix("_ms").filter(|_| duration).unwrap_or(key),
        true,
    )
}

/// A documentation text as comment lines with `prefix`.
pub fn comment(doc: &str, prefix: &str) -> String {
    doc.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{prefix}{l}\n"))
        .collect()
}

/// The documentation on one line.
pub fn one_line(doc: &str) -> String {
    doc.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A read-only property of a Python stub, `Optional` when it may be None,
/// with its documentation on one line as the docstring.
pub fn stub_property(name: &str, ty: &str, optional: bool, doc: &str) -> String {
    let ty = if optional {
        format!("Optional[{ty}]")
    } else {
        ty.to_string()
    };
    format!(
        "    @property\n    def {name}(self) -> {ty}:\n        \"\"\"{}\"\"\"\n",
        one_line(doc)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_files_are_current() {
        assert_eq!(super::run(false), Ok(Vec::new()), "run `make gen`");
    }
}
