#!/usr/bin/env python3
"""Requires every language's scenario transcripts to equal the Rust ones.

Usage: compare-transcripts.py DIR, where DIR/<language>/<scenario>.jsonl were
written by each binding's scenario runner. Lines are compared as JSON values.
"""
import json
import sys
from pathlib import Path


def load(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/transcripts")
    reference = root / "rust"
    if not reference.is_dir():
        print(f"no reference transcripts in {reference}")
        return 1
    names = sorted(p.name for p in reference.glob("*.jsonl"))
    languages = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != "rust")
    passed = failed = 0
    for lang in languages:
        for name in names:
            other = root / lang / name
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
    print(f"transcripts: {passed} passed, {failed} failed")
    return 1 if failed or not languages else 0


if __name__ == "__main__":
    sys.exit(main())
