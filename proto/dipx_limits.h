/*  dipx_limits.h - every hard limit of dipx, with the reason for its value.

    Decoders check these before they read or allocate anything, so a length or
    count in hostile input is never trusted beyond them. Values that operators
    may lower (never raise) are in the broker config table; the ceiling is here.
    PROTOCOL.md section "Limits" repeats this table: keep them in step.
*/
#ifndef DIPX_LIMITS_H_INCLUDED
#define DIPX_LIMITS_H_INCLUDED

/*  Protocol version spoken by this code. A peer that sends another version
    gets DIPX_E_VERSION; there is no negotiation in v1.  */
#define DIPX_PROTO_VERSION 1

/*  Largest payload (plaintext) in one message: a Drug Interventions Record with
    its updates is tens of kilobytes; 1 MiB leaves room for scanned forms while
    keeping one frame well inside memory and one LMDB write cheap.  */
#define DIPX_MAX_BODY (1024u * 1024u)

/*  Agency ids ("police.met.custody-brixton"): long enough for org + site.  */
#define DIPX_MAX_AGENCY_ID 64

/*  Message type names ("drug_test_result_prosecution" is 28).  */
#define DIPX_MAX_TYPE 48

/*  Basis reference: a statute citation, court order number or consent id.  */
#define DIPX_MAX_REF 128

/*  Public-interest decision: decision-maker and approver names/roles, and the
    justification, which DPA 2018 s.62 wants logged with the disclosure.  */
#define DIPX_MAX_PI_NAME 128
#define DIPX_MAX_PI_WHY 1024

/*  Reason text in REFUSED and ERROR replies (broker-written, short).  */
#define DIPX_MAX_REASON 256

/*  Data categories per message: there are 8 defined categories.  */
#define DIPX_MAX_CATS 8

/*  Message ids acknowledged by one ACK: one signature covers them all; 256
    keeps an ACK under 5 KiB and a broker batch bounded.  */
#define DIPX_MAX_ACK_IDS 256

/*  Messages the broker may have in flight to one receiving session. Bounds the
    broker's per-session memory and the recipient's receive buffer.  */
#define DIPX_MAX_WINDOW 1024

/*  Events in one message's history (TRACK answer): accepted, up to the
    dead-letter threshold of deliveries, ack, outcome, redrives; 256 is ample
    and bounds the answer.  */
#define DIPX_MAX_HISTORY 256

/*  Nesting: a frame is array > body map > array of ids; nothing needs more.  */
#define DIPX_MAX_DEPTH 3

/*  Elements in any one array or map: the largest is an ACK's id list.  */
#define DIPX_MAX_CONTAINER DIPX_MAX_ACK_IDS

/*  Fields in any map we define: the header has 15, a stored audit record
    up to 22; a decoder's presence bitmask is 32 bits.  */
#define DIPX_MAX_FIELDS 24

/*  Encoded header: the worst case with minimal encodings is under 2 KiB
    (checked below); 4 KiB allows a sender's wider integer and string headers.  */
#define DIPX_MAX_HDR 4096

/*  Sealed plaintext: the body plus its own small map (id, from, to, hh).  */
#define DIPX_INNER_OVERHEAD 512
#define DIPX_MAX_INNER (DIPX_MAX_BODY + DIPX_INNER_OVERHEAD)

/*  Ciphertext: 24-byte nonce + 16-byte Poly1305 tag + sealed plaintext.  */
#define DIPX_NONCE_BYTES 24
#define DIPX_MAC_BYTES 16
#define DIPX_MAX_CT (DIPX_MAX_INNER + DIPX_NONCE_BYTES + DIPX_MAC_BYTES)

/*  Envelope: map of hdr, ct and sig with their msgpack headers.  */
#define DIPX_ENV_OVERHEAD 128
#define DIPX_MAX_ENV (DIPX_MAX_HDR + DIPX_MAX_CT + 64 + DIPX_ENV_OVERHEAD)

/*  One frame: the largest is DELIVER (envelope + seq + count + map).  */
#define DIPX_FRAME_OVERHEAD 256
#define DIPX_MAX_FRAME (DIPX_MAX_ENV + DIPX_FRAME_OVERHEAD)

/*  Time: created-at may lead the broker's clock by this much (clock skew
    between agencies' machines); a message may live at most this long.  */
#define DIPX_MAX_CLOCK_SKEW_MS (5ull * 60 * 1000)
#define DIPX_MAX_TTL_MS (366ull * 24 * 3600 * 1000)

/*  Agency cards: a card is about 500 bytes; 2 KiB is generous. Registry: the
    bench runs 10,000 agencies; England and Wales have a few thousand.  */
#define DIPX_MAX_CARD_BYTES 2048
#define DIPX_MAX_NAME 128
#define DIPX_MAX_CODE 16
#define DIPX_MAX_AGENCIES 50000
#define DIPX_MAX_REGISTRY_BYTES (64u * 1024u * 1024u)

/*  Policy file: the DIP table is ~30 rules; areas add a few.  */
#define DIPX_MAX_POLICY_RULES 1024
#define DIPX_MAX_POLICY_BYTES (1024u * 1024u)
#define DIPX_MAX_LINE 1024

