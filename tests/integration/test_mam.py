"""mod_mam: XEP-0313 Message Archive Management with XEP-0359 stanza-ids,
XEP-0059 paging, XEP-0441 preferences and retention.

- Messages between two users land in both archives; the recipient's copy
  carries <stanza-id by=recipient/> equal to the archive id, forged ones are
  removed.
- What is archived: bodies; not chat states alone, not <no-store/> or
  <no-permanent-store/>; <store/> forces; preferences decide per contact.
- Queries: RSM forward and backward, before-id/after-id, ids, flip-page,
  with/start/end, item-not-found, the form, metadata, others' archives.
- Retention (expire_after) and a 50 000 message archive paged quickly.
"""
import os
import secrets
import sqlite3
import time
import xml.etree.ElementTree as ET

import unittest

from harness import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, TERN_MODULES, Server, ServerError,
                     ServerTestCase, SlixClient, q, stanza_error)

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_SID = "urn:xmpp:sid:0"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_XDATA = "jabber:x:data"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

MAM_MODULES = {"modules": {"mam": {}}}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


def query_xml(form=None, rsm=None, flip=False, queryid=None):
    """<query xmlns='urn:xmpp:mam:2'> with a form ({var: value or [values]}),
    an RSM <set/> ({'max': n, 'after': id, 'before': id or ''}) and <flip-page/>."""
    parts = []
    if form:
        fields = ["<field var='FORM_TYPE' type='hidden'><value>%s</value></field>" % NS_MAM]
        for var, value in form.items():
            values = value if isinstance(value, list) else [value]
            fields.append("<field var='%s'>%s</field>" % (
                var, "".join("<value>%s</value>" % esc(v) for v in values)))
        parts.append("<x xmlns='%s' type='submit'>%s</x>" % (NS_XDATA, "".join(fields)))
    if rsm is not None:
        inner = ""
        for key in ("max", "after", "before", "index"):
            if key in rsm:
                inner += "<%s>%s</%s>" % (key, esc(str(rsm[key])), key)
        parts.append("<set xmlns='%s'>%s</set>" % (NS_RSM, inner))
    if flip:
        parts.append("<flip-page/>")
    qid = " queryid='%s'" % queryid if queryid else ""
    return "<query xmlns='%s'%s>%s</query>" % (NS_MAM, qid, "".join(parts))


class Result:
    """One query's answer: the iq, and the result messages before it."""

    def __init__(self, iq, messages, queryid):
        self.iq = iq
        self.error = stanza_error(iq) if iq.get("type") == "error" else None
        self.items = []  # (archive id, stamp, forwarded <message/>, result <message/>)
        for m in messages:
            res = m.find(q(NS_MAM, "result"))
            if res is None or res.get("queryid") != queryid:
                continue
            fwd = res.find(q(NS_FWD, "forwarded"))
            delay = fwd.find(q(NS_DELAY, "delay"))
            self.items.append((res.get("id"), delay.get("stamp"),
                               fwd.find(q(NS_CLIENT, "message")), m))
        fin = iq.find(q(NS_MAM, "fin"))
        self.fin = fin
        self.complete = fin.get("complete") if fin is not None else None
        s = fin.find(q(NS_RSM, "set")) if fin is not None else None
        first = s.find(q(NS_RSM, "first")) if s is not None else None
        last = s.find(q(NS_RSM, "last")) if s is not None else None
        count = s.find(q(NS_RSM, "count")) if s is not None else None
        self.first = first.text if first is not None else None
        index = first.get("index") if first is not None else None
        self.index = int(index) if index is not None else None
        self.last = last.text if last is not None else None
        self.count = int(count.text) if count is not None else None

    @property
    def ids(self):
        return [i[0] for i in self.items]

    @property
    def bodies(self):
        out = []
        for _, _, msg, _ in self.items:
            b = msg.find(q(NS_CLIENT, "body")) if msg is not None else None
            out.append(b.text if b is not None else None)
        return out


def mam(client, form=None, rsm=None, flip=False, timeout=8.0):
    """Query the client's own archive (SlixClient); a Result."""
    queryid = "q" + secrets.token_hex(4)
    mark = client.mark()
    iq = client.iq(query_xml(form, rsm, flip, queryid), to=None, itype="set", timeout=timeout)
    messages = [s.xml for s in client.received[mark:] if s.name == "message"]
    return Result(iq, messages, queryid)


def raw_mam(raw, form=None, rsm=None, flip=False, timeout=8.0):
    """The same over a RawClient; returns (Result, seconds to the iq result)."""
    queryid = "q" + secrets.token_hex(4)
    iq_id = "mam" + secrets.token_hex(4)
    started = time.monotonic()
    raw.send("<iq type='set' id='%s'>%s</iq>" % (iq_id, query_xml(form, rsm, flip, queryid)))
    messages = []
    while True:
        el = raw.read_element(timeout)
        if el.tag == q(NS_CLIENT, "iq") and el.get("id") == iq_id:
            elapsed = time.monotonic() - started
            return Result(el, messages, queryid), elapsed
        if el.tag == q(NS_CLIENT, "message"):
            messages.append(el)


def stanza_ids(stanza_xml):
    """[(by, id)] of the <stanza-id/> children of a received message."""
    return [(e.get("by"), e.get("id")) for e in stanza_xml.findall(q(NS_SID, "stanza-id"))]


