#!/usr/bin/env python3
"""Counts the lines of tests/ inside test functions and outside them (harness).

A test function is an `fn` item whose attributes include `#[test]` or `#[tokio::test...]`;
its lines run from the first attribute to the closing brace. Everything else in tests/
(helpers, support modules, imports, constants, comments) counts as outside.

    python3 tools/test_lines.py [DIR]
"""
import pathlib
import re
import sys

TEST_ATTR = re.compile(r"^\s*#\[(tokio::)?test\b")


def split_lines(text):
    lines = text.splitlines()
    inside = 0
    i = 0
    while i < len(lines):
        if not TEST_ATTR.match(lines[i]):
            i += 1
            continue
        start = i
        # Find the fn's opening brace, then its matching close.
        depth = 0
        opened = False
        while i < len(lines):
            code = lines[i].split("//")[0]
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            i += 1
            if opened and depth <= 0:
                break
        inside += i - start
    return inside, len(lines)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests")
    total_inside = total = 0
    for path in sorted(root.rglob("*.rs")):
        inside, lines = split_lines(path.read_text())
        total_inside += inside
        total += lines
    print(f"{root}: {total} lines, {total_inside} inside test functions, "
          f"{total - total_inside} outside")


if __name__ == "__main__":
    main()
