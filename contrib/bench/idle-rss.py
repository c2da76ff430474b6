#!/usr/bin/env python3
"""idle-rss.py — RSS per idle session over WebSocket (wss://, RFC 7395) or
direct TLS, measured the same way for both (doc/performance.md, "Idle
WebSocket sessions").

N accounts u0..u(N-1) with passwords pw0..pw(N-1) on localhost (make them
with `ternctl adduser-batch`) log in with SCRAM-SHA-1, bind, fetch their
roster, send presence and stay idle for 20 s; the script prints
(RSS with the sessions - RSS before) / N of the ternd process PID.

Usage: idle-rss.py ws|tls N PORT PID   (PORT: the https or c2s_tls listener)
Needs python3-websockets and tests/integration/harness.py (SCRAM).
"""
import asyncio
import base64
import os
import ssl
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/integration"))
from harness import ScramClient  # noqa: E402

MODE, N, PORT, PID = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
BIND = "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
ROSTER = "<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>"
PRESENCE = "<presence xmlns='jabber:client'/>"


def rss():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls_ctx = ssl.create_default_context()  # one for all: each holds the system's CAs
tls_ctx.check_hostname = False
tls_ctx.verify_mode = ssl.CERT_NONE
tls_ctx.set_alpn_protocols(["xmpp-client"])
keep = []


class WsConn:
    async def open(self):
        import websockets
        self.ws = await websockets.connect("wss://127.0.0.1:%d/xmpp-websocket" % PORT,
                                           subprotocols=["xmpp"], ssl=ctx, ping_interval=None,
                                           max_size=None)

    def send(self, s):
        return self.ws.send(s)

    async def element(self):
        return ET.fromstring(await self.ws.recv())

    async def start(self):
        await self.send(OPEN)
        await self.element()
        await self.element()


class TlsConn:
    async def open(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", PORT, ssl=tls_ctx)

    async def send(self, s):
        self.w.write(s.encode())

    async def element(self):
        while True:
            for ev, el in self.p.read_events():
                self.depth += 1 if ev == "start" else -1
                if ev == "end" and self.depth == 1:
                    return el
            data = await self.r.read(65536)
            if not data:
                raise EOFError
            self.p.feed(data)

    async def start(self):
        self.p = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        await self.send(HDR)
        await self.element()


async def one(i, sem):
    async with sem:
        c = WsConn() if MODE == "ws" else TlsConn()
        await c.open()
        await c.start()
        sc = ScramClient("u%d" % i, "pw%d" % i, "SCRAM-SHA-1")
        await c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" %
                     (NS_SASL, base64.b64encode(sc.client_first()).decode()))
        ch = await c.element()
        fin = sc.client_final(base64.b64decode(ch.text))
        await c.send("<response xmlns='%s'>%s</response>" % (NS_SASL, base64.b64encode(fin).decode()))
        ok = await c.element()
        assert ok.tag.endswith("success"), ok.tag
        await c.start()
        for s in (BIND, ROSTER):
            await c.send(s)
            await c.element()
        await c.send(PRESENCE)
        keep.append(c)


async def main():
    before = rss()
    t = time.time()
    sem = asyncio.Semaphore(50)
    await asyncio.gather(*[one(i, sem) for i in range(N)])
    await asyncio.sleep(20)
    after = rss()
    print("%s: %d sessions in %.1f s; RSS before %d KiB, with the sessions %d KiB, "
          "per session %.1f KiB" % (MODE, len(keep), time.time() - t, before, after,
                                    (after - before) / len(keep)))


asyncio.run(main())