def token():
    return secrets.token_hex(6)


class MamTests(ServerTestCase):
    server_kwargs = dict(
        users={u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "erin", "frank",
                                      "pager", "peer1", "peer2")},
        config=MAM_MODULES)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = SlixClient(cls.server, "alice", resource="laptop").connect()
        cls.bob = SlixClient(cls.server, "bob", resource="phone").connect()

    @classmethod
    def tearDownClass(cls):
        for c in (cls.alice, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def tearDown(self):
        super().tearDown()
        for c in (self.alice, self.bob):
            self.assertFalse(c.disconnected, "%s lost its connection" % c.jid)

    def ok(self, result):
        self.assertIsNone(result.error, ET.tostring(result.iq))
        self.assertEqual(result.iq.get("type"), "result")
        return result

    def exchange(self, sender, receiver, body, extra="", mtype="chat", to=None):
        """sender sends a message; returns it as the receiver got it."""
        mark = receiver.mark()
        sender.send_raw("<message to='%s' type='%s'><body>%s</body>%s</message>" %
                        (to or receiver.jid.split("/")[0], mtype, esc(body), extra))
        return receiver.wait_message(body, since=mark)

    # ---- archiving and stanza-ids ------------------------------------------

    def test_message_lands_in_both_archives_with_stanza_id(self):
        body = "both archives " + token()
        got = self.exchange(self.alice, self.bob, body)
        sids = stanza_ids(got.xml)
        self.assertEqual(len(sids), 1, ET.tostring(got.xml))
        by, sid = sids[0]
        self.assertEqual(by, "bob@localhost")
        self.assertGreaterEqual(len(sid), 16)

        # The recipient's archive holds it under the stanza-id.
        r = self.ok(mam(self.bob, form={"ids": sid}))
        self.assertEqual(r.ids, [sid])
        self.assertEqual(r.bodies, [body])
        fwd = r.items[0][2]
        self.assertEqual(fwd.get("from"), "alice@localhost/laptop")
        self.assertEqual(fwd.get("to"), "bob@localhost")
        self.assertEqual(fwd.findall(q(NS_SID, "stanza-id")), [],
                         "the archived copy is the message as it arrived")
        wrapper = r.items[0][3]
        self.assertEqual(wrapper.get("from"), "bob@localhost")
        self.assertEqual(wrapper.get("to"), "bob@localhost/phone")

        # The sender's archive has its own copy under another id.
        r = self.ok(mam(self.alice, form={"with": "bob@localhost"}, rsm={"max": 1, "before": ""}))
        self.assertEqual(r.bodies, [body])
        self.assertNotEqual(r.ids[0], sid)
        self.assertEqual(r.items[0][2].get("to"), "bob@localhost")

    def test_sender_gets_no_stanza_id_for_its_own_archive(self):
        """XEP-0313 §3.5: no stanza-id in messages to JIDs that cannot read
        the archive: bob's copy has bob's id only."""
        body = "only bob's id " + token()
        got = self.exchange(self.alice, self.bob, body)
        self.assertEqual([b for b, _ in stanza_ids(got.xml)], ["bob@localhost"])

    def test_forged_stanza_id_is_replaced(self):
        """XEP-0359 §4 rule 3: a stanza-id by the recipient from outside goes;
        others' stay."""
        body = "forged " + token()
        got = self.exchange(self.alice, self.bob, body,
                            extra="<stanza-id xmlns='%s' by='bob@localhost' id='fake'/>"
                                  "<stanza-id xmlns='%s' by='BOB@LOCALHOST' id='fake2'/>"
                                  "<stanza-id xmlns='%s' by='room@muc.example' id='keep'/>" %
                                  (NS_SID, NS_SID, NS_SID))
        sids = stanza_ids(got.xml)
        ours = [i for b, i in sids if b.lower() == "bob@localhost"]
        self.assertEqual(len(ours), 1, sids)
        self.assertNotIn(ours[0], ("fake", "fake2"))
        self.assertIn(("room@muc.example", "keep"), sids)
        r = self.ok(mam(self.bob, form={"ids": ours[0]}))
        self.assertEqual(r.bodies, [body])

    def test_forged_stanza_id_removed_from_unarchived_message(self):
        mark = self.bob.mark()
        self.alice.send_raw("<message to='bob@localhost' type='chat'>"
                            "<composing xmlns='%s'/><stanza-id xmlns='%s' by='bob@localhost' "
                            "id='fake'/></message>" % (NS_CHATSTATES, NS_SID))
        got = self.bob.wait_stanza(lambda s: s.name == "message" and
                                   s.xml.find(q(NS_CHATSTATES, "composing")) is not None,
                                   since=mark)
        self.assertEqual(stanza_ids(got.xml), [])

    def test_chat_state_alone_is_not_archived(self):
        before_b = self.ok(mam(self.bob, rsm={"max": 0})).count
        before_a = self.ok(mam(self.alice, rsm={"max": 0})).count
        mark = self.bob.mark()
        self.alice.send_raw("<message to='bob@localhost' type='chat'><active xmlns='%s'/>"
                            "</message>" % NS_CHATSTATES)
        got = self.bob.wait_stanza(lambda s: s.name == "message" and
                                   s.xml.find(q(NS_CHATSTATES, "active")) is not None,
                                   since=mark)
        self.assertEqual(stanza_ids(got.xml), [])
        self.assertEqual(self.ok(mam(self.bob, rsm={"max": 0})).count, before_b)
        self.assertEqual(self.ok(mam(self.alice, rsm={"max": 0})).count, before_a)

    def test_no_store_hints_are_not_archived(self):
        for hint in ("no-store", "no-permanent-store"):
            with self.subTest(hint=hint):
                before_b = self.ok(mam(self.bob, rsm={"max": 0})).count
                before_a = self.ok(mam(self.alice, rsm={"max": 0})).count
                body = hint + " " + token()
                got = self.exchange(self.alice, self.bob, body,
                                    extra="<%s xmlns='%s'/>" % (hint, NS_HINTS))
                self.assertEqual(stanza_ids(got.xml), [])
                self.assertEqual(self.ok(mam(self.bob, rsm={"max": 0})).count, before_b)
                self.assertEqual(self.ok(mam(self.alice, rsm={"max": 0})).count, before_a)

    def test_store_hint_archives_a_message_without_body(self):
        mark = self.bob.mark()
        tag = token()
        self.alice.send_raw("<message to='bob@localhost' type='chat' id='%s'>"
                            "<gone xmlns='%s'/><store xmlns='%s'/></message>" %
                            (tag, NS_CHATSTATES, NS_HINTS))
        got = self.bob.wait_stanza(lambda s: s.name == "message" and s["id"] == tag, since=mark)
        sids = stanza_ids(got.xml)
        self.assertEqual(len(sids), 1)
        r = self.ok(mam(self.bob, form={"ids": sids[0][1]}))
        self.assertEqual(r.items[0][2].get("id"), tag)

    def test_headline_and_error_messages_are_not_archived(self):
        before_b = self.ok(mam(self.bob, rsm={"max": 0})).count
        body = "headline " + token()
        got = self.exchange(self.alice, self.bob, body, mtype="headline")
        self.assertEqual(stanza_ids(got.xml), [])
        mark = self.bob.mark()
        self.alice.send_raw("<message to='bob@localhost/phone' type='error'><body>e %s</body>"
                            "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:"
                            "ns:xmpp-stanzas'/></error></message>" % token())
        self.bob.wait_stanza(lambda s: s.name == "message" and s["type"] == "error", since=mark)
        self.assertEqual(self.ok(mam(self.bob, rsm={"max": 0})).count, before_b)

    def test_message_to_oneself_is_archived_once(self):
        before = self.ok(mam(self.alice, rsm={"max": 0})).count
        body = "note to self " + token()
        mark = self.alice.mark()
        self.alice.send_raw("<message to='alice@localhost/laptop' type='chat'><body>%s</body>"
                            "</message>" % body)
        got = self.alice.wait_message(body, since=mark)
        self.assertEqual([b for b, _ in stanza_ids(got.xml)], ["alice@localhost"])
        r = self.ok(mam(self.alice, form={"with": "alice@localhost"},
                        rsm={"max": 5, "before": ""}))
        self.assertEqual(r.bodies.count(body), 1)
        self.assertEqual(self.ok(mam(self.alice, rsm={"max": 0})).count, before + 1)

    def test_offline_message_is_archived_for_the_recipient(self):
        body = "while you were away " + token()
        self.alice.send_message("carol@localhost", body)
        self.alice.sync()
        carol = self.slix("carol", resource="later")
        r = self.ok(mam(carol, form={"with": "alice@localhost"}, rsm={"before": ""}))
        self.assertIn(body, r.bodies)

    # ---- paging ------------------------------------------------------------

    @classmethod
    def pager_archive(cls, test):
        """pager's archive: 12 messages to peer1/peer2 alternately (cached)."""
        if getattr(cls, "_pager", None) is None:
            pager = test.slix("pager", resource="p")
            p1 = test.slix("peer1", resource="x")
            bodies = []
            for i in range(12):
                body = "page %02d" % i
                mark = p1.mark()
                if i % 2 == 0:
                    pager.send_message("peer1@localhost", body)
                    p1.wait_message(body, since=mark)
                else:
                    pager.send_message("peer2@localhost", body)
                bodies.append(body)
            pager.sync()
            r = test.ok(mam(pager, rsm={"max": 100}))
            test.assertEqual(r.bodies, bodies)
            test.assertEqual(r.complete, "true")
            cls._pager = (r.ids, bodies, [i[1] for i in r.items])
        return cls._pager

    def pager(self):
        return self.slix("pager", resource="q" + token())

    def test_rsm_forward_paging(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        got, after, pages = [], None, []
        while True:
            rsm = {"max": 5}
            if after:
                rsm["after"] = after
            r = self.ok(mam(c, rsm=rsm))
            pages.append((len(r.items), r.complete, r.index, r.count))
            got += r.bodies
            self.assertEqual(r.first, r.ids[0])
            self.assertEqual(r.last, r.ids[-1])
            if r.complete == "true":
                break
            after = r.last
            self.assertLess(len(pages), 5)
        self.assertEqual(got, bodies)
        self.assertEqual(pages, [(5, "false", 0, 12), (5, "false", 5, 12), (2, "true", 10, 12)])

    def test_rsm_backward_paging_from_the_last_page(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        r = self.ok(mam(c, rsm={"max": 5, "before": ""}))
        self.assertEqual(r.bodies, bodies[7:12])
        self.assertEqual((r.complete, r.index, r.count), ("false", 7, 12))
        self.assertEqual((r.first, r.last), (ids[7], ids[11]))
        r = self.ok(mam(c, rsm={"max": 5, "before": r.first}))
        self.assertEqual(r.bodies, bodies[2:7])
        self.assertEqual((r.complete, r.index), ("false", 2))
        r = self.ok(mam(c, rsm={"max": 5, "before": r.first}))
        self.assertEqual(r.bodies, bodies[0:2])
        self.assertEqual((r.complete, r.index), ("true", 0))

    def test_default_page_applies_without_max(self):
        ids, bodies, _ = self.pager_archive(self)
        r = self.ok(mam(self.pager()))
        self.assertEqual(r.bodies, bodies)  # 12 < default_page 50
        self.assertEqual(r.complete, "true")

    def test_max_zero_returns_only_the_count(self):
        self.pager_archive(self)
        r = self.ok(mam(self.pager(), rsm={"max": 0}))
        self.assertEqual((r.items, r.count, r.first, r.last), ([], 12, None, None))

    def test_after_id_and_before_id(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        r = self.ok(mam(c, form={"after-id": ids[3], "before-id": ids[8]}))
        self.assertEqual(r.bodies, bodies[4:8])
        self.assertEqual((r.count, r.index, r.complete), (4, 0, "true"))
        # before-id does not page backwards (XEP-0313 §9): the first of the range.
        r = self.ok(mam(c, form={"before-id": ids[8]}, rsm={"max": 3}))
        self.assertEqual(r.bodies, bodies[0:3])
        self.assertEqual((r.count, r.complete), (8, "false"))
        # RSM within the range: the last page of it, then the tighter bound wins.
        r = self.ok(mam(c, form={"after-id": ids[3]}, rsm={"max": 2, "before": ""}))
        self.assertEqual(r.bodies, bodies[10:12])
        self.assertEqual((r.count, r.index), (8, 6))
        r = self.ok(mam(c, form={"after-id": ids[5]}, rsm={"max": 3, "after": ids[1]}))
        self.assertEqual(r.bodies, bodies[6:9])

    def test_ids_fetches_single_items(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        r = self.ok(mam(c, form={"ids": [ids[9], ids[2], ids[9]]}))
        self.assertEqual(r.bodies, [bodies[2], bodies[9]])
        self.assertEqual(r.count, 2)
        r = self.ok(mam(c, form={"ids": [ids[1], ids[2], ids[4]], "with": "peer2@localhost"}))
        self.assertEqual(r.bodies, [bodies[1]])

    def test_flip_page(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        r = self.ok(mam(c, rsm={"max": 5, "before": ""}, flip=True))
        self.assertEqual(r.bodies, list(reversed(bodies[7:12])))
        self.assertEqual((r.first, r.last), (ids[7], ids[11]))
        self.assertEqual(r.complete, "false")
        r = self.ok(mam(c, rsm={"max": 3, "after": ids[0]}, flip=True))
        self.assertEqual(r.bodies, [bodies[3], bodies[2], bodies[1]])

    def test_with_filter(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        r = self.ok(mam(c, form={"with": "peer2@localhost"}))
        self.assertEqual(r.bodies, bodies[1::2])
        self.assertEqual(r.count, 6)
        r = self.ok(mam(c, form={"with": "peer1@localhost"}, rsm={"max": 2, "before": ""}))
        self.assertEqual(r.bodies, bodies[8:12:2])
        self.assertEqual((r.count, r.index), (6, 4))
        # A full JID matches the other party's exact address (§4.1.1).
        r = self.ok(mam(c, form={"with": "peer1@localhost/x"}))
        self.assertEqual(r.count, 0)
        r = self.ok(mam(c, form={"with": "nobody@localhost"}))
        self.assertEqual((r.items, r.count, r.complete), ([], 0, "true"))

    def test_with_full_jid_of_an_incoming_sender(self):
        body = "full with " + token()
        self.exchange(self.alice, self.bob, body)
        r = self.ok(mam(self.bob, form={"with": "alice@localhost/laptop"},
                        rsm={"max": 1, "before": ""}))
        self.assertEqual(r.bodies, [body])
        r = self.ok(mam(self.bob, form={"with": "alice@localhost/elsewhere"}))
        self.assertNotIn(body, r.bodies)

    def test_start_end_filter(self):
        ids, bodies, stamps = self.pager_archive(self)
        c = self.pager()
        start, end = stamps[3], stamps[6]
        want = [b for b, s in zip(bodies, stamps) if start <= s <= end]
        self.assertIn(bodies[3], want)
        self.assertIn(bodies[6], want)
        r = self.ok(mam(c, form={"start": start, "end": end}))
        self.assertEqual(r.bodies, want)
        r = self.ok(mam(c, form={"start": stamps[10]}))
        self.assertEqual(r.bodies, [b for b, s in zip(bodies, stamps) if s >= stamps[10]])
        r = self.ok(mam(c, form={"end": "2000-01-01T00:00:00Z"}))
        self.assertEqual(r.count, 0)
        r = self.ok(mam(c, form={"start": "2000-01-01T01:00:00+01:00"}))
        self.assertEqual(r.count, 12)

    def test_unknown_ids_are_item_not_found(self):
        self.pager_archive(self)
        c = self.pager()
        for kw in (dict(form={"after-id": "nope"}), dict(form={"before-id": "nope"}),
                   dict(form={"ids": ["nope"]}), dict(rsm={"after": "nope"}),
                   dict(rsm={"before": "nope"})):
            with self.subTest(**{k: str(v) for k, v in kw.items()}):
                mark = c.mark()
                r = mam(c, **kw)
                self.assertEqual(r.error, ("cancel", "item-not-found"))
                self.assertEqual(r.items, [])
                self.assertEqual([s for s in c.received[mark:] if s.name == "message"], [])

    def test_bad_queries(self):
        c = self.bob
        r = mam(c, form={"{urn:example}free-text": "x"})
        self.assertEqual(r.error, ("cancel", "feature-not-implemented"))
        r = mam(c, form={"start": "yesterday"})
        self.assertEqual(r.error[1], "bad-request")
        r = mam(c, rsm={"max": "many"})
        self.assertEqual(r.error[1], "bad-request")
        r = mam(c, rsm={"index": 3})
        self.assertEqual(r.error[1], "feature-not-implemented")

    def test_max_page_caps_the_page(self):
        """max above the cap (max_page 250 by default) is lowered, never an error."""
        ids, bodies, _ = self.pager_archive(self)
        r = self.ok(mam(self.pager(), rsm={"max": 100000}))
        self.assertEqual(r.bodies, bodies)

    # ---- form, metadata, access, disco --------------------------------------

    def test_form_lists_the_fields(self):
        answer = self.bob.iq("<query xmlns='%s'/>" % NS_MAM, to=None, itype="get")
        self.assertEqual(answer.get("type"), "result")
        x = answer.find("%s/%s" % (q(NS_MAM, "query"), q(NS_XDATA, "x")))
        self.assertEqual(x.get("type"), "form")
        fields = {f.get("var"): f.get("type") for f in x.findall(q(NS_XDATA, "field"))}
        self.assertEqual(fields, {"FORM_TYPE": "hidden", "with": "jid-single",
                                  "start": "text-single", "end": "text-single",
                                  "before-id": "text-single", "after-id": "text-single",
                                  "ids": "list-multi"})

    def test_metadata(self):
        ids, _, stamps = self.pager_archive(self)
        answer = self.pager().iq("<metadata xmlns='%s'/>" % NS_MAM, to=None, itype="get")
        md = answer.find(q(NS_MAM, "metadata"))
        self.assertEqual((md.find(q(NS_MAM, "start")).get("id"),
                          md.find(q(NS_MAM, "end")).get("id")), (ids[0], ids[-1]))
        self.assertEqual(md.find(q(NS_MAM, "start")).get("timestamp"), stamps[0])
        frank = self.slix("frank")
        answer = frank.iq("<metadata xmlns='%s'/>" % NS_MAM, to=None, itype="get")
        self.assertEqual(list(answer.find(q(NS_MAM, "metadata"))), [])

    def test_query_to_own_bare_jid(self):
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        answer = c.iq(query_xml(rsm={"max": 0}), to="pager@localhost", itype="set")
        count = answer.find("%s/%s/%s" % (q(NS_MAM, "fin"), q(NS_RSM, "set"), q(NS_RSM, "count")))
        self.assertEqual(count.text, "12")

    def test_domain_disco_advertises_mam(self):
        """Clients such as profanity look for MAM on the server's domain only."""
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        self.assertEqual(answer.get("type"), "result")
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        self.assertIn(NS_MAM, features)

    def test_query_to_the_domain_reads_own_archive(self):
        """A query sent to the domain is one of the user's own archive."""
        ids, bodies, _ = self.pager_archive(self)
        c = self.pager()
        queryid = "d" + token()
        mark = c.mark()
        answer = c.iq(query_xml(rsm={"max": 100}, queryid=queryid), to=DOMAIN, itype="set")
        r = self.ok(Result(answer, [s.xml for s in c.received[mark:] if s.name == "message"],
                           queryid))
        self.assertEqual(r.ids, ids)
        self.assertEqual(r.bodies, bodies)
        answer = c.iq("<metadata xmlns='%s'/>" % NS_MAM, to=DOMAIN, itype="get")
        md = answer.find(q(NS_MAM, "metadata"))
        self.assertEqual(md.find(q(NS_MAM, "end")).get("id"), ids[-1])
        # Another user asking the domain gets their own archive, not pager's.
        frank = self.slix("frank")
        answer = frank.iq(query_xml(rsm={"max": 0}), to=DOMAIN, itype="set")
        count = answer.find("%s/%s/%s" % (q(NS_MAM, "fin"), q(NS_RSM, "set"), q(NS_RSM, "count")))
        self.assertEqual(count.text, "0")

    def test_someone_elses_archive_is_forbidden(self):
        answer = self.alice.iq(query_xml(), to="bob@localhost", itype="set")
        self.assertEqual(stanza_error(answer), ("cancel", "forbidden"))
        answer = self.alice.iq("<prefs xmlns='%s'/>" % NS_MAM, to="bob@localhost", itype="get")
        self.assertEqual(stanza_error(answer), ("cancel", "forbidden"))
        answer = self.alice.iq(query_xml(), to="ghost@localhost", itype="set")
        self.assertEqual(stanza_error(answer), ("cancel", "service-unavailable"))

    def test_account_disco_advertises_mam(self):
        """XEP-0313 §7: on the user's bare JID (needs mod_disco to fill in
        the account features modules register)."""
        answer = self.alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost")
        self.assertEqual(answer.get("type"), "result")
        features = {f.get("var") for f in answer.iter(q(NS_DISCO_INFO, "feature"))}
        for ns in (NS_MAM, NS_MAM + "#extended", NS_SID):
            self.assertIn(ns, features)

    # ---- preferences --------------------------------------------------------

    def prefs(self, client, xml=None):
        if xml is None:
            answer = client.iq("<prefs xmlns='%s'/>" % NS_MAM, to=None, itype="get")
        else:
            answer = client.iq(xml, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        p = answer.find(q(NS_MAM, "prefs"))
        lists = {}
        for name in ("always", "never"):
            el = p.find(q(NS_MAM, name))
            self.assertIsNotNone(el, "<%s/> missing" % name)
            lists[name] = [j.text for j in el.findall(q(NS_MAM, "jid"))]
        return p.get("default"), lists["always"], lists["never"]

    def test_prefs_default_and_round_trip(self):
        erin = self.slix("erin")
        self.assertEqual(self.prefs(erin), ("always", [], []))
        got = self.prefs(erin, "<prefs xmlns='%s' default='roster'><always><jid>Alice@LocalHost"
                               "</jid><jid>x@example.com/res</jid></always><never><jid>bob@"
                               "localhost</jid><jid>x@example.com/res</jid></never></prefs>" %
                         NS_MAM)
        self.assertEqual(got, ("roster", ["alice@localhost"],
                               ["bob@localhost", "x@example.com/res"]))
        self.assertEqual(self.prefs(erin), got)
        answer = erin.iq("<prefs xmlns='%s' default='sometimes'/>" % NS_MAM, to=None,
                         itype="set")
        self.assertEqual(stanza_error(answer), ("modify", "bad-request"))
        answer = erin.iq("<prefs xmlns='%s' default='never'><always><jid>a@@b</jid></always>"
                         "</prefs>" % NS_MAM, to=None, itype="set")
        self.assertEqual(stanza_error(answer)[1], "jid-malformed")
        self.assertEqual(self.prefs(erin), got)

    def test_prefs_never_and_always(self):
        dave = self.slix("dave", resource="d")
        try:
            self.prefs(dave, "<prefs xmlns='%s' default='always'><always/><never><jid>"
                             "alice@localhost</jid></never></prefs>" % NS_MAM)
            body = "never archived " + token()
            got = self.exchange(self.alice, dave, body)
            self.assertEqual(stanza_ids(got.xml), [])
            body2 = "archived " + token()
            got = self.exchange(self.bob, dave, body2)
            self.assertEqual(len(stanza_ids(got.xml)), 1)
            r = self.ok(mam(dave))
            self.assertNotIn(body, r.bodies)
            self.assertIn(body2, r.bodies)
            # Outgoing: the 'to' decides.
            body3 = "to alice, not archived " + token()
            self.exchange(dave, self.alice, body3)
            self.assertNotIn(body3, self.ok(mam(dave)).bodies)
            self.assertIn(body3, self.ok(mam(self.alice, rsm={"max": 3, "before": ""})).bodies)

            self.prefs(dave, "<prefs xmlns='%s' default='never'><always><jid>alice@localhost"
                             "</jid></always><never/></prefs>" % NS_MAM)
            body4 = "from alice, archived " + token()
            got = self.exchange(self.alice, dave, body4)
            self.assertEqual(len(stanza_ids(got.xml)), 1)
            body5 = "from bob, not archived " + token()
            got = self.exchange(self.bob, dave, body5)
            self.assertEqual(stanza_ids(got.xml), [])
            bodies = self.ok(mam(dave)).bodies
            self.assertIn(body4, bodies)
            self.assertNotIn(body5, bodies)
        finally:
            self.prefs(dave, "<prefs xmlns='%s' default='always'/>" % NS_MAM)


@unittest.skipUnless(os.path.exists(os.path.join(TERN_MODULES, "mod_roster.so")),
                     "mod_roster is not built")
class MamRosterPolicyTests(ServerTestCase):
    """default='roster' (XEP-0441 §2.1.1) asks mod_roster's service."""

    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"},
                         config={"modules": {"mam": {}, "roster": {}}})

    def test_roster_default_archives_contacts_only(self):
        alice = self.slix("alice", resource="a")
        bob = self.slix("bob", resource="b")
        carol = self.slix("carol", resource="c")
        answer = alice.iq("<query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query>",
                          to=None, itype="set")
        self.assertEqual(answer.get("type"), "result", ET.tostring(answer))
        answer = alice.iq("<prefs xmlns='%s' default='roster'/>" % NS_MAM, to=None, itype="set")
        self.assertEqual(answer.find(q(NS_MAM, "prefs")).get("default"), "roster")
        bodies = {}
        for sender in (bob, carol):
            body = "from %s %s" % (sender.user, token())
            mark = alice.mark()
            sender.send_message("alice@localhost", body)
            got = alice.wait_message(body, since=mark)
            bodies[sender.user] = (body, stanza_ids(got.xml))
        self.assertEqual(len(bodies["bob"][1]), 1)
        self.assertEqual(bodies["carol"][1], [])
        self.assertEqual(mam(alice).bodies, [bodies["bob"][0]])
        # The contacts' own archives follow their own (default) preferences.
        self.assertEqual(mam(carol).bodies, [bodies["carol"][0]])


class MamOptionTests(ServerTestCase):
    """default_policy, default_page and max_page."""

    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"mam": {"default_policy": "never",
                                                     "default_page": 2, "max_page": 3}}})

    def test_default_policy_never_and_page_sizes(self):
        alice = self.slix("alice", resource="a")
        bob = self.slix("bob", resource="b")
        answer = bob.iq("<prefs xmlns='%s'/>" % NS_MAM, to=None, itype="get")
        self.assertEqual(answer.find(q(NS_MAM, "prefs")).get("default"), "never")
        body = "unarchived " + token()
        mark = bob.mark()
        alice.send_message("bob@localhost", body)
        self.assertEqual(stanza_ids(bob.wait_message(body, since=mark).xml), [])
        self.assertEqual((mam(bob).count, mam(alice).count), (0, 0))

        answer = bob.iq("<prefs xmlns='%s' default='always'/>" % NS_MAM, to=None, itype="set")
        self.assertEqual(answer.get("type"), "result")
        bodies = []
        for i in range(4):
            bodies.append("kept %d %s" % (i, token()))
            mark = bob.mark()
            alice.send_message("bob@localhost", bodies[-1])
            self.assertEqual(len(stanza_ids(bob.wait_message(bodies[-1], since=mark).xml)), 1)
        r = mam(bob)
        self.assertEqual((r.bodies, r.complete, r.count), (bodies[:2], "false", 4))
        r = mam(bob, rsm={"max": 100, "after": r.last})
        self.assertEqual((r.bodies, r.complete), (bodies[2:], "true"))
        r = mam(bob, rsm={"max": 100})
        self.assertEqual((r.bodies, r.complete), (bodies[:3], "false"))
        self.assertEqual(mam(alice).count, 0, "alice's own default is still never")


class MamBadOptionTests(unittest.TestCase):
    def test_bad_options_refuse_to_start(self):
        for options, word in (({"default_policy": "sometimes"}, "default_policy"),
                              ({"default_page": 300}, "default_page"),
                              ({"max_page": 0}, "max_page")):
            with self.subTest(options=options):
                server = Server(name="MamBadOption", config={"modules": {"mam": options}})
                try:
                    with self.assertRaises(ServerError):
                        server.start()
                    self.assertIn(word, server.log_text())
                finally:
                    server.stop(check=False)
                    server.remove()


class MamRetentionTests(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"mam": {"expire_after": "2s",
                                                     "expire_interval": "300ms"}}})

    def test_old_messages_expire(self):
        alice = self.slix("alice", resource="a")
        bob = self.slix("bob", resource="b")
        body = "short-lived " + token()
        mark = bob.mark()
        alice.send_message("bob@localhost", body)
        bob.wait_message(body, since=mark)
        self.assertEqual(mam(bob).bodies, [body])
        self.assertEqual(mam(alice).bodies, [body])
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and mam(bob).count:
            time.sleep(0.2)
        self.assertEqual(mam(bob).count, 0)
        self.assertEqual(mam(alice).count, 0)
        # New messages are archived as before.
        body2 = "fresh " + token()
        mark = bob.mark()
        alice.send_message("bob@localhost", body2)
        bob.wait_message(body2, since=mark)
        self.assertEqual(mam(bob).bodies, [body2])


class MamCountLimitTests(ServerTestCase):
    """max_count: result sets bigger than it get no RSM <count/> and no
    'index' (XEP-0059 §2.2 allows leaving them out when costly), so that
    no query reads a whole archive to count it."""
    server_kwargs = dict(users={"alice": "alice-pw", "bob": "bob-pw"},
                         config={"modules": {"mam": {"max_count": 5}}})

    def test_big_result_sets_are_not_counted(self):
        alice = self.raw_login("alice", "a")
        for i in range(8):
            alice.send("<message to='bob@%s' type='chat'><body>c%d</body></message>" % (DOMAIN, i))
        self.assertEqual(alice.ping(), "result")
        r, _ = raw_mam(alice, rsm={"max": 2, "before": ""})
        self.assertEqual(r.bodies, ["c6", "c7"])
        self.assertEqual((r.count, r.index, r.complete), (None, None, "false"))
        # A result set within max_count is counted as before.
        r2, _ = raw_mam(alice, form={"after-id": r.first}, rsm={"max": 2})
        self.assertEqual(r2.bodies, ["c7"])
        self.assertEqual((r2.count, r2.index), (1, 0))
        r3, _ = raw_mam(alice, form={"before-id": r.first}, rsm={"max": 2, "before": ""})
        self.assertEqual(r3.bodies, ["c4", "c5"])
        self.assertEqual((r3.count, r3.index), (None, 4))  # 6 items: not counted; 4 before
        r4, _ = raw_mam(alice, rsm={"max": 2})
        self.assertEqual(r4.bodies, ["c0", "c1"])
        self.assertEqual((r4.count, r4.index), (None, 0))


class MamExpiryBatchTests(ServerTestCase):
    """Expiry of a big backlog runs in batches: the sessions stay served."""
    N = 60000
    server_kwargs = dict(users={"alice": "alice-pw"},
                         config={"modules": {"mam": {"expire_after": "1d",
                                                     "expire_interval": "1s"}}})

    def archived(self, db, old):
        cut = int((time.time() - 86400) * 1e6)
        return db.execute("SELECT count(*) FROM archive WHERE store = 'archive' AND user = 'old'"
                          " AND when_us %s ?" % ("<" if old else ">="), (cut,)).fetchone()[0]

    def test_a_big_expiry_does_not_stall_the_server(self):
        alice = self.raw_login("alice", "a")
        db = sqlite3.connect(os.path.join(self.server.dir, "tern.db"), timeout=30)
        try:
            now = int(time.time() * 1e6)
            start = db.execute("SELECT ifnull(max(rid), 0) FROM archive").fetchone()[0] + 1
            rows = []
            for i in range(self.N + 3):
                when = now - 2 * 86400 * 10**6 + i if i < self.N else now + i
                xml = ("<message xmlns='jabber:client' from='carol@localhost/r' "
                       "to='old@localhost' type='chat'><body>o%d</body></message>" % i)
                rows.append((start + i, start + i, DOMAIN, "archive", "old", "o%d" % i, when,
                             "carol@localhost", xml.encode()))
            db.executemany("INSERT INTO archive (rid, seq, host, store, user, id, when_us, "
                           "with_jid, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.commit()
            worst = 0.0
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                for _ in range(10):
                    t0 = time.monotonic()
                    self.assertEqual(alice.ping(), "result")
                    worst = max(worst, time.monotonic() - t0)
                if self.archived(db, old=True) == 0:
                    break
            self.assertEqual(self.archived(db, old=True), 0, "old messages left")
            self.assertEqual(self.archived(db, old=False), 3, "recent messages went too")
        finally:
            db.close()
        self.assertLess(worst, 0.2, "a ping took %.0f ms during the expiry" % (worst * 1000))


class MamLargeArchiveTests(ServerTestCase):
    """An archive of 50 000 messages, written straight into the database
    before the server starts, pages quickly: the store is indexed."""

    N = 50000
    LIMIT = 0.3  # seconds per query, under ASan
    server_kwargs = dict(users={"big": "big-pw"}, config=MAM_MODULES)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.stop()
        db = sqlite3.connect(os.path.join(cls.server.dir, "tern.db"))
        try:
            base = int(time.time() * 1e6) - cls.N * 1000 - 10 * 1000000
            start = db.execute("SELECT ifnull(max(rid), 0) FROM archive").fetchone()[0]
            rows = []
            for i in range(cls.N):
                peer = "carol@localhost" if i % 2 == 0 else "dave@localhost"
                xml = ("<message xmlns='jabber:client' from='%s/r' to='big@localhost' "
                       "type='chat'><body>m%05d</body></message>" % (peer, i))
                rid = start + 1 + i
                rows.append((rid, rid, DOMAIN, "archive", "big", "p%05d" % i,
                             base + i * 1000, peer, xml.encode()))
            db.executemany("INSERT INTO archive (rid, seq, host, store, user, id, when_us, "
                           "with_jid, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.commit()
        finally:
            db.close()
        cls.server._launch()

    def timed(self, raw, **kw):
        r, elapsed = raw_mam(raw, **kw)
        self.assertIsNone(r.error, ET.tostring(r.iq))
        self.assertLess(elapsed, self.LIMIT, "query took %.3fs" % elapsed)
        return r

    def test_pages_of_a_large_archive(self):
        raw = self.raw_login("big", "r")
        raw.nothing_more(0.3)  # our own presence and the like
        r = self.timed(raw, rsm={"max": 50, "before": ""})
        self.assertEqual(r.bodies, ["m%05d" % i for i in range(self.N - 50, self.N)])
        self.assertEqual((r.count, r.index, r.complete), (self.N, self.N - 50, "false"))

        r = self.timed(raw, rsm={"max": 50, "after": "p25000"})
        self.assertEqual(r.bodies, ["m%05d" % i for i in range(25001, 25051)])
        self.assertEqual((r.count, r.index), (self.N, 25001))

        r = self.timed(raw, form={"after-id": "p10000"}, rsm={"max": 50})
        self.assertEqual(r.bodies, ["m%05d" % i for i in range(10001, 10051)])
        self.assertEqual((r.count, r.index), (self.N - 10001, 0))

        r = self.timed(raw, form={"with": "dave@localhost"}, rsm={"max": 50, "before": ""})
        self.assertEqual(r.bodies, ["m%05d" % i for i in range(self.N - 99, self.N, 2)])
        self.assertEqual((r.count, r.index), (self.N // 2, self.N // 2 - 50))

        r = self.timed(raw, form={"with": "carol@localhost"},
                       rsm={"max": 50, "before": "p30000"}, flip=True)
        self.assertEqual(r.bodies, ["m%05d" % i for i in range(29998, 29898, -2)])

        r = self.timed(raw, form={"ids": ["p00007", "p49999"]})
        self.assertEqual(r.bodies, ["m00007", "m49999"])
        raw.end()
