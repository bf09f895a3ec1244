#!/usr/bin/env python3
"""mkvectors.py - writes the golden vectors tests/vectors/*.hex.

An independent second implementation of the dipx v1 wire format, written from
proto/PROTOCOL.md and not from the C code: its own msgpack encoder (minimal
encodings, as msgpack-c's packer writes them), Python's hashlib for BLAKE2b,
and libsodium through ctypes only for X25519/XSalsa20-Poly1305 and Ed25519.
tests/unit/test_vectors.c checks that the C library produces and accepts
exactly these bytes, so the two implementations must agree byte for byte.

Run from anywhere: python3 tests/vectors/mkvectors.py
Output format: hex byte pairs, whitespace ignored, '#' to end of line is a
comment. Each line is one part of the document, annotated.
"""
import ctypes
import ctypes.util
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# libsodium, for the two primitives Python lacks
_lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert _lib.sodium_init() >= 0


def box_seed_keypair(seed):
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
    assert _lib.crypto_box_seed_keypair(pk, sk, seed) == 0
    return pk.raw, sk.raw


def sign_seed_keypair(seed):
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    assert _lib.crypto_sign_seed_keypair(pk, sk, seed) == 0
    return pk.raw, sk.raw


def box_beforenm(pk, sk):
    k = ctypes.create_string_buffer(32)
    assert _lib.crypto_box_beforenm(k, pk, sk) == 0
    return k.raw


def box_easy_afternm(m, nonce, k):
    c = ctypes.create_string_buffer(len(m) + 16)
    assert _lib.crypto_box_easy_afternm(c, m, ctypes.c_ulonglong(len(m)), nonce, k) == 0
    return c.raw


def sign_detached(m, sk):
    sig = ctypes.create_string_buffer(64)
    assert _lib.crypto_sign_detached(sig, None, m, ctypes.c_ulonglong(len(m)), sk) == 0
    return sig.raw


def h_labelled(label, data):
    """BLAKE2b-256 of the label, its terminating NUL, then data."""
    return hashlib.blake2b(label.encode() + b"\0" + data, digest_size=32).digest()


# --------------------------------------------------------------------------
# A msgpack subset with annotations: each node yields (bytes, comment) lines.


class U:
    def __init__(self, v, note=""):
        self.v, self.note = v, note


class S:
    def __init__(self, v, note=""):
        self.v, self.note = v, note


class B:
    """bin; `inner` optionally describes the bytes inside (a list of nodes or
    Raw parts whose concatenation must equal v)."""

    def __init__(self, v, note="", inner=None):
        self.v, self.note, self.inner = v, note, inner


class Raw:
    """Bytes that are not msgpack (a nonce, a MAC'd box), shown in chunks."""

    def __init__(self, v, note):
        self.v, self.note = v, note


class A:
    def __init__(self, items, note=""):
        self.items, self.note = items, note


class M:
    def __init__(self, pairs, note=""):
        self.pairs, self.note = pairs, note


def _uint(v):
    if v < 0x80:
        return bytes([v]), "uint"
    if v < 0x100:
        return b"\xcc" + bytes([v]), "uint8"
    if v < 0x10000:
        return b"\xcd" + struct.pack(">H", v), "uint16"
    if v < 0x100000000:
        return b"\xce" + struct.pack(">I", v), "uint32"
    return b"\xcf" + struct.pack(">Q", v), "uint64"


def _strhdr(n):
    if n < 32:
        return bytes([0xA0 | n]), "fixstr"
    if n < 0x100:
        return b"\xd9" + bytes([n]), "str8"
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n), "str16"
    return b"\xdb" + struct.pack(">I", n), "str32"


def _binhdr(n):
    if n < 0x100:
        return b"\xc4" + bytes([n]), "bin8"
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n), "bin16"
    return b"\xc6" + struct.pack(">I", n), "bin32"


def _cont(n, fix, b16, b32):
    if n < 16:
        return bytes([fix | n])
    if n < 0x10000:
        return bytes([b16]) + struct.pack(">H", n)
    return bytes([b32]) + struct.pack(">I", n)


