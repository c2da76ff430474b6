"""Conversation payloads pass through untouched, and are archived (mod_mam),
stored offline (mod_offline) and copied (mod_carbons) as the XEPs say.

alice is online twice, laptop (priority 5) and phone (priority 1), both
with carbons on; bob once (desk); olive only logs in at the end of the
offline test.  Each test sends one batch of messages, one per case below,
then a plain chat message as an end marker, and checks every client got
exactly what it should (the originals with the same attributes and child
elements, the carbon copies, the offline bounces), nothing more; then
what each side's archive holds, and nothing more.

| case                                   | carbon | MAM | offline     |
|----------------------------------------|--------|-----|-------------|
| XEP-0184 request with a body           | yes    | yes | stored      |
| XEP-0184 <received/> (chat or normal)  | yes    | yes | stored      |
| XEP-0333 <markable/> with a body       | yes    | yes | stored      |
| XEP-0333 <displayed/>, <acknowledged/> | yes    | yes | stored      |
| XEP-0085 state alone (chat or normal)  | yes    | no  | dropped     |
| XEP-0085 <active/> with a body         | yes    | yes | stored      |
| XEP-0308 correction                    | yes    | yes | stored      |
| <no-store/> with a body or a marker    | yes    | no  | bounced     |
| <no-store/> on a chat state            | yes    | no  | dropped     |
| <no-permanent-store/>                  | yes    | no  | stored      |
| <store/> on a chat state               | yes    | yes | stored      |
| <store/> + <no-permanent-store/>       | yes    | no  | stored      |
| <no-copy/>                             | no     | yes | stored      |
| type error, even with <store/>         | no     | no  | dropped     |

"dropped" means not stored and no error to the sender; "bounced" means
not stored and a service-unavailable error to the sender.
"""
import secrets
import time
import xml.etree.ElementTree as ET

from harness import NS_CLIENT, T_SHORT, ServerTestCase, SlixClient, q, stanza_error

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_XDATA = "jabber:x:data"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

USERS = {u: u + "-pw" for u in ("alice", "bob", "olive")}


def hint(name):
    return "<%s xmlns='%s'/>" % (name, NS_HINTS)


# (name, type or None, payload with {body} and {ref}, carbon copied, archived, offline)
CASES = [
    ("receipt-request", "chat", "<body>{body}</body><request xmlns='%s'/>" % NS_RECEIPTS,
     True, True, "stored"),
    ("receipt", "chat", "<received xmlns='%s' id='{ref}'/>" % NS_RECEIPTS,
     True, True, "stored"),
    ("receipt-normal", None, "<received xmlns='%s' id='{ref}'/>" % NS_RECEIPTS,
     True, True, "stored"),
    ("markable", "chat", "<body>{body}</body><markable xmlns='%s'/>" % NS_MARKERS,
     True, True, "stored"),
    ("displayed", "chat", "<displayed xmlns='%s' id='{ref}'/>" % NS_MARKERS,
     True, True, "stored"),
    ("acknowledged-normal", None,
     "<thread>th1</thread><acknowledged xmlns='%s' id='{ref}'/>" % NS_MARKERS,
     True, True, "stored"),
    ("composing", "chat", "<composing xmlns='%s'/>" % NS_CHATSTATES, True, False, "dropped"),
    ("paused-thread", "chat", "<thread>th1</thread><paused xmlns='%s'/>" % NS_CHATSTATES,
     True, False, "dropped"),
    ("composing-normal", None, "<composing xmlns='%s'/>" % NS_CHATSTATES,
     True, False, "dropped"),
    ("active-with-body", "chat", "<body>{body}</body><active xmlns='%s'/>" % NS_CHATSTATES,
     True, True, "stored"),
    ("correction", "chat",
     "<body>{body}</body><replace xmlns='%s' id='{ref}'/><active xmlns='%s'/>"
     % (NS_CORRECT, NS_CHATSTATES), True, True, "stored"),
    ("correction-normal", None, "<body>{body}</body><replace xmlns='%s' id='{ref}'/>"
     % NS_CORRECT, True, True, "stored"),
    # XEP-0334 hints
    ("no-store", "chat", "<body>{body}</body>" + hint("no-store"), True, False, "bounced"),
    ("displayed-no-store", "chat",
     "<displayed xmlns='%s' id='{ref}'/>" % NS_MARKERS + hint("no-store"),
     True, False, "bounced"),
    ("composing-no-store", "chat", "<composing xmlns='%s'/>" % NS_CHATSTATES + hint("no-store"),
     True, False, "dropped"),
    ("no-permanent-store", "chat", "<body>{body}</body>" + hint("no-permanent-store"),
     True, False, "stored"),
    ("receipt-no-permanent-store", "chat",
     "<received xmlns='%s' id='{ref}'/>" % NS_RECEIPTS + hint("no-permanent-store"),
     True, False, "stored"),
    ("composing-store", "chat", "<composing xmlns='%s'/>" % NS_CHATSTATES + hint("store"),
     True, True, "stored"),
    ("store-and-no-permanent-store", "chat",
     "<body>{body}</body>" + hint("store") + hint("no-permanent-store"),
     True, False, "stored"),
    ("no-copy", "chat", "<body>{body}</body>" + hint("no-copy"), False, True, "stored"),
    ("receipt-no-copy", "chat",
     "<received xmlns='%s' id='{ref}'/>" % NS_RECEIPTS + hint("no-copy"),
     False, True, "stored"),
    ("error-store", "error",
     "<body>{body}</body><error type='cancel'><item-not-found xmlns='%s'/></error>"
     % NS_STANZAS + hint("store"), False, False, "dropped"),
]


