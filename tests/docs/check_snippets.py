#!/usr/bin/env python3
"""Checks that the C++ shown in the docs is the C++ the test suite compiles.

    check_snippets.py --root DIR [--compiled FILE...]   the check (test docs.snippets)
    check_snippets.py --root DIR --update               rewrites shown blocks from the files
    check_snippets.py --self-test                       the check against broken trees

Every fenced block in the repository's Markdown files (README.md, docs/, everywhere outside
build trees and node_modules) needs a language. A C++ block (cpp, c++, cxx, cc, c, h, hpp) must
be preceded, as the last non-blank line before its fence, by

    <!-- snippet: docs/snippets/NAME.cpp -->          the file's unnamed region
    <!-- snippet: docs/snippets/NAME.cpp#REGION -->   a named region

and its text must equal that region. A region is the lines between `// [docs:begin]` and
`// [docs:end]` (or `// [docs:begin REGION]` / `// [docs:end REGION]`), with their common
indentation removed; marker lines of other regions inside it are left out. The check also
fails when a snippet file or region is shown nowhere, when a marker precedes no C++ block, and
(with --compiled) when a snippet file is not compiled by tests/docs/CMakeLists.txt.
"""

import argparse
import difflib
import os
import re
import sys
import tempfile

SNIPPET_DIR = "docs/snippets"
SNIPPET_EXTS = (".cpp", ".hpp")
CPP_LANGS = {"cpp", "c++", "cxx", "cc", "c", "h", "hpp"}
SKIP_DIRS = {".git", "node_modules"}
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(\S+?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
REGION = re.compile(r"^\s*//\s*\[docs:(begin|end)(?:\s+([\w.-]+))?\]\s*$")


def markdown_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in SKIP_DIRS and not (rel == "." and d.startswith("build")))
        for name in sorted(filenames):
            if name.endswith(".md"):
                yield os.path.join(dirpath, name)


def fenced_blocks(lines):
    """Yields (open line index, close line index, indent, language, body) per fenced block."""
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        # A backtick fence's info string has no backtick (CommonMark): "```` ```cpp ````" in a
        # paragraph is inline code, not a fence.
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        start = i
        body = []
        i += 1
        while i < len(lines):
            c = FENCE.match(lines[i])
            if c and c.group(2)[0] == fence[0] and len(c.group(2)) >= len(fence) \
                    and not c.group(3).strip():
                break
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        yield start, i, indent, info.split()[0].lower() if info else "", body
        i += 1