def _chunks(data, note, ind, width=16):
    out = []
    for i in range(0, len(data), width):
        part = data[i : i + width]
        c = note if i == 0 else ""
        out.append((part, ind + c if c else ""))
    if not data:
        out.append((b"", ind + note + " (empty)"))
    return out


def lines(node, ind=""):
    """Returns [(bytes, comment)] for node."""
    n = "  " + node.note if getattr(node, "note", "") else ""
    if isinstance(node, U):
        b, kind = _uint(node.v)
        return [(b, f"{ind}{kind} {node.v}{n}")]
    if isinstance(node, S):
        raw = node.v.encode()
        h, kind = _strhdr(len(raw))
        return [(h + raw, f'{ind}{kind} "{node.v}"{n}')]
    if isinstance(node, B):
        h, kind = _binhdr(len(node.v))
        out = [(h, f"{ind}{kind} len {len(node.v)}{n}")]
        if node.inner is None:
            return out + _chunks(node.v, "bytes", ind + "  ")
        inner = []
        for part in node.inner:
            inner += lines(part, ind + "  ")
        assert b"".join(b for b, _ in inner) == node.v, "bin annotation does not match its bytes"
        return out + inner
    if isinstance(node, Raw):
        return _chunks(node.v, node.note, ind)
    if isinstance(node, A):
        out = [(_cont(len(node.items), 0x90, 0xDC, 0xDD), f"{ind}array({len(node.items)}){n}")]
        for it in node.items:
            out += lines(it, ind + "  ")
        return out
    if isinstance(node, M):
        out = [(_cont(len(node.pairs), 0x80, 0xDE, 0xDF), f"{ind}map({len(node.pairs)}){n}")]
        for k, v in node.pairs:
            out += lines(S(k), ind + "  ")
            out += lines(v, ind + "    ")
        return out
    raise TypeError(node)


def encode(node):
    return b"".join(b for b, _ in lines(node))


def write(name, title, node_or_lines, extra=""):
    ls = lines(node_or_lines) if not isinstance(node_or_lines, list) else node_or_lines
    data = b"".join(b for b, _ in ls)
    path = os.path.join(HERE, name + ".hex")
    with open(path, "w") as f:
        f.write(f"# {name}.hex - {title}\n")
        if extra:
            for line in extra.strip().split("\n"):
                f.write(f"# {line}\n" if line else "#\n")
        f.write(f"# {len(data)} bytes. Written by mkvectors.py; checked by tests/unit/test_vectors.c.\n")
        for b, c in ls:
            # Up to 20 bytes a line; a longer part continues on lines of 16.
            parts = [b] if len(b) <= 20 else [b[i : i + 16] for i in range(0, len(b), 16)]
            for i, part in enumerate(parts):
                hx = " ".join(f"{x:02x}" for x in part)
                if c and i == 0:
                    f.write(f"{hx:<60}# {c}\n")
                else:
                    f.write(hx + "\n")
    return data


# --------------------------------------------------------------------------
# Fixed inputs (PROTOCOL.md, "Worked examples", lists the same values)

SENDER, RECIPIENT, BROKER = "police.met.brixton", "cjit.lambeth", "dipx.broker"
ID1 = bytes.fromhex("00112233445566778899aabbccddeeff")
ID2 = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
CREATED = 1767225600000  # 2026-01-01T00:00:00Z in ms
EXPIRES = CREATED + 30 * 86400 * 1000
ACK_AT = CREATED + 60 * 1000
OUTCOME_AT = CREATED + 3600 * 1000
NONCE = bytes(range(24))
NONCE_PI = bytes(range(24, 48))
PROGRAMME_KEY = bytes([0x70]) * 32
BODY = b'{"form":"DT1","pnc":"2001/0012345H","result":"positive","drugs":["opiates","cocaine"]}'
BODY_PI = b"Risk to a named child at the address recorded in DIR 7731; see attached note."
MAX_FRAME = 1053672  # DIPX_MAX_FRAME

