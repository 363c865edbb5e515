#!/usr/bin/python3
"""Generates test/unit/jwt_fixtures.h: keys and JWTs for the C tests.

The tokens come from an implementation independent of the library (PyJWT,
Debian python3-jwt, on python3-cryptography), so a verifier that merely
agrees with its own signer cannot pass. Hand-built tokens (alg "none", an
HS256 token whose HMAC secret is the RSA public key PEM, duplicate claims,
a "crit" header, ...) are made with hmac here because PyJWT refuses them.

Keys are derived from fixed seeds (RSA primes by a deterministic search,
EC and Ed25519 private values from SHA-256 of a label), so the keys, the
HMAC, RSASSA-PKCS1-v1_5 tokens and the certificate come out the same on
every run; ECDSA and RSASSA-PSS signatures are randomized by their
algorithms, so those tokens change (and stay valid) on each run.

Run:  /usr/bin/python3 test/unit/gen_jwt_fixtures.py
writes test/unit/jwt_fixtures.h beside this file (or to argv[1]).
"""
import base64
import datetime
import hashlib
import hmac
import json
import math
import os
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = 1750000000           # the fixed "now" the C tests verify at (2025)
IAT = 1700000000           # 2023
EXP_2100 = 4102444800      # 2100-01-01
EXP_2101 = 4133980800      # 2101-01-01
EXP_2001 = 978307200       # 2001-01-01
NBF_2100 = EXP_2100
ISS = "https://issuer.example"
AUD = "agentws"

HS_SECRET = b"agentws-test-hs256-secret-32byte"           # 32 bytes
HS_SECRET2 = b"agentws-rotated-hs256-secret-32b"          # 32 bytes
HS_SECRET64 = (b"agentws-test-hs512-secret-of-sixty-four-bytes-"
               b"0123456789abcdefgh")                       # 64 bytes
HS_WRONG = b"not-the-secret-the-server-knows!"            # 32 bytes
assert len(HS_SECRET) == 32 and len(HS_SECRET2) == 32
assert len(HS_SECRET64) == 64 and len(HS_WRONG) == 32


# ------------------------------------------------------- deterministic keys

def _stream(label):
    """An endless deterministic byte stream for |label|."""
    counter = 0
    while True:
        yield from hashlib.sha256(b"%s/%d" % (label.encode(), counter)).digest()
        counter += 1


