#!/usr/bin/env python3
"""Requires every language's scenario transcripts to equal the Rust ones.

Usage: compare-transcripts.py DIR, where DIR/<language>/<scenario>.jsonl were
written by each binding's scenario runner. Lines are compared as JSON values.
A browser may leave out a file that `requires` what the browser's module is
built without (the etcd gRPC reader); every other language runs them all.
"""
import json
import os
import sys
from pathlib import Path


BROWSERS = {"chromium", "firefox"}


def load(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/transcripts")
    reference = root / "rust"
    if not reference.is_dir():
        print(f"no reference transcripts in {reference}")
        return 1
    names = sorted(p.name for p in reference.glob("*.jsonl"))
    vectors = Path(os.environ.get("WAYPOST_SCENARIOS") or Path(__file__).resolve().parent.parent / "tests" / "scenarios")
    browser_skips = set()
    for name in names:
        vector = vectors / name.replace(".jsonl", ".json")
        if vector.exists() and json.loads(vector.read_text()).get("requires") == ["etcd-grpc"]:
            browser_skips.add(name)
    skipped = 0
    languages = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != "rust")
    passed = failed = 0
    for lang in languages:
        for name in names:
            other = root / lang / name
            if not other.exists() and lang in BROWSERS and name in browser_skips:
                skipped += 1
                continue
            if not other.exists():
                print(f"FAIL {lang}/{name}: missing")
                failed += 1
                continue
            want, got = load(reference / name), load(other)
            if want == got:
                passed += 1
                continue
            failed += 1
            for i, (w, g) in enumerate(zip(want, got)):
                if w != g:
                    print(f"FAIL {lang}/{name} line {i}:\n  rust: {json.dumps(w)}\n  {lang}: {json.dumps(g)}")
                    break
            else:
                print(f"FAIL {lang}/{name}: {len(want)} lines in rust, {len(got)} in {lang}")
    print(f"languages compared with rust: {', '.join(languages) or 'none'}")
    print(f"transcripts: {passed} passed, {failed} failed"
          + (f", {skipped} left out by browsers (etcd-grpc)" if skipped else ""))
    return 1 if failed or not languages else 0


if __name__ == "__main__":
    sys.exit(main())