def shape(el):
    """An element as comparable data: name, attributes, text, children."""
    return (el.tag, sorted(el.attrib.items()), (el.text or "").strip(),
            [shape(c) for c in el])


def payload(msg):
    """The child elements of a message, without the <stanza-id/> and <delay/>
    the server adds (checked separately)."""
    return [shape(c) for c in msg
            if c.tag not in (q(NS_SID, "stanza-id"), q(NS_DELAY, "delay"))]


def attributes(msg):
    """The message's attributes but 'from' (the server stamps it) and
    xml:lang."""
    return {k: v for k, v in msg.attrib.items() if k not in ("from", XML_LANG)}


def stanza_ids(msg):
    return [(e.get("by"), e.get("id")) for e in msg.findall(q(NS_SID, "stanza-id"))]


def carbon(msg, direction):
    """The message forwarded in a <received/> or <sent/> carbon, or None."""
    return msg.find("%s/%s/%s" % (q(NS_CARBONS, direction), q(NS_FORWARD, "forwarded"),
                                  q(NS_CLIENT, "message")))


def token():
    return secrets.token_hex(5)


class Sent:
    """One message of a batch: the case, its XML (str and parsed)."""

    def __init__(self, case, to, tag):
        self.name, self.type, template, self.carbon, self.archived, self.offline = case
        self.id = "%s-%s" % (self.name, tag)
        self.body = "%s %s" % (self.name, tag)
        inner = template.format(body=self.body, ref="orig-" + tag)
        mtype = " type='%s'" % self.type if self.type else ""
        self.xml = "<message xmlns='%s' to='%s' id='%s'%s>%s</message>" % (
            NS_CLIENT, to, self.id, mtype, inner)
        self.el = ET.fromstring(self.xml)


def mam_last(client, with_jid, n):
    """The last n items of the client's archive with with_jid, oldest
    first, as (archive id, forwarded message); and the archive's total
    count (all contacts)."""
    queryid = "q" + token()
    mark = client.mark()
    form = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s"
            "</value></field><field var='with'><value>%s</value></field></x>"
            % (NS_XDATA, NS_MAM, with_jid))
    iq = client.iq("<query xmlns='%s' queryid='%s'>%s<set xmlns='%s'><max>%d</max><before/>"
                   "</set></query>" % (NS_MAM, queryid, form, NS_RSM, n),
                   to=None, itype="set")
    assert iq.get("type") == "result", ET.tostring(iq)
    items = []
    for s in client.received_since(mark, kinds=("message",)):
        res = s.xml.find(q(NS_MAM, "result"))
        if res is not None and res.get("queryid") == queryid:
            items.append((res.get("id"), res.find("%s/%s" % (q(NS_FORWARD, "forwarded"),
                                                              q(NS_CLIENT, "message")))))
    return items, mam_count(client)


def mam_count(client):
    iq = client.iq("<query xmlns='%s'><set xmlns='%s'><max>0</max></set></query>"
                   % (NS_MAM, NS_RSM), to=None, itype="set")
    return int(iq.find("%s/%s/%s" % (q(NS_MAM, "fin"), q(NS_RSM, "set"), q(NS_RSM, "count"))).text)