def _is_probable_prime(n):
    if n < 2:
        return False
    small = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
    for p in small:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in small[:12]:  # fixed bases: deterministic, ample for tests
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(label, bits, e=65537):
    s = _stream(label)
    while True:
        c = int.from_bytes(bytes(next(s) for _ in range(bits // 8)), "big")
        c |= (3 << (bits - 2)) | 1  # top two bits: p*q has 2*bits bits
        if math.gcd(e, c - 1) == 1 and _is_probable_prime(c):
            return c


def rsa_key(label, bits):
    e = 65537
    p = _prime(label + "/p", bits // 2)
    q = _prime(label + "/q", bits // 2)
    if p < q:
        p, q = q, p
    d = pow(e, -1, (p - 1) * (q - 1))
    priv = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q))
    key = priv.private_key()
    assert key.key_size == bits
    return key


def ec_key(label, curve):
    order = {"secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             "secp384r1": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                              "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16),
             "secp521r1": int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                              "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16),
             "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141}
    n = order[curve.name]
    s = _stream(label)
    v = int.from_bytes(bytes(next(s) for _ in range(80)), "big") % (n - 1) + 1
    return ec.derive_private_key(v, curve)


def pub_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA1 = rsa_key("agentws rsa1", 2048)
RSA2 = rsa_key("agentws rsa2", 2048)      # "wrong key": same kid, other key
RSA1024 = rsa_key("agentws rsa1024", 1024)  # too weak: refused
EC256 = ec_key("agentws ec256", ec.SECP256R1())
EC256B = ec_key("agentws ec256b", ec.SECP256R1())  # wrong EC key
EC384 = ec_key("agentws ec384", ec.SECP384R1())
EC521 = ec_key("agentws ec521", ec.SECP521R1())
K256 = ec_key("agentws secp256k1", ec.SECP256K1())  # unsupported curve
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"agentws ed25519").digest())


def rsa_cert(key):
    """A self-signed certificate of |key| (RSA, so the bytes are fixed)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "agentws test issuer")])
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(0x4147454E545753)
            .not_valid_before(datetime.datetime(2024, 1, 1))
            .not_valid_after(datetime.datetime(2100, 1, 1))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM).decode())


# ------------------------------------------------------------------- JWKs

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _int_b64u(v, size=None):
    size = size or (v.bit_length() + 7) // 8
    return b64u(v.to_bytes(size, "big"))


def rsa_jwk(key, kid, **extra):
    n = key.public_key().public_numbers()
    d = {"kty": "RSA", "kid": kid, "n": _int_b64u(n.n), "e": _int_b64u(n.e)}
    d.update(extra)
    return d


def ec_jwk(key, kid, **extra):
    n = key.public_key().public_numbers()
    crv, size = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48),
                 "secp521r1": ("P-521", 66)}[key.curve.name]
    d = {"kty": "EC", "kid": kid, "crv": crv,
         "x": _int_b64u(n.x, size), "y": _int_b64u(n.y, size)}
    d.update(extra)
    return d


def oct_jwk(secret, kid, **extra):
    d = {"kty": "oct", "kid": kid, "k": b64u(secret)}
    d.update(extra)
    return d


def okp_jwk(key, kid):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64u(raw),
            "use": "sig", "alg": "EdDSA"}


def jwks(*keys):
    return json.dumps({"keys": list(keys)}, separators=(",", ":"))


# ----------------------------------------------------------------- tokens

def claims(**over):
    c = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": IAT, "exp": EXP_2100}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign(alg, key, payload, kid=None):
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def hand_hs256(header, payload_bytes, secret):
    """A token built by hand: header dict, raw payload bytes, HMAC-SHA256."""
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(payload_bytes)
    mac = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64u(mac)


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


RSA1_PUB = pub_pem(RSA1)

T = {}  # name -> (comment, token)


def tok(name, comment, value):
    assert name not in T
    T[name] = (comment, value)


# Valid at NOW (and on any real clock until 2100).
tok("HS256", "HS256, kid hs1, sub alice", sign("HS256", HS_SECRET, claims(), "hs1"))
tok("HS256_NOKID", "HS256 without kid", sign("HS256", HS_SECRET, claims()))
tok("HS256_BOB", "HS256, kid hs1, sub bob", sign("HS256", HS_SECRET, claims(sub="bob"), "hs1"))
tok("HS256_CAROL", "HS256, kid hs1, sub carol", sign("HS256", HS_SECRET, claims(sub="carol"), "hs1"))
tok("HS256_K2", "HS256 with the rotated secret, kid hs2, sub alice",
    sign("HS256", HS_SECRET2, claims(), "hs2"))
tok("HS256_AUD_ARRAY", "aud is an array holding agentws",
    sign("HS256", HS_SECRET, claims(aud=["other", AUD]), "hs1"))
tok("HS256_SCOPE", "scope \"read write\", roles [\"admin\"]",
    sign("HS256", HS_SECRET, claims(scope="read write", roles=["admin"]), "hs1"))
tok("HS256_SCP", "scp [\"deploy\"]",
    sign("HS256", HS_SECRET, claims(scp=["deploy"]), "hs1"))
tok("HS256_NOEXP", "no exp claim", sign("HS256", HS_SECRET, claims(exp=None), "hs1"))
tok("HS256_EMAIL", "user in \"email\" besides sub",
    sign("HS256", HS_SECRET, claims(email="alice@example.com"), "hs1"))
tok("HS256_NBF_PAST", "nbf in the past, exp 2100",
    sign("HS256", HS_SECRET, claims(nbf=IAT), "hs1"))
tok("HS384", "HS384 with the 64-byte secret (kid hs64)",
    sign("HS384", HS_SECRET64, claims(), "hs64"))
tok("HS512", "HS512 with the 64-byte secret (kid hs64)",
    sign("HS512", HS_SECRET64, claims(), "hs64"))
for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
    tok(alg, alg + ", kid rsa1", sign(alg, RSA1, claims(), "rsa1"))
tok("RS256_NOKID", "RS256 without kid", sign("RS256", RSA1, claims()))
tok("ES256", "ES256 (P-256), kid ec1", sign("ES256", EC256, claims(), "ec1"))
tok("ES256_NOKID", "ES256 without kid", sign("ES256", EC256, claims()))
tok("ES384", "ES384 (P-384), kid ec384", sign("ES384", EC384, claims(), "ec384"))
tok("ES512", "ES512 (P-521), kid ec521", sign("ES512", EC521, claims(), "ec521"))

# Refused.
tok("EXPIRED", "exp in 2001", sign("HS256", HS_SECRET, claims(iat=EXP_2001 - 3600, exp=EXP_2001), "hs1"))
tok("NBF_FUTURE", "nbf in 2100 (exp 2101)",
    sign("HS256", HS_SECRET, claims(nbf=NBF_2100, exp=EXP_2101), "hs1"))
tok("IAT_FUTURE", "iat in 2100 (exp 2101)",
    sign("HS256", HS_SECRET, claims(iat=NBF_2100, exp=EXP_2101), "hs1"))
tok("BAD_SIG", "HS256, kid hs1, signed with another secret",
    sign("HS256", HS_WRONG, claims(), "hs1"))
tok("RS256_WRONG_KEY", "RS256, kid rsa1, signed by another RSA key",
    sign("RS256", RSA2, claims(), "rsa1"))
tok("ES256_WRONG_KEY", "ES256, kid ec1, signed by another P-256 key",
    sign("ES256", EC256B, claims(), "ec1"))
tok("ES256_ON_P384", "ES256 naming the P-384 key ec384 (curve mismatch)",
    sign("ES256", EC256, claims(), "ec384"))
tok("UNKNOWN_KID", "HS256, kid nope", sign("HS256", HS_SECRET, claims(), "nope"))
tok("WRONG_ISS", "iss https://evil.example",
    sign("HS256", HS_SECRET, claims(iss="https://evil.example"), "hs1"))
tok("NO_ISS", "no iss", sign("HS256", HS_SECRET, claims(iss=None), "hs1"))
tok("WRONG_AUD", "aud other", sign("HS256", HS_SECRET, claims(aud="other"), "hs1"))
tok("WRONG_AUD_ARRAY", "aud [\"a\",\"b\"]",
    sign("HS256", HS_SECRET, claims(aud=["a", "b"]), "hs1"))
tok("MISSING_SUB", "no sub", sign("HS256", HS_SECRET, claims(sub=None), "hs1"))
tok("SUB_NUMBER", "sub 42 (not a string)", sign("HS256", HS_SECRET, claims(sub=42), "hs1"))
tok("SUB_EMPTY", "sub \"\"", sign("HS256", HS_SECRET, claims(sub=""), "hs1"))
tok("SUB_CONTROL", "sub with a newline",
    sign("HS256", HS_SECRET, claims(sub="ali\nce"), "hs1"))
tok("SUB_ARRAY", "sub [\"alice\"] (array claim)",
    sign("HS256", HS_SECRET, claims(sub=["alice"]), "hs1"))
tok("EXP_STRING", "exp \"4102444800\" (a string)",
    sign("HS256", HS_SECRET, claims(exp=str(EXP_2100)), "hs1"))
tok("EXP_NEGATIVE", "exp -1", sign("HS256", HS_SECRET, claims(exp=-1), "hs1"))
tok("NO_SCOPE", "valid but grants no scope (scope \"read\")",
    sign("HS256", HS_SECRET, claims(scope="read"), "hs1"))
tok("HS512_SHORT_KEY", "HS512 with the 32-byte secret, kid hs1 (key too short for HS512)",
    sign("HS512", HS_SECRET, claims(), "hs1"))

# Hand-made.
none_h = b64u(compact({"alg": "none", "typ": "JWT"}))
none_p = b64u(compact(claims()))
tok("ALG_NONE", "alg none, empty signature", none_h + "." + none_p + ".")
tok("ALG_NONE_SIGNED", "alg none with a signature segment",
    none_h + "." + none_p + "." + b64u(b"signature"))
tok("ALG_LOWER", "alg \"hs256\" (unknown name)",
    hand_hs256({"alg": "hs256", "kid": "hs1"}, compact(claims()), HS_SECRET))
tok("ALG_CONFUSION", "HS256 whose HMAC secret is the RSA public key PEM, kid rsa1",
    hand_hs256({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, compact(claims()),
               RSA1_PUB.encode()))
tok("ALG_CONFUSION_NOKID", "the same without kid",
    hand_hs256({"alg": "HS256", "typ": "JWT"}, compact(claims()), RSA1_PUB.encode()))
tok("NOT_JSON", "payload \"hello\" (not JSON), correctly signed",
    hand_hs256({"alg": "HS256", "kid": "hs1"}, b"hello", HS_SECRET))
tok("PAYLOAD_ARRAY", "payload a JSON array, correctly signed",
    hand_hs256({"alg": "HS256", "kid": "hs1"}, b"[1,2,3]", HS_SECRET))
tok("DUP_CLAIMS", "sub given twice, correctly signed",
    hand_hs256({"alg": "HS256", "kid": "hs1"},
               b'{"sub":"alice","sub":"admin","iss":"' + ISS.encode() +
               b'","aud":"agentws","exp":' + str(EXP_2100).encode() + b"}",
               HS_SECRET))
tok("CRIT", "a crit header, correctly signed",
    hand_hs256({"alg": "HS256", "kid": "hs1", "crit": ["exp"]}, compact(claims()),
               HS_SECRET))
tok("KID_NUMBER", "kid 5 (not a string), correctly signed",
    hand_hs256({"alg": "HS256", "kid": 5}, compact(claims()), HS_SECRET))
tok("NO_ALG", "no alg in the header",
    hand_hs256({"kid": "hs1"}, compact(claims()), HS_SECRET))
tok("HEADER_NOT_JSON", "header segment is not JSON",
    b64u(b"{alg:HS256}") + "." + none_p + "." + b64u(b"x" * 32))
good = T["HS256"][1]
tok("TRUNCATED", "the HS256 token without its last 10 characters", good[:-10])
tok("NO_SIGNATURE", "the HS256 token with an empty signature",
    good[:good.rindex(".") + 1])
tok("BAD_BASE64", "the HS256 token with '+' and '/' (base64, not base64url)",
    good[:10] + "+/" + good[12:])
tok("FOUR_SEGMENTS", "the HS256 token with a fourth segment", good + ".AAAA")
tok("TWO_SEGMENTS", "header and payload only", good[:good.rindex(".")])
tok("PADDED", "the HS256 token with '=' padding in the signature", good + "=")

# ------------------------------------------------------------------- JWKS

JWKS = {
    "MIXED": ("RSA rsa1 (use sig), EC ec1, oct hs1, an RSA \"enc\" key, an OKP "
              "(Ed25519) key, an RSA key with alg RSA-OAEP: 3 usable",
              jwks(rsa_jwk(RSA1, "rsa1", use="sig"), ec_jwk(EC256, "ec1"),
                   oct_jwk(HS_SECRET, "hs1"), rsa_jwk(RSA2, "enc1", use="enc"),
                   okp_jwk(ED25519, "ed1"),
                   rsa_jwk(RSA2, "oaep1", alg="RSA-OAEP"))),
    "PINNED": ("rsa1 pinned to RS256 (alg)",
               jwks(rsa_jwk(RSA1, "rsa1", use="sig", alg="RS256"))),
    "ALL": ("every key the valid tokens need",
            jwks(oct_jwk(HS_SECRET, "hs1"), oct_jwk(HS_SECRET64, "hs64"),
                 rsa_jwk(RSA1, "rsa1"), ec_jwk(EC256, "ec1"),
                 ec_jwk(EC384, "ec384"), ec_jwk(EC521, "ec521"))),
    "BAD_TAIL": ("a good RSA key, then a 1024-bit RSA key: refused whole",
                 jwks(rsa_jwk(RSA1, "rsa1"), rsa_jwk(RSA1024, "weak"))),
    "BAD_EC": ("a good oct key, then an EC key whose point is not on P-256",
               jwks(oct_jwk(HS_SECRET, "hs1"),
                    dict(ec_jwk(EC256, "bad"), y=ec_jwk(EC256B, "x")["y"]))),
    "SHORT_SECRET": ("an oct key of 16 bytes", jwks(oct_jwk(b"0123456789abcdef", "short"))),
    "ONLY_SKIPPED": ("only an enc key and an OKP key: nothing usable",
                     jwks(rsa_jwk(RSA2, "enc1", use="enc"), okp_jwk(ED25519, "ed1"))),
    "ROTATED": ("the rotated secret hs2", jwks(oct_jwk(HS_SECRET2, "hs2"))),
    "SINGLE_EC": ("a single JWK (not a set): EC ec1",
                  json.dumps(ec_jwk(EC256, "ec1"), separators=(",", ":"))),
    "KEYS_NOT_ARRAY": ("\"keys\" is an object", '{"keys":{"kty":"oct"}}'),
}

PEMS = {
    "RSA1_PUB": ("RSA 2048 public key rsa1", RSA1_PUB),
    "RSA2_PUB": ("RSA 2048 public key rsa2 (signs RS256_WRONG_KEY)", pub_pem(RSA2)),
    "RSA1024_PUB": ("RSA 1024 public key: too short", pub_pem(RSA1024)),
    "EC256_PUB": ("EC P-256 public key ec1", pub_pem(EC256)),
    "EC384_PUB": ("EC P-384 public key ec384", pub_pem(EC384)),
    "EC521_PUB": ("EC P-521 public key ec521", pub_pem(EC521)),
    "SECP256K1_PUB": ("EC secp256k1 public key: unsupported curve", pub_pem(K256)),
    "ED25519_PUB": ("Ed25519 public key: not supported", pub_pem(ED25519)),
    "RSA1_CERT": ("self-signed X.509 certificate of rsa1", rsa_cert(RSA1)),
}


# --------------------------------------------------------------- checking

def check():
    """The valid tokens verify with PyJWT, so the fixtures are what they
    claim to be."""
    opts = dict(audience=AUD, issuer=ISS, options={"verify_exp": False})
    for name, key in (("HS256", HS_SECRET), ("HS384", HS_SECRET64),
                      ("HS512", HS_SECRET64), ("RS256", RSA1.public_key()),
                      ("PS512", RSA1.public_key()), ("ES256", EC256.public_key()),
                      ("ES384", EC384.public_key()), ("ES512", EC521.public_key())):
        alg = name[:5]
        jwt.decode(T[name][1], key, algorithms=[alg], **opts)
    try:
        jwt.decode(T["RS256_WRONG_KEY"][1], RSA1.public_key(), algorithms=["RS256"], **opts)
    except jwt.InvalidSignatureError:
        pass
    else:
        raise SystemExit("RS256_WRONG_KEY verified")
    # The confusion token really is an HMAC under the PEM bytes.
    h, p, s = T["ALG_CONFUSION"][1].split(".")
    mac = hmac.new(RSA1_PUB.encode(), (h + "." + p).encode(), hashlib.sha256)
    assert b64u(mac.digest()) == s


# ----------------------------------------------------------------- output

def c_string(s, indent="    "):
    out = []
    for line in s.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        while len(esc) > 70:
            cut = 70
            while esc[cut - 1] == "\\":  # never split an escape
                cut -= 1
            out.append(esc[:cut])
            esc = esc[cut:]
        out.append(esc)
    return "\n".join(indent + '"' + e + '"' for e in out)


def define(lines, name, comment, value):
    assert len(value.encode()) < 4095, name  # ISO C's string literal floor
    lines.append("/* %s */" % comment)
    lines.append("#define JWTF_%s \\\n%s" % (name, c_string(value).replace("\n", " \\\n")))
    lines.append("")


def main():
    check()
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "jwt_fixtures.h")
    L = [
        "/*",
        " * GENERATED by test/unit/gen_jwt_fixtures.py -- do not edit by hand.",
        " * Regenerate: /usr/bin/python3 test/unit/gen_jwt_fixtures.py",
        " * (needs Debian python3-jwt and python3-cryptography).",
        " *",
        " * Keys and JWTs made by PyJWT %s / cryptography, an implementation" % jwt.__version__,
        " * independent of the library. Claims unless noted: sub \"alice\", iss",
        " * \"%s\", aud \"%s\", iat %d, exp %d (2100)." % (ISS, AUD, IAT, EXP_2100),
        " * Verify at JWTF_NOW so no result depends on the clock. ES and PS",
        " * signatures are randomized, so those tokens change when regenerated.",
        " * Kept in the repository so the tests need no Python at build time.",
        " */",
        "#ifndef AGENTWS_TEST_JWT_FIXTURES_H",
        "#define AGENTWS_TEST_JWT_FIXTURES_H",
        "",
        "#define JWTF_NOW INT64_C(%d)      /* 2025-06-15 */" % NOW,
        "#define JWTF_IAT INT64_C(%d)" % IAT,
        "#define JWTF_EXP_2100 INT64_C(%d) /* exp of the valid tokens */" % EXP_2100,
        "#define JWTF_EXP_2101 INT64_C(%d) /* exp of NBF_FUTURE, IAT_FUTURE */" % EXP_2101,
        "#define JWTF_EXP_2001 INT64_C(%d)  /* exp of EXPIRED */" % EXP_2001,
        "#define JWTF_NBF_2100 INT64_C(%d)" % NBF_2100,
        "#define JWTF_ISS \"%s\"" % ISS,
        "#define JWTF_AUD \"%s\"" % AUD,
        "",
        "/* HMAC secrets (sizeof - 1 bytes). */",
        "#define JWTF_HS_SECRET \"%s\"   /* kid hs1, 32 bytes */" % HS_SECRET.decode(),
        "#define JWTF_HS_SECRET2 \"%s\"  /* kid hs2, 32 bytes */" % HS_SECRET2.decode(),
        "#define JWTF_HS_SECRET64 \\\n    \"%s\" /* kid hs64 */" % HS_SECRET64.decode(),
        "",
        "/* ---------------------------------------------------------- PEM */",
        "",
    ]
    for name, (comment, value) in PEMS.items():
        define(L, name, comment, value)
    L += ["/* --------------------------------------------------------- JWKS */", ""]
    for name, (comment, value) in JWKS.items():
        define(L, "JWKS_" + name, comment, value)
    L += ["/* ------------------------------------------------------- tokens */", ""]
    for name, (comment, value) in T.items():
        define(L, "TOK_" + name, comment, value)
    L += ["#endif /* AGENTWS_TEST_JWT_FIXTURES_H */", ""]
    with open(path, "w") as f:
        f.write("\n".join(L))
    print("wrote %s: %d tokens, %d JWKS, %d PEM" % (path, len(T), len(JWKS), len(PEMS)))


if __name__ == "__main__":
    main()