def regions_of(path, label):
    """{region name ('' for unnamed): [lines]}; raises ValueError on unbalanced markers."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    open_at, done = {}, {}
    for n, line in enumerate(lines):
        m = REGION.match(line)
        if not m:
            continue
        kind, name = m.group(1), m.group(2) or ""
        if kind == "begin":
            if name in open_at or name in done:
                raise ValueError(f"{label}:{n + 1}: region '{name}' begins twice")
            open_at[name] = n
        else:
            if name not in open_at:
                raise ValueError(f"{label}:{n + 1}: region '{name}' ends without a begin")
            begin = open_at.pop(name)
            done[name] = [l for l in lines[begin + 1:n] if not REGION.match(l)]
    if open_at:
        name, n = next(iter(open_at.items()))
        raise ValueError(f"{label}:{n + 1}: region '{name}' never ends")
    return {name: dedent(body) for name, body in done.items()}


def dedent(lines):
    lines = trim_blank(lines)
    widths = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    cut = min(widths) if widths else 0
    return [l[cut:].rstrip() for l in lines]


def trim_blank(lines):
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def check(root, compiled, update=False):
    errors = []
    root = os.path.abspath(root)
    snippet_dir = os.path.join(root, SNIPPET_DIR)
    snippet_files = sorted(
        os.path.join(SNIPPET_DIR, n) for n in os.listdir(snippet_dir)
        if n.endswith(SNIPPET_EXTS)) if os.path.isdir(snippet_dir) else []
    regions = {}
    for rel in snippet_files:
        try:
            regions[rel] = regions_of(os.path.join(root, rel), rel)
            if not regions[rel]:
                errors.append(f"{rel}: no // [docs:begin] ... // [docs:end] region")
        except ValueError as e:
            errors.append(str(e))
            regions[rel] = {}
    shown = set()
    blocks = 0

    for md in markdown_files(root):
        rel_md = os.path.relpath(md, root)
        with open(md, encoding="utf-8") as f:
            lines = f.read().split("\n")
        fences = {}
        inside = set()  # lines within fenced blocks: their content is not looked at
        for start, end, indent, lang, body in fenced_blocks(lines):
            fences[start] = (end, indent, lang, body)
            inside.update(range(start + 1, end))
        consumed = set()
        rewrites = []
        for start, (end, indent, lang, body) in fences.items():
            where = f"{rel_md}:{start + 1}"
            prev = start - 1
            while prev >= 0 and not lines[prev].strip():
                prev -= 1
            marker = MARKER.match(lines[prev]) if prev >= 0 else None
            if marker:
                consumed.add(prev)
            if not lang:
                errors.append(f"{where}: a fenced block without a language (```cpp, ```sh ...)")
                continue
            if lang not in CPP_LANGS:
                if marker:
                    errors.append(f"{where}: a snippet marker before a ```{lang} block")
                continue
            blocks += 1
            if not marker:
                errors.append(
                    f"{where}: a C++ block without '<!-- snippet: {SNIPPET_DIR}/NAME.cpp -->' "
                    "before it: put the code in a compiled snippet file (docs/build.md, "
                    "'Code in the docs'), or make it prose if it is not C++")
                continue
            ref = marker.group(1)
            path, _, region = ref.partition("#")
            if path not in regions:
                errors.append(f"{where}: '{ref}': no such snippet file under {SNIPPET_DIR}/")
                continue
            if region not in regions[path]:
                errors.append(f"{where}: '{ref}': {path} has no region "
                              f"'{region or '(unnamed)'}'")
                continue
            shown.add((path, region))
            want = regions[path][region]
            have = [l.rstrip() for l in trim_blank(body)]
            if have != want and update:
                rewrites.append((start + 1, end, [indent + l if l else "" for l in want]))
                print(f"docs.snippets: {where}: updated from {ref}")
            elif have != want:
                diff = "\n".join(difflib.unified_diff(
                    want, have, f"{ref} (compiled)", f"{where} (shown)", lineterm=""))
                errors.append(f"{where}: the block differs from {ref}:\n{diff}")
        for n, line in enumerate(lines):
            if MARKER.match(line) and n not in consumed and n not in inside:
                errors.append(f"{rel_md}:{n + 1}: a snippet marker that precedes no block")
        if rewrites:
            for first, end, new in reversed(rewrites):
                lines[first:end] = new
            with open(md, "w", encoding="utf-8") as f:
                f.write("\n".join(lines))

    for path in snippet_files:
        for region in regions[path]:
            if (path, region) not in shown:
                label = f"{path}#{region}" if region else path
                errors.append(f"{label}: shown in no Markdown file (remove it, or show it)")
    if compiled is not None:
        built = {os.path.relpath(os.path.abspath(p), root) for p in compiled}
        for path in snippet_files:
            if path not in built:
                errors.append(f"{path}: not compiled: add it to tests/docs/CMakeLists.txt")

    for e in errors:
        print(f"docs.snippets: {e}", file=sys.stderr)
    if errors:
        print(f"docs.snippets: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"docs.snippets: ok ({blocks} C++ blocks, {len(snippet_files)} snippet files)")
    return 0


GOOD_SNIPPET = """// about this file
// [docs:begin]
#include <cstdio>
int main() {
    // [docs:begin inner]
    std::puts("hi");
    // [docs:end inner]
}
// [docs:end]
"""
GOOD_MD = """# t

