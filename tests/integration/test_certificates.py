"""Which certificate the server presents for which name (SNI, RFC 6066 §3):
a host's own certificate for the host; a service domain's own certificate
when it has one (`services.DOMAIN.certificate` and `key`); otherwise the
certificate of the host the service domain is under; the global
`tls.certificate` for a host without its own and for names the server does
not know."""
import os
import ssl

from harness import DOMAIN, RawClient, Server, ServerTestCase, deep_merge

HOST = "example.test"
CONFERENCE = "conference." + HOST  # no certificate of its own
FILES = "files." + HOST  # its own certificate


def pem_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class CertificateTests(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        server = Server(name=cls.__name__)
        cls.paths = {}
        for name in (HOST, FILES):
            crt = os.path.join(server.dir, name + ".crt")
            key = os.path.join(server.dir, name + ".key")
            r = server.ternctl("cert", name, crt, key, "30")
            if r.returncode != 0:
                raise AssertionError("ternctl cert %s: %s" % (name, r.stderr))
            cls.paths[name] = crt
        server.config = deep_merge(server.config, {
            "hosts": {HOST: {"certificate": cls.paths[HOST],
                             "key": os.path.join(server.dir, HOST + ".key")}},
            "services": {
                CONFERENCE: {},
                FILES: {"certificate": cls.paths[FILES],
                        "key": os.path.join(server.dir, FILES + ".key")},
            },
        })
        server.extra_config = deep_merge(server.extra_config, {
            k: server.config[k] for k in ("hosts", "services")})
        cls.server = server
        server.start()

    def presented(self, sni):
        c = RawClient(self.server.tls_port, direct_tls=True, sni=sni)
        self._clients.append(c)
        return c.peer_cert

    def test_host_certificate(self):
        self.assertEqual(self.presented(HOST), pem_der(self.paths[HOST]))

    def test_global_certificate(self):
        self.assertEqual(self.presented(DOMAIN), pem_der(self.server.cert_path))
        self.assertEqual(self.presented("unknown.test"), pem_der(self.server.cert_path))

    def test_service_with_its_own_certificate(self):
        self.assertEqual(self.presented(FILES), pem_der(self.paths[FILES]))
        self.assertEqual(self.presented(FILES.upper()), pem_der(self.paths[FILES]))

    def test_service_falls_back_to_its_host(self):
        self.assertEqual(self.presented(CONFERENCE), pem_der(self.paths[HOST]))
