#!/usr/bin/python3
"""contrib/bench/provision.py — accounts for Prosody and ejabberd in the
comparison run (contrib/bench/compare.sh).

Owns the fast way to create N benchmark accounts on the two peers, where
their own tools start a Lua or Erlang runtime per account.  For every
account it derives SCRAM-SHA-1 credentials once (random salt per account,
PBKDF2 with the given iteration count, spread over the CPUs with
multiprocessing) and writes them

  --prosody-data DIR   as Prosody 0.12 internal storage account files,
                       DIR/<host>/accounts/<user>.dat (what
                       mod_auth_internal_hashed writes: hex stored and
                       server keys, the salt as text, the iteration count);
  --ejabberd-terms F   as Erlang terms {User, Host, {scram, StoredKeyB64,
                       ServerKeyB64, SaltB64, sha, Iterations}}, one per
                       line, which compare.sh hands to ejabberd_auth:
                       try_register/3 inside the running ejabberd (the
                       #scram record of ejabberd 23.01, base64 fields).

With --roster-users N --roster-k K (and --roster-first F) it also writes
the rosters of the presence scenario: users F .. F+N-1 in circles of K+1
(by their position, as tern-bench cuts them), everyone a contact of
everyone else in the circle with subscription "both" — as Prosody roster
files (DIR/<host>/roster/<user>.dat, with --prosody-rosters) and, with --ejabberd-roster F, as
#roster{} records for mod_roster:set_roster/1, one list per user a line.
Building such rosters over XMPP costs the peers minutes of CPU per circle
of 101 (measured: Prosody 92 s, ejabberd 278 s), more than the whole run
may take.

The password is never written anywhere.  Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import multiprocessing
import os
import sys
import time
import uuid


def derive(job):
    """(user, password, iterations) -> (user, salt, stored_key, server_key)."""
    user, password, iterations = job
    # Prosody uses a UUID as its salt; ejabberd 16 random bytes.  A UUID in
    # text suits both (the salt is opaque bytes to SCRAM).
    salt = str(uuid.uuid4()).encode()
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
    stored_key = hashlib.sha1(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
    return user, salt, stored_key, server_key


def prosody_encode(s):
    """Prosody's datamanager file-name encoding: non-alphanumerics as %xx."""
    return "".join(c if c.isascii() and c.isalnum() else "".join(
        "%%%02x" % b for b in c.encode()) for c in s)


def lua_string(b):
    """A Lua string literal for bytes b (printable ASCII kept, rest escaped)."""
    out = []
    for byte in b:
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append("\\%03d" % byte)
    return '"' + "".join(out) + '"'


def erl_binary(b):
    """An Erlang binary literal for ASCII bytes b (base64 or a user name)."""
    s = b.decode("ascii")
    if '"' in s or "\\" in s:
        raise ValueError("cannot quote %r" % s)
    return '<<"' + s + '">>'


def circles(first, n, k):
    """(user number, [contact numbers]) for users first..first+n-1."""
    g = k + 1
    for i in range(n):
        start = i // g * g
        members = range(start, min(n, start + g))
        yield first + i, [first + j for j in members if j != i]


