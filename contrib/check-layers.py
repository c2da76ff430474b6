#!/usr/bin/env python3
"""check-layers.py — includes in src/ go one way: down (or sideways).

Reads every src/**/*.[ch], finds each `#include "folder/file.h"` and fails,
naming the file, line and include, when it reaches a higher layer than the
including file's own.  Includes within one layer are fine; <system> and
<tern/...> headers (the public module API) are not checked.  A higher
layer reaches a lower one by calling it; a lower layer reaches a higher
one only through function pointers the higher one sets (ops tables,
callbacks registered at start-up).

Usage: contrib/check-layers.py [TOP]   (TOP: the source tree, default ..)
       contrib/check-layers.py --self-test  (the checker on a made-up tree)
Exit status: 0 when every include goes down or sideways, 1 otherwise.
"""
import os
import re
import sys

# Folder under src/ -> layer, bottom (0) to top.  Keep doc/hacking.md in step.
LAYERS = {
    "util": 0,     # log, hash maps, SipHash, base64, string lists, worker pool
    "config": 0,   # YAML reader, option tables, the config record
    "xml": 1,      # expat stream parser, stanza trees, serializer
    "tls": 1,      # OpenSSL contexts and record I/O
    "net": 2,      # byte transport: socket, TLS, output queue, rate limits
    "http": 3,     # HTTP/1.1 server on the transport: requests, limits, paths
    "xmpp": 3,     # framing (stream header, restart, close) + jid, stanza, scram
    "store": 4,    # storage API, SQLite backend, accounts
    "route": 5,    # hosts and hooks, sessions, router, domain registry
    "stream": 6,   # stream roles: c2s (features, SASL, bind), component
    "core": 7,     # config loading, module loader, module API, server, admin
    "ternctl": 8,  # the admin tool (links everything)
}

# Includes allowed to go upward anyway: (including file, included header)
# -> reason.  Keep it empty; an entry here is debt to pay back.
EXCEPTIONS = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_0-9]+)/([A-Za-z_0-9.]+)"')


def layer_of(folder):
    if folder not in LAYERS:
        return None
    return LAYERS[folder]


def check(top):
    src = os.path.join(top, "src")
    problems = []
    checked = 0
    for root, _dirs, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, top)
            folder = os.path.relpath(root, src).split(os.sep)[0]
            mine = layer_of(folder)
            if mine is None:
                problems.append("%s: folder src/%s is not in the LAYERS table" % (rel, folder))
                continue
            checked += 1
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    header = "%s/%s" % (target, m.group(2))
                    theirs = layer_of(target)
                    if theirs is None:
                        problems.append("%s:%d: includes \"%s\": folder src/%s is not in the "
                                        "LAYERS table" % (rel, lineno, header, target))
                    elif theirs > mine and (rel, header) not in EXCEPTIONS:
                        problems.append("%s:%d: includes \"%s\" upward (%s is layer %d, %s is "
                                        "layer %d)" % (rel, lineno, header, folder, mine,
                                                       target, theirs))
    return checked, problems


def self_test():
    """The checker must name an upward include and let the others pass."""
    import tempfile
    files = {
        "src/util/a.c": '#include "util/a.h"\n#include "core/server.h"\n',
        "src/route/b.c": '#include "route/host.h"\n#include "xmpp/stanza.h"\n'
                         '#include <tern/module.h>\n',
        "src/core/c.c": '#include "route/router.h"\n#include "util/log.h"\n',
    }
    with tempfile.TemporaryDirectory() as top:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(top, rel)), exist_ok=True)
            with open(os.path.join(top, rel), "w") as f:
                f.write(text)
        checked, problems = check(top)
    ok = checked == 3 and len(problems) == 1 and problems[0].startswith(
        "src/util/a.c:2: includes \"core/server.h\" upward")
    print("layers self-test: %s" % ("ok" if ok else "FAILED %r" % problems))
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    checked, problems = check(top)
    for p in problems:
        print(p)
    for (rel, header), why in sorted(EXCEPTIONS.items()):
        print("exception: %s includes %s: %s" % (rel, header, why))
    if problems:
        print("layers: %d upward include(s) in %d files" % (len(problems), checked))
        return 1
    print("layers: ok (%d files)" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