class PassthroughTests(ServerTestCase):
    server_kwargs = dict(users=USERS, config={"modules": {"mam": {}, "offline": {},
                                                          "carbons": {}}})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.laptop = SlixClient(cls.server, "alice", resource="laptop").connect(presence=False)
        cls.phone = SlixClient(cls.server, "alice", resource="phone").connect(presence=False)
        cls.bob = SlixClient(cls.server, "bob", resource="desk").connect()
        cls.laptop.send_presence(priority=5)
        cls.phone.send_presence(priority=1)
        for c in (cls.laptop, cls.phone):
            answer = c.iq("<enable xmlns='%s'/>" % NS_CARBONS, to=None, itype="set")
            assert answer.get("type") == "result"

    @classmethod
    def tearDownClass(cls):
        for c in (cls.laptop, cls.phone, cls.bob):
            c.disconnect()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.clients = {"laptop": self.laptop, "phone": self.phone, "bob": self.bob}
        self.marks = {k: c.mark() for k, c in self.clients.items()}

    def tearDown(self):
        super().tearDown()
        for c in self.clients.values():
            self.assertFalse(c.disconnected, "%s lost its connection" % c.jid)

    # ---- helpers -----------------------------------------------------------

    def got(self, name):
        return [s.xml for s in self.clients[name].received_since(self.marks[name],
                                                                   kinds=("message",))]

    def send_batch(self, sender, to):
        """Every case, then a plain chat message; returns the Sent list (the
        end marker last, as an ordinary archived, copied, stored case)."""
        tag = token()
        batch = [Sent(c, to, tag) for c in CASES]
        batch.append(Sent(("end", "chat", "<body>{body}</body>", True, True, "stored"),
                          to, tag))
        for m in batch:
            sender.send_raw(m.xml)
        sender.sync()
        return batch

    def wait_end(self, name, pred):
        self.clients[name].wait_stanza(lambda s: s.name == "message" and pred(s.xml),
                                       since=self.marks[name])

    def assert_original(self, got, sent, frm, archive_owner, offline=False):
        """got is sent, untouched: same attributes but the stamped 'from',
        same child elements; plus a stanza-id of the recipient's archive if
        (and only if) archived, plus a delay if (and only if) from offline
        storage."""
        self.assertEqual(got.get("from"), frm, sent.name)
        self.assertEqual(attributes(got), attributes(sent.el), sent.name)
        self.assertEqual(payload(got), payload(sent.el), sent.name)
        sids = stanza_ids(got)
        if sent.archived:
            self.assertEqual([by for by, _ in sids], [archive_owner], sent.name)
        else:
            self.assertEqual(sids, [], "%s is not archived but has a stanza-id" % sent.name)
        delays = got.findall(q(NS_DELAY, "delay"))
        self.assertEqual(len(delays), 1 if offline else 0, sent.name)
        return sids[0][1] if sids else None

    def assert_copies(self, name, direction, batch, frm):
        """client `name` got exactly one carbon per copied case, in order,
        from alice's bare JID, wrapping the message untouched."""
        copies = self.got(name)
        expected = [m for m in batch if m.carbon]
        self.assertEqual([carbon(c, direction).get("id") if carbon(c, direction) is not None
                          else ET.tostring(c) for c in copies], [m.id for m in expected])
        for c, m in zip(copies, expected):
            self.assertEqual(c.get("from"), "alice@localhost")
            self.assertEqual(c.get("to"), "alice@localhost/" + name)
            inner = carbon(c, direction)
            self.assertEqual(inner.get("from"), frm, m.name)
            self.assertEqual(attributes(inner), attributes(m.el), m.name)
            self.assertEqual(payload(inner), payload(m.el), m.name)

    def assert_archive(self, client, with_jid, batch, before_count, frm, owner_ids=None):
        """client's archive gained exactly the archived cases of the batch, in
        order, each the message as sent; owner_ids (if given) are the
        stanza-ids the recipient saw, which must be the archive ids."""
        expected = [m for m in batch if m.archived]
        items, count = mam_last(client, with_jid, len(expected))
        self.assertEqual(count - before_count, len(expected),
                         "%s's archive grew by %d, not %d" % (client.jid, count - before_count,
                                                             len(expected)))
        self.assertEqual([fwd.get("id") for _, fwd in items], [m.id for m in expected])
        for (_, fwd), m in zip(items, expected):
            self.assertEqual(fwd.get("from"), frm, m.name)
            self.assertEqual(attributes(fwd), attributes(m.el), m.name)
            self.assertEqual(payload(fwd), payload(m.el), m.name)
        if owner_ids is not None:
            self.assertEqual([aid for aid, _ in items], owner_ids)

    # ---- tests -------------------------------------------------------------

    def test_sent_by_alice_to_bob(self):
        """bob gets each message untouched; alice's phone gets a <sent/> copy
        of the eligible ones (XEP-0280 §6, §8; XEP-0334 no-copy); both
        archives hold the archivable ones (XEP-0313, XEP-0333 §7, XEP-0334)."""
        before = {"alice": mam_count(self.laptop), "bob": mam_count(self.bob)}
        batch = self.send_batch(self.laptop, "bob@localhost/desk")
        end = batch[-1]
        self.wait_end("bob", lambda x: x.get("id") == end.id)
        self.wait_end("phone", lambda x: (carbon(x, "sent") is not None and
                                          carbon(x, "sent").get("id") == end.id))
        time.sleep(T_SHORT)

        got = self.got("bob")
        self.assertEqual([g.get("id") for g in got], [m.id for m in batch])
        bob_ids = [self.assert_original(g, m, "alice@localhost/laptop", "bob@localhost")
                   for g, m in zip(got, batch)]
        self.assert_copies("phone", "sent", batch, "alice@localhost/laptop")
        self.assertEqual(self.got("laptop"), [], "the sending session gets nothing")

        self.assert_archive(self.laptop, "bob@localhost", batch, before["alice"],
                            "alice@localhost/laptop")
        self.assert_archive(self.bob, "alice@localhost", batch, before["bob"],
                            "alice@localhost/laptop", [i for i in bob_ids if i])

    def test_sent_by_bob_to_alice(self):
        """alice's laptop gets each message untouched; her phone gets a
        <received/> copy of the eligible ones (XEP-0280 §7); both archives
        hold the archivable ones."""
        before = {"alice": mam_count(self.laptop), "bob": mam_count(self.bob)}
        batch = self.send_batch(self.bob, "alice@localhost/laptop")
        end = batch[-1]
        self.wait_end("laptop", lambda x: x.get("id") == end.id)
        self.wait_end("phone", lambda x: (carbon(x, "received") is not None and
                                          carbon(x, "received").get("id") == end.id))
        time.sleep(T_SHORT)

        got = self.got("laptop")
        self.assertEqual([g.get("id") for g in got], [m.id for m in batch])
        alice_ids = [self.assert_original(g, m, "bob@localhost/desk", "alice@localhost")
                     for g, m in zip(got, batch)]
        self.assert_copies("phone", "received", batch, "bob@localhost/desk")
        self.assertEqual(self.got("bob"), [], "the sender gets nothing back")

        self.assert_archive(self.laptop, "bob@localhost", batch, before["alice"],
                            "bob@localhost/desk", [i for i in alice_ids if i])
        self.assert_archive(self.bob, "alice@localhost", batch, before["bob"],
                            "bob@localhost/desk")

    def test_sent_to_an_offline_user(self):
        """XEP-0160 with XEP-0085 §5.8 and XEP-0334: olive, offline, gets the
        stored messages with <delay/> when she logs in, untouched otherwise;
        <no-store/> bounces what had content; nothing else reaches alice."""
        before_alice = mam_count(self.laptop)
        batch = self.send_batch(self.laptop, "olive@localhost")
        end = batch[-1]
        self.wait_end("phone", lambda x: (carbon(x, "sent") is not None and
                                          carbon(x, "sent").get("id") == end.id))
        time.sleep(T_SHORT)

        errors = self.got("laptop")
        bounced = [m for m in batch if m.offline == "bounced"]
        self.assertEqual([e.get("id") for e in errors], [m.id for m in bounced])
        for e in errors:
            self.assertEqual(e.get("type"), "error")
            self.assertEqual(e.get("from"), "olive@localhost")
            self.assertEqual(stanza_error(e), ("cancel", "service-unavailable"))
        self.assert_copies("phone", "sent", batch, "alice@localhost/laptop")
        self.assertEqual(self.got("bob"), [])

        olive = self.slix("olive", resource="later", connect=False)
        olive.connect(presence=False)
        self.assertEqual(olive.received_since(0, kinds=("message",)), [],
                         "delivered before available presence")
        olive.send_presence()
        olive.wait_stanza(lambda s: s.name == "message" and s["id"] == end.id)
        time.sleep(T_SHORT)
        got = [s.xml for s in olive.received_since(0, kinds=("message",))]
        stored = [m for m in batch if m.offline == "stored"]
        self.assertEqual([g.get("id") for g in got], [m.id for m in stored])
        olive_ids = []
        for g, m in zip(got, stored):
            sid = self.assert_original(g, m, "alice@localhost/laptop", "olive@localhost",
                                       offline=True)
            delay = g.find(q(NS_DELAY, "delay"))
            self.assertEqual(delay.get("from"), "localhost")
            if sid:
                olive_ids.append(sid)

        # olive's archive: every archived case, those not stored offline too.
        expected = [m for m in batch if m.archived]
        items, count = mam_last(olive, "alice@localhost", len(expected) + 5)
        self.assertEqual(count, len(expected))
        self.assertEqual([fwd.get("id") for _, fwd in items], [m.id for m in expected])
        for (_, fwd), m in zip(items, expected):
            self.assertEqual(payload(fwd), payload(m.el), m.name)
        stored_ids = {m.id for m in stored}
        self.assertEqual([aid for aid, fwd in items if fwd.get("id") in stored_ids], olive_ids)
        self.assert_archive(self.laptop, "olive@localhost", batch, before_alice,
                            "alice@localhost/laptop")