<!-- snippet: docs/snippets/a.cpp -->
```cpp
#include <cstdio>
int main() {
    std::puts("hi");
}
```

- item

  <!-- snippet: docs/snippets/a.cpp#inner -->

  ```cpp
  std::puts("hi");
  ```

```sh
echo hi
```

A ```` ```cpp ```` block in prose, and a marker shown as text:

````text
<!-- snippet: docs/snippets/a.cpp -->
```cpp
```
````
"""


def self_test():
    """Runs the check on a good tree and on broken copies of it: each must fail."""
    cases = {
        "good": (GOOD_SNIPPET, GOOD_MD, None, 0),
        "changed line": (GOOD_SNIPPET, GOOD_MD.replace('"hi");\n}', '"ho");\n}'), None, 1),
        "changed indentation": (GOOD_SNIPPET, GOOD_MD.replace('    std::puts("hi");\n}',
                                                              '  std::puts("hi");\n}'), None, 1),
        "changed snippet": (GOOD_SNIPPET.replace('"hi");\n    //', '"hi"); // new\n    //'),
                            GOOD_MD, None, 1),
        "missing marker": (GOOD_SNIPPET, GOOD_MD.replace(
            "<!-- snippet: docs/snippets/a.cpp -->\n", ""), None, 1),
        "unknown region": (GOOD_SNIPPET, GOOD_MD.replace("#inner", "#outer"), None, 1),
        "unknown file": (GOOD_SNIPPET, GOOD_MD.replace("a.cpp -->", "b.cpp -->"), None, 1),
        "region shown nowhere": (GOOD_SNIPPET.replace("inner", "other"), GOOD_MD, None, 1),
        "unbalanced region": (GOOD_SNIPPET.replace("// [docs:end]\n", ""), GOOD_MD, None, 1),
        "fence without language": (GOOD_SNIPPET, GOOD_MD.replace("```sh", "```"), None, 1),
        "marker before shell": (GOOD_SNIPPET, GOOD_MD.replace(
            "```sh", "<!-- snippet: docs/snippets/a.cpp -->\n```sh"), None, 1),
        "dangling marker": (GOOD_SNIPPET, GOOD_MD + "\n<!-- snippet: docs/snippets/a.cpp -->\n",
                            None, 1),
        "not compiled": (GOOD_SNIPPET, GOOD_MD, [], 1),
        "compiled": (GOOD_SNIPPET, GOOD_MD, ["docs/snippets/a.cpp"], 0),
    }
    failed = 0
    for name, (snippet, md, compiled, want) in cases.items():
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, SNIPPET_DIR))
            with open(os.path.join(root, SNIPPET_DIR, "a.cpp"), "w", encoding="utf-8") as f:
                f.write(snippet)
            with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
                f.write(md)
            paths = None if compiled is None else [os.path.join(root, p) for p in compiled]
            got = check(root, paths)
        ok = got == want
        failed += not ok
        print(f"self-test {'ok' if ok else 'FAILED'}: {name} (exit {got}, want {want})")
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, SNIPPET_DIR))
        with open(os.path.join(root, SNIPPET_DIR, "a.cpp"), "w", encoding="utf-8") as f:
            f.write(GOOD_SNIPPET.replace('"hi"', '"ho"'))
        with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
            f.write(GOOD_MD)
        got = (check(root, None, update=True), check(root, None))
        with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
            updated = f.read()
    ok = got == (0, 0) and updated == GOOD_MD.replace('"hi"', '"ho"')
    failed += not ok
    print(f"self-test {'ok' if ok else 'FAILED'}: --update rewrites both blocks")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="the repository root")
    ap.add_argument("--compiled", nargs="*", help="the snippet files the build compiles")
    ap.add_argument("--update", action="store_true",
                    help="rewrite differing blocks from their snippet regions")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.root:
        ap.error("--root is required")
    return check(args.root, args.compiled, args.update)


if __name__ == "__main__":
    sys.exit(main())