s_enc_pk, s_enc_sk = box_seed_keypair(bytes([1]) * 32)
s_sig_pk, s_sig_sk = sign_seed_keypair(bytes([2]) * 32)
r_enc_pk, r_enc_sk = box_seed_keypair(bytes([3]) * 32)
r_sig_pk, r_sig_sk = sign_seed_keypair(bytes([4]) * 32)

# The subject reference: keyed BLAKE2b-256, so that initials + DOB or a PNC
# id cannot be recovered by hashing candidates without the programme key.
SUBJ_MSG = b"dipx-v1-subject\0" + b"pnc" + b"\0" + b"2001/0012345H"
SUBJ = hashlib.blake2b(SUBJ_MSG, digest_size=32, key=PROGRAMME_KEY).digest()

EVENTS = ["accepted", "delivered", "acked", "actioned", "rejected", "expired",
          "dead_lettered", "redriven", "undeliverable"]


def header(pi=False):
    if not pi:
        return M([
            ("v", U(1, "protocol version")),
            ("id", B(ID1, "message id")),
            ("type", S("drug_test_result")),
            ("from", S(SENDER)),
            ("to", S(RECIPIENT)),
            ("subj", B(SUBJ, "subject reference (subject.hex)")),
            ("basis", S("statute")),
            ("ref", S("PACE s.63B")),
            ("purpose", S("law_enforcement")),
            ("cats", A([S("identifiers"), S("test_results")])),
            ("created", U(CREATED, "2026-01-01T00:00:00Z")),
            ("expires", U(EXPIRES, "created + 30 days")),
        ], "header")
    return M([
        ("v", U(1, "protocol version")),
        ("id", B(ID2, "message id")),
        ("type", S("safeguarding_disclosure")),
        ("from", S(RECIPIENT)),
        ("to", S(SENDER)),
        ("subj", B(SUBJ, "subject reference (subject.hex)")),
        ("basis", S("public_interest")),
        ("ref", S("PI-2026-0042")),
        ("purpose", S("safeguarding")),
        ("cats", A([S("identifiers"), S("risk")])),
        ("created", U(CREATED, "2026-01-01T00:00:00Z")),
        ("expires", U(CREATED + 86400 * 1000, "created + 1 day")),
        ("pi_by", S("J. Smith, CJIT team leader")),
        ("pi_approver", S("A. Jones, Head of Service")),
        ("pi_why", S("Credible threat of serious harm to a named child")),
    ], "header")


def envelope(hdr_node, frm, to, msg_id, body, nonce, shared, sign_sk, prefix):
    hdr = encode(hdr_node)
    hh = h_labelled("dipx-v1-header", hdr)
    inner_node = M([
        ("v", U(1)),
        ("id", B(msg_id, "= header id")),
        ("from", S(frm, "= header from")),
        ("to", S(to, "= header to")),
        ("hh", B(hh, "header hash")),
        ("body", B(body, "the payload")),
    ], "sealed plaintext")
    inner = encode(inner_node)
    box = box_easy_afternm(inner, nonce, shared)
    ct = nonce + box
    ph = h_labelled("dipx-v1-payload", ct)
    sigmsg = b"dipx-v1-envelope\0" + hh + ph
    sig = sign_detached(sigmsg, sign_sk)
    env_node = M([
        ("hdr", B(hdr, "header document", [hdr_node])),
        ("ct", B(ct, "nonce || box", [Raw(nonce, "nonce (24)"),
                                      Raw(box, "crypto_box_easy_afternm: MAC (16) || ciphertext")])),
        ("sig", B(sig, "Ed25519 over sigmsg")),
    ], "envelope")
    return inner_node, sigmsg, env_node


