#!/usr/bin/python3
"""Write the module option tables in doc/ from the modules' own tables.

Each table in doc/modules.md and doc/modules/*.md follows a marker line
    <!-- options: NAME -->
and is replaced by what `ternd --options-doc MODULE_DIR NAME` prints, so
the documented names, types, ranges and defaults are those the server
enforces.  With --check nothing is written: the script lists the tables
that differ and exits 1 (contrib/test.sh runs it that way).

Usage: contrib/module-docs.py [--check] TERND MODULE_DIR
"""
import difflib
import glob
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"^<!-- options: ([a-z0-9_]+) -->$")


def generated(ternd, module_dir, name):
    """The Markdown table of module NAME, as lines."""
    out = subprocess.run([ternd, "--options-doc", module_dir, name], check=True,
                         capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if not l.startswith("## ")]


def rewrite(lines, ternd, module_dir):
    """`lines` with every marked table replaced; also the names seen."""
    out, names, i = [], [], 0
    while i < len(lines):
        out.append(lines[i])
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        names.append(m.group(1))
        while i < len(lines) and lines[i].startswith("|"):
            i += 1
        out.extend(generated(ternd, module_dir, m.group(1)))
    return out, names


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    ternd, module_dir = args
    stale = 0
    files = [os.path.join(TOP, "doc", "modules.md")]
    files += sorted(glob.glob(os.path.join(TOP, "doc", "modules", "*.md")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            old = f.read().splitlines()
        new, names = rewrite(old, ternd, module_dir)
        if new == old:
            continue
        stale += 1
        rel = os.path.relpath(path, TOP)
        if check:
            sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(
                old, new, rel, rel + " (generated)", lineterm=""))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(new) + "\n")
            print("updated %s (%s)" % (rel, ", ".join(names)))
    if check and stale:
        print("%d file(s) in doc/ do not match the modules' option tables; "
              "run contrib/module-docs.py TERND MODULE_DIR" % stale)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
