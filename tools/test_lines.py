#!/usr/bin/env python3
"""Counts the lines of tests/ inside test functions and outside them (harness).

A test function is an `fn` item whose attributes include `#[test]` or `#[tokio::test...]`;
its lines run from the first attribute to the closing brace (braces in comments, strings
and char literals do not count). Everything else in tests/
(helpers, support modules, imports, constants, comments) counts as outside.

    python3 tools/test_lines.py [DIR]
"""
import pathlib
import re
import sys

TEST_ATTR = re.compile(r"^\s*#\[(tokio::)?test\b")


def braces(text):
    """Yields (line_index, +1/-1) for every brace of code, skipping comments, strings
    (raw strings too) and char literals."""
    i, line, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i == -1:
                return
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            line += text.count("\n", i, end)
            i = end
            continue
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and not (text[i - 1:i].isalnum() or text[i - 1:i] == "_"):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            end = n if end == -1 else end + len(hashes) + 1
            line += text.count("\n", i, end)
            i = end
            continue
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            line += text.count("\n", i, j)
            i = j + 1
            continue
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                i += len(m.group(0))
                continue
        elif c == "{":
            yield line, 1
        elif c == "}":
            yield line, -1
        i += 1


def split_lines(text):
    lines = text.splitlines()
    depth_changes = {}
    for line, delta in braces(text):
        depth_changes.setdefault(line, []).append(delta)
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
            for delta in depth_changes.get(i, []):
                depth += delta
                opened = True
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