def write_rosters(a):
    first = a.first_user if a.roster_first is None else a.roster_first
    if a.roster_k < 1:
        sys.exit("provision.py: --roster-k must be at least 1")
    if first < a.first_user or first + a.roster_users > a.first_user + a.users:
        sys.exit("provision.py: the roster users must be among the accounts")
    host = a.domain
    prosody = a.prosody_data and a.prosody_rosters
    if prosody:
        rosters = os.path.join(a.prosody_data, prosody_encode(host), "roster")
        os.makedirs(rosters, exist_ok=True)
    ej = open(a.ejabberd_roster, "w") if a.ejabberd_roster else None
    eh = erl_binary(host.encode())
    for user_n, contacts in circles(first, a.roster_users, a.roster_k):
        user = a.user_format % user_n
        names = [a.user_format % c for c in contacts]
        if prosody:
            items = "".join("\t[%s] = { [\"subscription\"] = \"both\"; [\"groups\"] = {}; };\n"
                            % lua_string(("%s@%s" % (c, host)).encode()) for c in names)
            with open(os.path.join(rosters, prosody_encode(user) + ".dat"), "w") as f:
                f.write("return {\n\t[false] = { [\"version\"] = 1; [\"pending\"] = {}; };\n"
                        + items + "};\n")
        if ej:
            eu = erl_binary(user.encode())
            recs = ", ".join(
                "{roster, {%s, %s, {%s, %s, <<>>}}, {%s, %s}, {%s, %s, <<>>}, <<>>, both, none, "
                "[], <<>>, []}" % (eu, eh, erl_binary(c.encode()), eh, eu, eh,
                                  erl_binary(c.encode()), eh) for c in names)
            ej.write("[%s].\n" % recs)
    if ej:
        ej.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domain", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--first-user", type=int, default=1)
    ap.add_argument("--user-format", default="u%d")
    ap.add_argument("--password", required=True)
    ap.add_argument("--iterations", type=int, default=4096)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--prosody-data", help="Prosody data_path to write accounts into")
    ap.add_argument("--ejabberd-terms", help="file of Erlang terms for ejabberd")
    ap.add_argument("--roster-first", type=int, default=None,
                    help="number of the first user with a roster (default: --first-user)")
    ap.add_argument("--roster-users", type=int, default=0)
    ap.add_argument("--roster-k", type=int, default=0, help="contacts per user")
    ap.add_argument("--ejabberd-roster", help="file of #roster{} lists for ejabberd")
    ap.add_argument("--prosody-rosters", action="store_true",
                    help="write the rosters into --prosody-data too")
    a = ap.parse_args()
    if a.users < 1 or a.iterations < 1 or a.jobs < 1:
        ap.error("--users, --iterations and --jobs must be positive")
    if not a.prosody_data and not a.ejabberd_terms:
        ap.error("nothing to write: give --prosody-data and/or --ejabberd-terms")

    t0 = time.monotonic()
    users = [a.user_format % (a.first_user + i) for i in range(a.users)]
    jobs = [(u, a.password, a.iterations) for u in users]
    if a.jobs == 1:
        creds = [derive(j) for j in jobs]
    else:
        with multiprocessing.Pool(a.jobs) as pool:
            creds = pool.map(derive, jobs, chunksize=256)
    t_derive = time.monotonic() - t0

    if a.prosody_data:
        accounts = os.path.join(a.prosody_data, prosody_encode(a.domain), "accounts")
        os.makedirs(accounts, exist_ok=True)
        for user, salt, stored, server in creds:
            path = os.path.join(accounts, prosody_encode(user) + ".dat")
            with open(path, "w") as f:
                f.write("return {\n"
                        "\t[\"iteration_count\"] = %d;\n"
                        "\t[\"salt\"] = %s;\n"
                        "\t[\"server_key\"] = \"%s\";\n"
                        "\t[\"stored_key\"] = \"%s\";\n"
                        "};\n" % (a.iterations, lua_string(salt), server.hex(), stored.hex()))

    if a.ejabberd_terms:
        host = erl_binary(a.domain.encode())
        with open(a.ejabberd_terms, "w") as f:
            for user, salt, stored, server in creds:
                f.write("{%s, %s, {scram, %s, %s, %s, sha, %d}}.\n" % (
                    erl_binary(user.encode()), host,
                    erl_binary(base64.b64encode(stored)), erl_binary(base64.b64encode(server)),
                    erl_binary(base64.b64encode(salt)), a.iterations))

    if a.roster_users > 0:
        write_rosters(a)

    print("provision.py: %d accounts (SCRAM-SHA-1, %d iterations) derived in %.1f s, "
          "written in %.1f s" % (a.users, a.iterations, t_derive, time.monotonic() - t0 - t_derive),
          file=sys.stderr)


if __name__ == "__main__":
    main()
