"""Group chat from real clients of Debian 12, driven in tmux: profanity and
poezio each join a room of conference.localhost (served by the muc module)
that a slixmpp user made and moderates, chat with it (each sees the
other's message), change the subject (the slixmpp occupant gets it) and
are kicked by the slixmpp moderator (the client shows it)."""
import re
import shutil
import unittest
import uuid
import xml.etree.ElementTree as ET

from harness import DOMAIN, ServerTestCase
from test_poezio import Poezio
from test_real_client import Profanity

SERVICE = "conference." + DOMAIN
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
T_WAIT = 15


class MucClientCase(ServerTestCase):
    server_kwargs = dict(users={"alice": "alice-pw", "mod": "mod-pw"},
                         config={"services": {SERVICE: {"modules": {"muc": {}}}}})

    def make_room(self):
        """A room the slixmpp user "mod" creates and owns, where occupants
        may change the subject; (client, room)."""
        mod = self.slix("mod", resource="slix")
        room = "r%s@%s" % (uuid.uuid4().hex[:8], SERVICE)
        mark = mod.mark()
        mod.send_raw("<presence to='%s/mod'><x xmlns='%s'/></presence>" % (room, NS_MUC))
        mod.wait_stanza(lambda s: s.name == "presence" and str(s["from"]) == room + "/mod",
                        since=mark)
        el = mod.iq("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                    "<field var='FORM_TYPE' type='hidden'>"
                    "<value>http://jabber.org/protocol/muc#roomconfig</value></field>"
                    "<field var='muc#roomconfig_changesubject'><value>1</value></field>"
                    "</x></query>" % NS_OWNER, to=room, itype="set")
        self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())
        return mod, room

    def wait_presence(self, mod, room, nick, since):
        return mod.wait_stanza(lambda s: s.name == "presence" and
                               str(s["from"]) == "%s/%s" % (room, nick) and
                               s.xml.get("type") is None, since=since, timeout=T_WAIT)

    def kick(self, mod, room, nick):
        el = mod.iq("<query xmlns='%s'><item nick='%s' role='none'><reason>enough</reason>"
                    "</item></query>" % (NS_ADMIN, nick), to=room, itype="set")
        self.assertEqual(el.get("type"), "result", ET.tostring(el).decode())

    def wait_subject(self, mod, subject, since):
        return mod.wait_stanza(lambda s: s.name == "message" and s["subject"] == subject,
                               since=since, timeout=T_WAIT)


@unittest.skipUnless(shutil.which("profanity") and shutil.which("tmux"),
                     "profanity or tmux is not installed (contrib/deps.sh --test installs them)")
class ProfanityMucTests(MucClientCase):
    def test_profanity_in_a_room(self):
        mod, room = self.make_room()
        p = Profanity(self)
        self.addCleanup(p.quit)
        p.start()
        p.login("alice@" + DOMAIN, "alice-pw", self.server.c2s_port)
        mark = mod.mark()
        p.type("/join %s nick prof" % room)
        self.wait_presence(mod, room, "prof", mark)
        # profanity -> slixmpp, slixmpp -> profanity.
        text = "hello from profanity %s" % uuid.uuid4().hex[:6]
        mark = mod.mark()
        p.type(text)
        m = mod.wait_message(text, since=mark, timeout=T_WAIT)
        self.assertEqual(str(m["from"]), room + "/prof")
        self.assertEqual(m["type"], "groupchat")
        answer = "hello from slixmpp %s" % uuid.uuid4().hex[:6]
        mod.send_message(room, answer, mtype="groupchat")
        p.wait_screen(re.escape(answer))
        # The subject.
        subject = "Topic %s" % uuid.uuid4().hex[:6]
        mark = mod.mark()
        p.type("/subject set %s" % subject)
        m = self.wait_subject(mod, subject, mark)
        self.assertEqual(str(m["from"]), room + "/prof")
        # Kicked: profanity says so.
        self.kick(mod, room, "prof")
        p.wait_log(r"RECV: <presence[^\n]*code=.307")
        p.wait_screen(r"(?i)kicked")


@unittest.skipUnless(shutil.which("poezio") and shutil.which("tmux"),
                     "poezio or tmux is not installed (contrib/deps.sh --test installs them)")
class PoezioMucTests(MucClientCase):
    def test_poezio_in_a_room(self):
        mod, room = self.make_room()
        p = Poezio(self, self.server, "alice", "alice-pw")
        self.addCleanup(p.quit)
        p.start()
        p.wait_screen(r"Your JID is alice@%s/" % re.escape(DOMAIN))
        mark = mod.mark()
        p.command("join %s/poe" % room)
        self.wait_presence(mod, room, "poe", mark)
        p.wait_screen(r"You joined the room|\(poe\) joined the room")  # its tab is open
        # In the room's tab, a line without / is a message to the room.
        text = "hello from poezio %s" % uuid.uuid4().hex[:6]
        mark = mod.mark()
        p.send_keys(text)
        p.enter()
        try:
            m = mod.wait_message(text, since=mark, timeout=T_WAIT)
        except TimeoutError:
            self.fail("the room never got poezio's message; screen:\n%s\n%s"
                      % (p.screen(), p.diagnostics()))
        self.assertEqual(str(m["from"]), room + "/poe")
        self.assertEqual(m["type"], "groupchat")
        answer = "hello from slixmpp %s" % uuid.uuid4().hex[:6]
        mod.send_message(room, answer, mtype="groupchat")
        p.wait_screen(re.escape(answer))
        subject = "Topic %s" % uuid.uuid4().hex[:6]
        mark = mod.mark()
        p.command("subject %s" % subject)
        m = self.wait_subject(mod, subject, mark)
        self.assertEqual(str(m["from"]), room + "/poe")
        self.kick(mod, room, "poe")
        p.wait_screen(r"(?i)kicked")


if __name__ == "__main__":
    unittest.main()