/*  Config and secret key files.  */
#define DIPX_MAX_CONFIG_BYTES (64u * 1024u)
#define DIPX_MAX_SECRET_BYTES 1024

/*  Broker: operations committed in one LMDB transaction (one fsync). Bounds
    the latency of a group and the memory it holds.  */
#define DIPX_MAX_BATCH 512

/*  Broker: sessions (connected agencies' sockets) tracked at once.  */
#define DIPX_MAX_SESSIONS 65536

/*  Stored records: a message record is a fixed header, two agency ids and
    the envelope; an audit record is a map of short fields.  */
#define DIPX_MAX_AUDIT_REC 4096

/*  Client library: sends posted and not yet collected (answered or not). The
    public API promises 1024 (dipx_client.h): enough to keep a broker's
    group commit full at a few ms per round trip. Each holds its SEND frame
    until answered, so the worst case is 1024 maximum-size envelopes.  */
#define DIPX_MAX_PENDING 1024

/*  Client library: ACK and OUTCOME frames held while the connection is down,
    written after the next HELLO; two per message of a full window.  */
#define DIPX_MAX_CONTROL (2 * DIPX_MAX_WINDOW)

/*  Client library: receipts waiting for dipx_client_receipt. A sender that
    never reads them keeps this many; newer ones are dropped and counted.  */
#define DIPX_MAX_RECEIPTS 4096

/*  Client library: shared keys (crypto_box_beforenm) cached, one per peer, in
    one sodium_malloc'd block; replaced round-robin beyond this. An agency
    exchanges with tens of peers, a bench client with a few hundred.  */
#define DIPX_MAX_PEER_CACHE 256

/*  Client library: entries in a durable outbox (dipx_options_t.outbox), sent
    or not. A custody suite sends a few hundred messages a day, so a million
    is years of a busy site's traffic with the broker unreachable: far beyond
    any outage, yet it bounds the disk an outbox may take and how long its
    backlog takes to drain. Beyond it a post is refused (DIPX_E_BUSY).  */
#define DIPX_MAX_OUTBOX 1000000u

/*  Client library: an outbox's LMDB map starts at 64 MiB (address space
    only: the file grows as it is written) and doubles whenever a write finds
    it full, up to 4 GiB: room for a million small envelopes (about 550 bytes
    each on LMDB pages, measured), some 170,000 of 20 KiB, or 4,000 of the
    largest. A write beyond it fails with DIPX_E_STORAGE_FULL.  */
#define DIPX_OUTBOX_MAP_INITIAL (64ull * 1024 * 1024)
#define DIPX_MAX_OUTBOX_MAP (4ull * 1024 * 1024 * 1024)

/*  Sizes of fixed binary fields.  */
#define DIPX_ID_BYTES 16
#define DIPX_HASH_BYTES 32
#define DIPX_SUBJ_BYTES 32
#define DIPX_SIG_BYTES 64
#define DIPX_KEY_BYTES 32

/*  Minimal-encoding size of the largest legal header (15 fields, every
    string at its maximum, 8 categories of up to 19 characters).  */
#define DIPX__HDR_WORST                                                                            \
    (3 + 3 + (3 + 18) + (5 + 2 + DIPX_MAX_TYPE) + (5 + 2 + DIPX_MAX_AGENCY_ID)                     \
     + (3 + 2 + DIPX_MAX_AGENCY_ID) + (5 + 2 + DIPX_SUBJ_BYTES) + (6 + 16) + (4 + 2 + DIPX_MAX_REF) \
     + (8 + 20) + (5 + 1 + DIPX_MAX_CATS * 20) + (8 + 9) + (8 + 9) + (6 + 2 + DIPX_MAX_PI_NAME)    \
     + (12 + 2 + DIPX_MAX_PI_NAME) + (7 + 3 + DIPX_MAX_PI_WHY))

_Static_assert (DIPX__HDR_WORST < DIPX_MAX_HDR, "header limit below worst-case header");
_Static_assert (DIPX_MAX_FRAME < 2u * 1024u * 1024u, "frame limit grew past 2 MiB");
_Static_assert (DIPX_MAX_CONTAINER >= DIPX_MAX_ACK_IDS, "container limit below ACK ids");
_Static_assert (DIPX_MAX_CONTAINER >= DIPX_MAX_FIELDS, "container limit below field count");
_Static_assert (DIPX_MAX_ACK_IDS * (DIPX_ID_BYTES + 2) + 256 < DIPX_MAX_FRAME, "ACK too big");
_Static_assert (DIPX_MAX_FIELDS <= 32, "presence bitmask is 32 bits");
_Static_assert (DIPX_MAX_AGENCY_ID < 255, "agency ids are stored with a one-byte length");
_Static_assert (DIPX_MAX_OUTBOX >= DIPX_MAX_PENDING, "an outbox must hold a full pending table");
_Static_assert (DIPX_OUTBOX_MAP_INITIAL >= 16ull * DIPX_MAX_ENV, "outbox map below a few envelopes");
_Static_assert (DIPX_OUTBOX_MAP_INITIAL <= DIPX_MAX_OUTBOX_MAP, "outbox map starts above its ceiling");

#endif