def main():
    write("subject", "subject reference of PNC id 2001/0012345H",
          [(SUBJ, "BLAKE2b-256, key = 32 x 0x70, over the message below")],
          f"""key  = {PROGRAMME_KEY.hex()}
message = "dipx-v1-subject" 00 "pnc" 00 "2001/0012345H"
        = {SUBJ_MSG.hex()}""")

    shared = box_beforenm(r_enc_pk, s_enc_sk)
    assert shared == box_beforenm(s_enc_pk, r_enc_sk)
    inner_node, sigmsg, env_node = envelope(header(), SENDER, RECIPIENT, ID1, BODY, NONCE,
                                            shared, s_sig_sk, "envelope")
    keys = f"""{SENDER}: enc seed 01 x 32, sign seed 02 x 32
  enc pk  {s_enc_pk.hex()}
  sign pk {s_sig_pk.hex()}
{RECIPIENT}: enc seed 03 x 32, sign seed 04 x 32
  enc pk  {r_enc_pk.hex()}
  sign pk {r_sig_pk.hex()}
shared key crypto_box_beforenm = {shared.hex()}
nonce = 00 01 .. 17 (fixed for this vector; real envelopes use a random nonce)"""
    write("envelope_inner", "the sealed plaintext of envelope.hex, before encryption",
          inner_node, "sealed by police.met.brixton for cjit.lambeth: see envelope.hex")
    write("envelope_sigmsg", "the 81 bytes envelope.hex's signature covers", [
        (b"dipx-v1-envelope\0", '"dipx-v1-envelope" NUL'),
        (sigmsg[17:49], "hh = BLAKE2b-256(\"dipx-v1-header\" NUL || hdr)"),
        (sigmsg[49:81], "ph = BLAKE2b-256(\"dipx-v1-payload\" NUL || ct)"),
    ])
    env = write("envelope", "a drug test result from police to the CJIT, statutory basis",
                env_node, keys + "\nsealed and signed by police.met.brixton for cjit.lambeth")

    # The public-interest example goes the other way (CJIT to police).
    inner_pi, sigmsg_pi, env_pi_node = envelope(header(True), RECIPIENT, SENDER, ID2, BODY_PI,
                                                NONCE_PI, shared, r_sig_sk, "envelope_pi")
    write("envelope_pi_inner", "the sealed plaintext of envelope_pi.hex, before encryption",
          inner_pi, "sealed by cjit.lambeth for police.met.brixton: see envelope_pi.hex")
    write("envelope_pi", "a safeguarding disclosure from the CJIT to police, public interest",
          env_pi_node, keys.replace("nonce = 00 01 .. 17", "nonce = 18 19 .. 2f")
          + "\nsealed and signed by cjit.lambeth for police.met.brixton")

    def frame(cmd, name, pairs):
        return A([U(1, "version"), U(cmd, name), M(pairs, "body")], "frame")

    ack_ids = [ID1, ID2]
    ack_stmt = (b"dipx-v1-ack\0" + bytes([len(RECIPIENT)]) + RECIPIENT.encode()
                + struct.pack(">QH", ACK_AT, len(ack_ids)) + b"".join(ack_ids))
    write("ack_statement", "the bytes the ACK in ack.hex signs", [
        (b"dipx-v1-ack\0", '"dipx-v1-ack" NUL'),
        (bytes([len(RECIPIENT)]), "length of the acknowledging agency's id"),
        (RECIPIENT.encode(), f'"{RECIPIENT}"'),
        (struct.pack(">Q", ACK_AT), f"at, uint64 big-endian: {ACK_AT}"),
        (struct.pack(">H", len(ack_ids)), "number of ids, uint16 big-endian"),
        (ID1, "id 1"),
        (ID2, "id 2"),
    ])
    ack_sig = sign_detached(ack_stmt, r_sig_sk)

    reason_rej = "Not known to this CJIT: wrong area"
    out_stmts = {}
    for ev, reason in (("actioned", ""), ("rejected", reason_rej)):
        out_stmts[ev] = (b"dipx-v1-outcome\0" + bytes([len(RECIPIENT)]) + RECIPIENT.encode() + ID1
                         + bytes([EVENTS.index(ev)]) + struct.pack(">QH", OUTCOME_AT, len(reason))
                         + reason.encode())
    write("outcome_statement", "the bytes the OUTCOME in outcome_rejected.hex signs", [
        (b"dipx-v1-outcome\0", '"dipx-v1-outcome" NUL'),
        (bytes([len(RECIPIENT)]), "length of the reporting agency's id"),
        (RECIPIENT.encode(), f'"{RECIPIENT}"'),
        (ID1, "message id"),
        (bytes([EVENTS.index("rejected")]), "event: 3 actioned, 4 rejected"),
        (struct.pack(">Q", OUTCOME_AT), f"at, uint64 big-endian: {OUTCOME_AT}"),
        (struct.pack(">H", len(reason_rej)), "reason length, uint16 big-endian"),
        (reason_rej.encode(), f'"{reason_rej}"'),
    ])

    frames = [
        ("hello", "HELLO: start a session, 64 deliveries in flight", frame(1, "HELLO", [
            ("window", U(64))])),
        ("welcome", "WELCOME: the broker grants a window of 64", frame(2, "WELCOME", [
            ("broker", S(BROKER)),
            ("max_frame", U(MAX_FRAME, "DIPX_MAX_FRAME")),
            ("window", U(64))])),
        ("send", "SEND: the envelope of envelope.hex", frame(3, "SEND", [
            ("env", B(env, "envelope.hex", [env_node]))])),
        ("accepted", "ACCEPTED: stored durably as sequence number 42", frame(4, "ACCEPTED", [
            ("id", B(ID1)),
            ("seq", U(42))])),
        ("refused", "REFUSED: code 22 (policy)", frame(5, "REFUSED", [
            ("id", B(ID1)),
            ("code", U(22, "policy")),
            ("reason", S("drug_test_result police -> treatment on basis statute: flow not allowed"))])),
        ("deliver", "DELIVER: envelope.hex, first attempt", frame(6, "DELIVER", [
            ("seq", U(42)),
            ("count", U(1, "first delivery")),
            ("env", B(env, "envelope.hex", [env_node]))])),
        ("ack", "ACK of two ids by cjit.lambeth, signed over ack_statement.hex", frame(7, "ACK", [
            ("ids", A([B(ID1), B(ID2)])),
            ("at", U(ACK_AT)),
            ("sig", B(ack_sig, "Ed25519, CJIT sign key (seed 04 x 32)"))])),
        ("receipt", "RECEIPT: accepted, no optional fields", frame(8, "RECEIPT", [
            ("id", B(ID1)),
            ("event", S("accepted")),
            ("at", U(CREATED + 123)),
            ("by", S(BROKER))])),
        ("receipt_full", "RECEIPT: expired, with every optional field", frame(8, "RECEIPT", [
            ("id", B(ID1)),
            ("event", S("expired")),
            ("at", U(EXPIRES)),
            ("by", S(BROKER)),
            ("code", U(26, "expired")),
            ("reason", S("expired before it was acknowledged")),
            ("count", U(3, "deliveries made"))])),
        ("error", "ERROR: an ACK naming a message not queued for this agency", frame(9, "ERROR", [
            ("code", U(34, "not_recipient")),
            ("cmd", U(7, "ACK")),
            ("reason", S("1 of 2 ids are not queued for this agency"))])),
        ("outcome_actioned", "OUTCOME actioned, no reason", frame(10, "OUTCOME", [
            ("id", B(ID1)),
            ("event", S("actioned")),
            ("at", U(OUTCOME_AT)),
            ("sig", B(sign_detached(out_stmts["actioned"], r_sig_sk), "Ed25519, CJIT sign key"))])),
        ("outcome_rejected", "OUTCOME rejected, signed over outcome_statement.hex", frame(10, "OUTCOME", [
            ("id", B(ID1)),
            ("event", S("rejected")),
            ("reason", S(reason_rej)),
            ("at", U(OUTCOME_AT)),
            ("sig", B(sign_detached(out_stmts["rejected"], r_sig_sk), "Ed25519, CJIT sign key"))])),
        ("track", "TRACK: ask for the history of a message", frame(11, "TRACK", [
            ("id", B(ID1))])),
        ("history", "HISTORY: second of three events", frame(12, "HISTORY", [
            ("id", B(ID1)),
            ("event", S("delivered")),
            ("at", U(CREATED + 456)),
            ("by", S(BROKER)),
            ("count", U(1)),
            ("index", U(1)),
            ("total", U(3))])),
    ]
    for name, title, node in frames:
        write(name, title, node)


if __name__ == "__main__":
    main()
