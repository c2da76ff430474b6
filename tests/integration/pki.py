"""pki.py — a private certificate authority for the integration tests.

Federation tests need certificates a peer server can check: a test CA that
the servers under test are told to trust, leaf certificates for their
domains, and the bad ones the attack tests present (wrong name, expired,
signed by an unknown CA).  Everything is made in memory with Python's
`cryptography` (Debian: python3-cryptography) and written as PEM files.

    ca = TestCA(tmpdir)                       # ca.cert_path: the CA to trust
    leaf = ca.issue("a.test", ["a.test", "*.a.test"])
    leaf.cert_path, leaf.key_path, leaf.chain_path (leaf + CA)
    ca.issue("b.test", srv_ids=["b.test"])    # SRV-ID _xmpp-server.b.test
    ca.issue("c.test", days_valid=(-10, -1))  # expired yesterday
    ca.issue("d.test", eku=("server",))       # serverAuth only (the default)

Keys are P-256 (fast to make).  No XmppAddr by default: ejabberd 23.01
fails on certificates that carry one; ask for it with xmpp_addrs=[...].
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OID_XMPP_ADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
OID_DNS_SRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")
EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def _der_string(tag, text):
    """DER of a UTF8String (tag 0x0c) or IA5String (0x16) holding `text`."""
    data = text.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + data


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


class Leaf:
    """A certificate and its key, written under the CA's folder."""

    def __init__(self, folder, stem, cert, key, ca_cert):
        self.cert = cert
        self.cert_path = os.path.join(folder, stem + ".crt")
        self.key_path = os.path.join(folder, stem + ".key")
        self.chain_path = os.path.join(folder, stem + ".chain.crt")
        pem = cert.public_bytes(serialization.Encoding.PEM)
        _write(self.cert_path, pem)
        _write(self.chain_path, pem + ca_cert.public_bytes(serialization.Encoding.PEM))
        _write(
            self.key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )


class TestCA:
    """A self-signed CA in `folder` (ca.crt, ca.key) that issues leaves."""

    __test__ = False  # not a unittest case

    def __init__(self, folder, name="Tern Test CA"):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = name.lower().replace(" ", "-")
        self.cert_path = os.path.join(folder, stem + ".crt")
        _write(self.cert_path, self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        cn,
        dns_names=None,
        srv_ids=(),
        xmpp_addrs=(),
        eku=("server",),
        days_valid=(-1, 30),
        stem=None,
    ):
        """A leaf for `cn`.  dns_names defaults to [cn] (pass [] for none:
        then the certificate has no subjectAltName unless srv_ids or
        xmpp_addrs are given).  days_valid = (start, end) in days from now.
        eku: names from ("server", "client"), or () for no EKU extension."""
        if dns_names is None:
            dns_names = [cn]
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days_valid[0]))
            .not_valid_after(now + datetime.timedelta(days=days_valid[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        sans = [x509.DNSName(n) for n in dns_names]
        sans += [x509.OtherName(OID_DNS_SRV, _der_string(0x16, "_xmpp-server." + d)) for d in srv_ids]
        sans += [x509.OtherName(OID_XMPP_ADDR, _der_string(0x0C, a)) for a in xmpp_addrs]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([EKU[e] for e in eku]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return Leaf(self.folder, stem or cn.replace("*", "wild"), cert, key, self.cert)


def self_signed(folder, cn, dns_names=None):
    """A leaf signed by a CA nobody trusts (a fresh one, thrown away)."""
    other = TestCA(os.path.join(folder, "untrusted-" + cn), name="Untrusted CA " + cn)
    return other.issue(cn, dns_names)
