#!/usr/bin/env python3
"""Checks the claim of docs/core.md, "Compiler pitfalls": no public coroutine takes a default
argument of class type (g++ 12 destroys such an argument twice).

    check_coroutine_defaults.py --root DIR     the check (test docs.coroutine_defaults)
    check_coroutine_defaults.py --self-test

Looks at every declaration in <layer>/include/**/*.hpp whose return type is a `task<...>` and
reports each parameter with a default other than a number, true, false or nullptr. A plain
function that returns a task made by another coroutine (an overload supplying the default)
takes no default itself, so it passes; constructors and other plain functions are not looked at.
"""

import argparse
import glob
import os
import re
import sys

SCALAR_DEFAULT = re.compile(r"^(-?[0-9][0-9a-zA-Z'.]*|true|false|nullptr)$")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def closing(text, i, open_ch, close_ch):
    """Index just past the bracket closing the one opened before `i`."""
    depth = 1
    while i < len(text) and depth:
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
        i += 1
    return i


def split_top(params):
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def offenders(text):
    text = strip_comments(text)
    for m in re.finditer(r"\btask<", text):
        after = closing(text, m.end(), "<", ">")
        name = re.match(r"\s*([A-Za-z_~][\w:]*)\s*\(", text[after:])
        if not name:
            continue
        start = after + name.end()
        params = text[start:closing(text, start, "(", ")") - 1]
        for p in split_top(params):
            if "=" not in p:
                continue
            default = p.split("=", 1)[1].strip()
            if not SCALAR_DEFAULT.match(default):
                line = text.count("\n", 0, m.start()) + 1
                yield line, name.group(1), " ".join(p.split())


def check(root):
    found = 0
    headers = sorted(glob.glob(os.path.join(root, "*", "include", "**", "*.hpp"), recursive=True))
    for header in headers:
        rel = os.path.relpath(header, root)
        with open(header, encoding="utf-8") as f:
            for line, name, param in offenders(f.read()):
                found += 1
                print(f"{rel}:{line}: coroutine {name} defaults `{param}`: offer an overload "
                      "instead (docs/core.md, 'Compiler pitfalls')", file=sys.stderr)
    if found:
        return 1
    print(f"docs.coroutine_defaults: ok ({len(headers)} public headers)")
    return 0


def self_test():
    cases = {
        "task<void> f(int a, opts o = {});": 1,
        "core::task<result<int>> g(std::string s = \"x\");": 1,
        "task<void> h(int a, int family = 0, bool b = true, void* p = nullptr);": 0,
        "task<void> h(opts o); // task<void> h(opts o = {}) in a comment": 0,
        "task<void> k(tcp_listener& l, Handler h) { return k(l, std::move(h), opts{}); }": 0,
        "static std::unique_ptr<x> client(ctx c, tls_session resume = {});": 0,
        "task<std::pair<int, int>> m(std::map<int, int> x = std::map<int, int>());": 1,
    }
    failed = 0
    for code, want in cases.items():
        got = len(list(offenders(code)))
        ok = got == want
        failed += not ok
        print(f"self-test {'ok' if ok else 'FAILED'}: {code} ({got} found, want {want})")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.root:
        ap.error("--root is required")
    return check(args.root)


if __name__ == "__main__":
    sys.exit(main())
