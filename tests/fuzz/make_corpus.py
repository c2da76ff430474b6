#!/usr/bin/env python3
"""tests/fuzz/make_corpus.py — write the seed corpora under corpus/<target>/.

Seeds are small and plain (a few dozen per target); the fuzzer grows and
mutates them.  Run again after editing; file names are content hashes."""
import base64
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for s in seeds:
        if isinstance(s, str):
            s = s.encode()
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)


STREAM_HEADER = ("<stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>")
stanzas = [
    "<message to='a@b/c' type='chat' id='1'><body>hi</body></message>",
    "<message><body>1 &lt; 2 &amp; 3 &#x263A; &#65;</body></message>",
    "<message><body><![CDATA[<raw> & stuff]]></body></message>",
    "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
    "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r"
    "</resource></bind></iq>",
    "<presence><show>away</show><status xml:lang='en'>out</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<x:data xmlns:x='urn:x' x:flag='yes' plain=\"dq'uote\"><x:item>one</x:item>t</x:data>",
    "<a xmlns:p='urn:p'><p:b p:c='1'><d xmlns='urn:d'/></p:b></a>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>\n"
    "<?xml version='1.0'?>" + STREAM_HEADER + "<iq/>",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + STREAM_HEADER + "<presence/>",
    "<park/> <message><body>after</body></message>",
    "<a/> \n\t <b/>\r\n<c/>",
    "<a><b><c><d><e><f/></e></d></c></b></a>",
    "<m a='1' b='2' c='3' d='4' e='5' f='6' g='7' h='8'/>",
    "<message><body>" + "x" * 200 + "</body></message>",
    "<message id='" + "v" * 200 + "'/>",
    "<" + "n" * 120 + "/>",
    "</stream:stream>",
    "<message><body>\xc3\xa9\xe2\x98\xba</body></message>",
    "<a>&undefined;</a>",
    "<!-- comment --><a/>",
    "<?pi data?><a/>",
    "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
    "<a b='1' b='2'/>",
    "<a></b>",
    "text between stanzas",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
    "<message xmlns='jabber:server'><body>s</body></message>",
    "<a xml:lang='en' xmlns:xml='http://www.w3.org/XML/1998/namespace'/>",
    "<a\n  b = \"x\"\n/>",
]
write("fuzz_xml_stream", [bytes([i % 256, (i * 37) % 256]) + s.encode("utf-8", "surrogateescape")
                          for i, s in enumerate(stanzas)])

# fuzz_xml_tree: op, node, then for strings two length bytes and up to 16 content bytes.
tree = []
for i in range(30):
    prog = b""
    for k in range(1 + i % 6):
        op = (i + k * 3) % 9 | (16 if (i + k) % 2 else 0)
        prog += bytes([op, k]) + bytes([0, (i * 7 + k) % 64 + 1]) + b"abcdefgh"[:((i + k) % 8)]
    tree.append(prog)
write("fuzz_xml_tree", tree)

jids = ["user@example.com", "user@example.com/res", "example.com", "example.com/r/s@t",
        "User@Example.COM/Res", "juliet@example.com/balcony", "\u00e9l\u00e8ve@\u00e9cole.fr",
        "user@[::1]", "user@192.0.2.1/r", "user@xn--caf-dma.example", "a@b@c", "@example.com",
        "user@/res", "user@example.com/", "user@example.com.", "u\u0000x@e", "u ser@example.com",
        "\u2163@example.com", "user@exa_mple.com", "user@" + "d" * 70 + ".com",
        "\u03a3@example.com/\u03c3", "user@example.com/\u2126", "x@[2001:db8::1]/r",
        "user@caf\u00e9.example/\U0001F600", "\"user\"@example.com", "user&amp;@example.com",
        "user@-bad.example", "user@example..com", "user@.example", "\u0130@example.com",
        "\u1e9e@example.com"]
write("fuzz_jid", [j.encode("utf-8") for j in jids])

proof = base64.b64encode(b"\x01" * 32).decode()
proof1 = base64.b64encode(b"\x01" * 20).decode()
scram = []
for sel, first, final in [
        (0x10, "n,,n=user,r=abc", "c=biws,r=abcSRV,p=" + proof),
        (0x00, "n,,n=user,r=abc", "c=biws,r=abcSRV,p=" + proof1),
        (0x10, "y,,n=user,r=abc", "c=eSws,r=abcSRV,p=" + proof),
        (0x51, "p=tls-exporter,,n=user,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLAECAw==,r=abcSRV,p=" + proof),
        (0x52, "p=tls-server-end-point,,n=user,r=abc", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQID,"
         "r=abcSRV,p=" + proof),
        (0x10, "n,a=admin,n=user,r=abc", "c=bixhPWFkbWluLA==,r=abcSRV,p=" + proof),
        (0x10, "n,,n=us=2Cer=3D,r=abc", "c=biws,r=abcSRV,p=" + proof),
        (0x10, "n,,n=nobody,r=xyz", "c=biws,r=xyzSRV,p=" + proof),
        (0x10, "n,,m=ext,n=user,r=abc", ""),
        (0x10, "n,,n=user,r=abc,ext=1", "c=biws,r=abcSRV,ext=2,p=" + proof),
        (0x10, "n,,n=user,r=abc", "c=biws,r=wrong,p=" + proof),
        (0x10, "n,,n=user,r=abc", "c=biws,r=abcSRV,p=!!!"),
        (0x10, "n,,n=user,r=abc", "c=biws,r=abcSRV"),
        (0x10, "", ""), (0x10, "n,,", ""), (0x10, "n,,n=,r=", ""), (0x10, "x,,n=u,r=a", ""),
        (0x14, "y,,n=user,r=abc", ""), (0x18, "n,,n=user,r=abc", "c=biws,r=abcSRV,p=" + proof),
        (0x10, "n,,n=\u00e9l\u00e8ve,r=abc", ""), (0x20, "n,,n=user,r=abc", "c=biws,r=abcSRV,p=" +
                                                   base64.b64encode(b"\x02" * 64).decode())]:
    scram.append(bytes([sel]) + (first + ("\n--\n" + final if final else "")).encode("utf-8"))
write("fuzz_scram", scram)

example = open(os.path.join(HERE, "..", "..", "conf", "tern.yml.example")).read()
# the sample without comments, and small pieces of it
plain = "\n".join(l for l in example.splitlines() if l.strip() and not l.lstrip().startswith("#"))
configs = [plain]
for block in re.split(r"\n(?=\S)", plain):
    configs.append(block + "\n")
configs += [
    "hosts:\n  example.com: {}\n",
    "hosts:\n  example.com:\n    modules:\n      ping: {}\n",
    "limits:\n  max_stanza_size: 64K\n  handshake_timeout: 1.5s\n",
    "listeners:\n  - type: c2s\n    address: '::'\n    port: 5222\n",
    "a: &x 1\nb: *x\n", "a: 1\na: 2\n", "[1, 2, 3]\n", "", "~\n", "n: 5\non: yes\nsize: 1M\n"
    "wait: 500ms\nname: x\nlist: [a, b]\n", "list: one\n", "n: 99999999999999999999\n",
    "size: 1.5G\n", "wait: -1s\n", "key: \"\\u00e9\\x00\"\n", "? complex\n: value\n",
    "components:\n  c.example.com:\n    secret: s\n",
    "admins: [admin@example.com]\nhosts: {example.com: {}}\n",
    "tls:\n  certificate: /nonexistent.crt\n  key: /nonexistent.key\n",
]
write("fuzz_config", configs[:40])
