/*  test_malformed.c - what the decoders refuse, and with which code.

    Three tables of inputs, written in the byte notation of proto_fixture.h,
    each row with the exact code its decoder must return: frames
    (dipx_frame_decode), envelopes and their headers (dipx_envelope_decode),
    and sealed plaintexts (dipx_envelope_open, sealed and signed here with the
    vectors' keys so that only the plaintext is wrong). Rows expecting 0 pin
    down what the decoders deliberately accept (non-minimal encodings, any
    key order), so that an independent implementation can match both sides.

    Every row is also decoded with allocation counting on (malloc, calloc and
    realloc are wrapped at link time, see proto.cmake): a decoder must reject
    hostile input having allocated nothing, whatever counts it claims.

    Then the envelope crypto negatives, a sweep flipping every bit of a sealed
    envelope, and allocation failures injected into seal and open.

    DIPX_DUMP_CORPUS=<dir> writes every row into <dir>/fuzz_frame/,
    <dir>/fuzz_envelope/ and <dir>/fuzz_inner/ as seeds for the fuzz targets.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "unit/proto_fixture.h"

/*  --- allocation hooks -------------------------------------------------------  */

void *__real_malloc (size_t n);
void *__real_calloc (size_t n, size_t size);
void *__real_realloc (void *p, size_t n);
void *__wrap_malloc (size_t n);
void *__wrap_calloc (size_t n, size_t size);
void *__wrap_realloc (void *p, size_t n);

static int s_counting;     /* count allocations now */
static long s_allocs;      /* allocations counted */
static long s_fail_at = -1; /* fail the allocation with this number, or -1 */

static int
s_hook (void)
{
    if (!s_counting)
        return 0;
    return s_allocs++ == s_fail_at;
}

void *
__wrap_malloc (size_t n)
{
    return s_hook () ? NULL : __real_malloc (n);
}

void *
__wrap_calloc (size_t n, size_t size)
{
    return s_hook () ? NULL : __real_calloc (n, size);
}

void *
__wrap_realloc (void *p, size_t n)
{
    return s_hook () ? NULL : __real_realloc (p, n);
}

/*  --- tables -------------------------------------------------------------------  */

/*  Rows below spell out counts just over the limits.  */
_Static_assert (DIPX_MAX_FIELDS == 24, "update the rows about DIPX_MAX_FIELDS");
_Static_assert (DIPX_MAX_CONTAINER == 256, "update the rows about DIPX_MAX_CONTAINER");
_Static_assert (DIPX_MAX_FRAME == 1053672, "update the rows about DIPX_MAX_FRAME");
_Static_assert (DIPX_MAX_ENV == 1053416, "update the rows about DIPX_MAX_ENV");
_Static_assert (DIPX_MAX_CT == 1049128, "update the rows about DIPX_MAX_CT");
_Static_assert (DIPX_MAX_TTL_MS == 31622400000ull, "update the rows about DIPX_MAX_TTL_MS");

typedef struct {
    const char *what; /* one line: what is wrong */
    int code;         /* what the decoder must return */
    const char *in;   /* the input, in fx_bytes_parse notation */
} s_row_t;

#define ROWS(t) (sizeof (t) / sizeof ((t)[0]))

/*  Frames. HELLO is the usual carrier because its body is one field.  */
#define HELLO(body) "93 01 01 " body
#define F_WINDOW(v) HELLO ("81 'window' " v)
#define ID16 "b(00112233445566778899aabbccddeeff)"
#define WELCOME(broker, max_frame)                                                                 \
    "93 01 02 83 'broker' " broker " 'max_frame' " max_frame " 'window' 40"
#define ACCEPTED(body) "93 01 04 " body
#define REFUSED(code, reason) "93 01 05 83 'id' " ID16 " 'code' " code " 'reason' " reason
#define DELIVER(seq, count) "93 01 06 83 'seq' " seq " 'count' " count " 'env' b(00)"
#define ACK(ids, sig) "93 01 07 83 'ids' " ids " 'at' 00 'sig' " sig
#define RECEIPT(extra_n, extra)                                                                    \
    "93 01 08 8" extra_n " 'id' " ID16 " 'event' 'accepted' 'at' 00 'by' 'dipx.broker'" extra
#define ERROR(code, cmd) "93 01 09 83 'code' " code " 'cmd' " cmd " 'reason' ''"
#define OUTCOME(n, fields) "93 01 0a 8" n " 'id' " ID16 " 'at' 00" fields
#define SIG64 " 'sig' b(00*64)"
#define HISTORY(index, total)                                                                      \
    "93 01 0c 86 'id' " ID16 " 'event' 'delivered' 'at' 00 'by' 'dipx.broker' 'index' " index     \
    " 'total' " total

static const s_row_t s_frame_rows[] = {
    /* pass 1: structure */
    {"empty input", DIPX_E_TRUNCATED, ""},
    {"0xc1, the one byte msgpack never uses", DIPX_E_MALFORMED, "c1"},
    {"0xc1 inside the body", DIPX_E_MALFORMED, F_WINDOW ("c1")},
    {"array claims 3 elements, has 2", DIPX_E_TRUNCATED, "93 01 01"},
    {"map key without its value", DIPX_E_TRUNCATED, HELLO ("81 'window'")},
    {"str header claims 6 bytes, 3 follow", DIPX_E_TRUNCATED, HELLO ("81 a6 77 69 6e")},
    {"uint64 cut short", DIPX_E_TRUNCATED, F_WINDOW ("cf 00 00 00")},
    {"array32 header claims 4G elements (5 bytes in all)", DIPX_E_COUNT, "dd ff ff ff ff"},
    {"map32 header claims 4G pairs", DIPX_E_COUNT, "df ff ff ff ff"},
    {"array16 of 257 with no elements: count before bytes", DIPX_E_COUNT, "dc 01 01"},
    {"map16 of 257 pairs inside a body", DIPX_E_COUNT, HELLO ("de 01 01")},
    {"array32 of 3 with 2 elements", DIPX_E_TRUNCATED, "dd 00 00 00 03 01 01"},
    {"bin32 claims 4 GiB", DIPX_E_TRUNCATED, "93 01 03 81 'env' c6 ff ff ff ff 00"},
    {"ext8 claims 255 bytes", DIPX_E_TRUNCATED, F_WINDOW ("c7 ff 00")},
    {"one byte after the frame", DIPX_E_TRAILING, F_WINDOW ("40 00")},
    {"a second frame after the first", DIPX_E_TRAILING, F_WINDOW ("40") F_WINDOW ("40")},
    {"arrays nested 4 deep", DIPX_E_DEPTH, "91 91 91 91 c0"},
    {"ACK id list inside another list: depth 4", DIPX_E_DEPTH,
     ACK ("91 91 b(00*16)", "b(00*64)")},
    {"empty map at depth 4", DIPX_E_DEPTH, "93 01 07 81 'ids' 91 80"},
    {"depth is checked before count", DIPX_E_DEPTH, "91 91 91 dd ff ff ff ff"},
    /* the outer array */
    {"frame is a map", DIPX_E_TYPE, "81 'window' 40"},
    {"frame is nil", DIPX_E_TYPE, "c0"},
    {"frame is a str", DIPX_E_TYPE, "'HELLO'"},
    {"frame array of 2", DIPX_E_TYPE, "92 01 01"},
    {"frame array of 4 (extra element)", DIPX_E_TYPE, "94 01 01 81 'window' 40 c0"},
    {"frame array of 0", DIPX_E_TYPE, "90"},
    {"accepted: frame as array16", 0, "dc 00 03 01 01 81 'window' 40"},
    {"accepted: frame as array32", 0, "dd 00 00 00 03 01 01 81 'window' 40"},
    /* version */
    {"version 2", DIPX_E_VERSION, "93 02 01 81 'window' 40"},
    {"version 0", DIPX_E_VERSION, "93 00 01 81 'window' 40"},
    {"version 257 as uint16", DIPX_E_VERSION, "93 cd 01 01 01 81 'window' 40"},
    {"version before command", DIPX_E_VERSION, "93 02 63 c0"},
    {"version as str", DIPX_E_TYPE, "93 '1' 01 81 'window' 40"},
    {"version as negative fixint", DIPX_E_TYPE, "93 ff 01 81 'window' 40"},
    {"version 1 as int8: signed types are refused", DIPX_E_TYPE, "93 d0 01 01 81 'window' 40"},
    {"version as nil", DIPX_E_TYPE, "93 c0 01 81 'window' 40"},
    {"accepted: version 1 as uint64", 0, "93 cf 00 00 00 00 00 00 00 01 01 81 'window' 40"},
    /* command */
    {"command 0", DIPX_E_COMMAND, "93 01 00 80"},
    {"command 13, one past HISTORY", DIPX_E_COMMAND, "93 01 0d 80"},
    {"command 32, reserved for consent", DIPX_E_COMMAND, "93 01 20 80"},
    {"command 47, reserved for consent", DIPX_E_COMMAND, "93 01 2f 80"},
    {"command 48, reserved for audit", DIPX_E_COMMAND, "93 01 30 80"},
    {"command 63, reserved for audit", DIPX_E_COMMAND, "93 01 3f 80"},
    {"command 255", DIPX_E_COMMAND, "93 01 cc ff 80"},
    {"command 257 (1 mod 256)", DIPX_E_COMMAND, "93 01 cd 01 01 81 'window' 40"},
    {"command 2^32 + 1", DIPX_E_COMMAND, "93 01 cf 00 00 00 01 00 00 00 01 81 'window' 40"},
    {"command before body", DIPX_E_COMMAND, "93 01 63 c0"},
    {"command as str", DIPX_E_TYPE, "93 01 'HELLO' 81 'window' 40"},
    {"command as bool", DIPX_E_TYPE, "93 01 c3 81 'window' 40"},
    /* body: the map */
    {"body is an array", DIPX_E_TYPE, HELLO ("91 40")},
    {"body is nil", DIPX_E_TYPE, HELLO ("c0")},
    {"body is a bin", DIPX_E_TYPE, HELLO ("b(81)")},
    {"body of 25 pairs: over DIPX_MAX_FIELDS", DIPX_E_COUNT, HELLO ("de 00 19 {a0 c0}*25")},
    {"body of 24 pairs, all empty keys: the first unknown wins", DIPX_E_UNKNOWN_FIELD,
     HELLO ("de 00 18 {a0 c0}*24")},
    {"accepted: body as map16", 0, HELLO ("de 00 01 'window' 40")},
    {"accepted: body as map32", 0, HELLO ("df 00 00 00 01 'window' 40")},
    /* body: keys */
    {"key is a uint", DIPX_E_TYPE, HELLO ("81 01 40")},
    {"key is a bin holding \"window\"", DIPX_E_TYPE, HELLO ("81 b(77 69 6e 64 6f 77) 40")},
    {"key is nil", DIPX_E_TYPE, HELLO ("81 c0 40")},
    {"unknown key", DIPX_E_UNKNOWN_FIELD, HELLO ("82 'window' 40 'extra' 00")},
    {"keys are case-sensitive", DIPX_E_UNKNOWN_FIELD, HELLO ("81 'Window' 40")},
    {"a key's prefix is not the key", DIPX_E_UNKNOWN_FIELD, HELLO ("81 'wind' 40")},
    {"key with a trailing NUL", DIPX_E_UNKNOWN_FIELD, HELLO ("81 s(77 69 6e 64 6f 77 00) 40")},
    {"empty key", DIPX_E_UNKNOWN_FIELD, HELLO ("82 'window' 40 '' 40")},
    {"a field of another command", DIPX_E_UNKNOWN_FIELD, HELLO ("82 'window' 40 'seq' 01")},
    {"unknown key is reported before missing fields", DIPX_E_UNKNOWN_FIELD, HELLO ("81 'x' 00")},
    {"duplicate key", DIPX_E_DUP_FIELD, HELLO ("82 'window' 40 'window' 40")},
    {"duplicate key, same value in another encoding", DIPX_E_DUP_FIELD,
     HELLO ("82 'window' 40 'window' cc 40")},
    {"accepted: key as str8", 0, HELLO ("81 d9 06 77 69 6e 64 6f 77 40")},
    {"accepted: key as str16", 0, HELLO ("81 da 00 06 77 69 6e 64 6f 77 40")},
    {"missing field", DIPX_E_MISSING_FIELD, HELLO ("80")},
    /* body: values of the wrong type (each reaches pass 2 intact) */
    {"uint field holds str", DIPX_E_TYPE, F_WINDOW ("'64'")},
    {"uint field holds true", DIPX_E_TYPE, F_WINDOW ("c3")},
    {"uint field holds nil", DIPX_E_TYPE, F_WINDOW ("c0")},
    {"uint field holds negative fixint", DIPX_E_TYPE, F_WINDOW ("ff")},
    {"uint field holds int8 64", DIPX_E_TYPE, F_WINDOW ("d0 40")},
    {"uint field holds int64 64", DIPX_E_TYPE, F_WINDOW ("d3 00 00 00 00 00 00 00 40")},
    {"uint field holds float32", DIPX_E_TYPE, F_WINDOW ("ca 42 80 00 00")},
    {"uint field holds float64", DIPX_E_TYPE, F_WINDOW ("cb 40 50 00 00 00 00 00 00")},
    {"uint field holds bin", DIPX_E_TYPE, F_WINDOW ("b(40)")},
    {"uint field holds fixext1", DIPX_E_TYPE, F_WINDOW ("d4 01 40")},
    {"uint field holds ext8", DIPX_E_TYPE, F_WINDOW ("c7 01 01 40")},
    {"uint field holds an empty array", DIPX_E_TYPE, F_WINDOW ("90")},
    {"uint field holds an empty map", DIPX_E_TYPE, F_WINDOW ("80")},
    {"accepted: uint as uint8", 0, F_WINDOW ("cc 40")},
    {"accepted: uint as uint16", 0, F_WINDOW ("cd 00 40")},
    {"accepted: uint as uint32", 0, F_WINDOW ("ce 00 00 00 40")},
    {"accepted: uint as uint64", 0, F_WINDOW ("cf 00 00 00 00 00 00 00 40")},
    /* body: values out of range */
    {"HELLO window 1025 > DIPX_MAX_WINDOW", DIPX_E_VALUE, F_WINDOW ("cd 04 01")},
    {"HELLO window 2^64 - 1", DIPX_E_VALUE, F_WINDOW ("cf ff ff ff ff ff ff ff ff")},
    {"accepted: HELLO window 1024", 0, F_WINDOW ("cd 04 00")},
    {"accepted: HELLO window 0 (send only)", 0, F_WINDOW ("00")},
    {"first error in key order: value before duplicate", DIPX_E_VALUE,
     HELLO ("82 'window' cd 04 01 'window' 40")},
    {"WELCOME broker uppercase", DIPX_E_VALUE, WELCOME ("'Dipx.broker'", "ce 00 10 13 e8")},
    {"WELCOME broker starts with a dot", DIPX_E_VALUE, WELCOME ("'.dipx'", "ce 00 10 13 e8")},
    {"WELCOME broker with a space", DIPX_E_VALUE, WELCOME ("'dipx broker'", "ce 00 10 13 e8")},
    {"WELCOME broker with a slash", DIPX_E_VALUE, WELCOME ("'dipx/broker'", "ce 00 10 13 e8")},
    {"WELCOME broker with a NUL", DIPX_E_VALUE, WELCOME ("s(61 00 62)", "ce 00 10 13 e8")},
    {"WELCOME broker empty", DIPX_E_FIELD_LENGTH, WELCOME ("''", "ce 00 10 13 e8")},
    {"WELCOME broker of 65 characters", DIPX_E_FIELD_LENGTH,
     WELCOME ("s(61*65)", "ce 00 10 13 e8")},
    {"accepted: WELCOME broker of 64 characters", 0, WELCOME ("s(61*64)", "ce 00 10 13 e8")},
    {"accepted: WELCOME broker 'a-b_c.9'", 0, WELCOME ("'a-b_c.9'", "ce 00 10 13 e8")},
    {"WELCOME max_frame 0", DIPX_E_VALUE, WELCOME ("'dipx.broker'", "00")},
    {"WELCOME max_frame DIPX_MAX_FRAME + 1", DIPX_E_VALUE, WELCOME ("'dipx.broker'", "ce 00 10 13 e9")},
    {"accepted: WELCOME fields in reverse order", 0,
     "93 01 02 83 'window' 40 'max_frame' 01 'broker' 'dipx.broker'"},
    {"SEND env empty", DIPX_E_FIELD_LENGTH, "93 01 03 81 'env' b()"},
    {"SEND env as str", DIPX_E_TYPE, "93 01 03 81 'env' 'x'"},
    {"SEND env as a map: envelopes travel as bin", DIPX_E_TYPE, "93 01 03 81 'env' 80"},
    {"accepted: SEND env of one byte (frames do not open envelopes)", 0,
     "93 01 03 81 'env' b(00)"},
    {"ACCEPTED id of 15 bytes", DIPX_E_FIELD_LENGTH, ACCEPTED ("82 'id' b(00*15) 'seq' 01")},
    {"ACCEPTED id of 17 bytes", DIPX_E_FIELD_LENGTH, ACCEPTED ("82 'id' b(00*17) 'seq' 01")},
    {"ACCEPTED id as str of 16", DIPX_E_TYPE, ACCEPTED ("82 'id' s(30*16) 'seq' 01")},
    {"ACCEPTED seq 0", DIPX_E_VALUE, ACCEPTED ("82 'id' " ID16 " 'seq' 00")},
    {"first error in key order: seq before id", DIPX_E_VALUE,
     ACCEPTED ("82 'seq' 00 'id' b(00*15)")},
    {"first error in key order: id before seq", DIPX_E_FIELD_LENGTH,
     ACCEPTED ("82 'id' b(00*15) 'seq' 00")},
    {"wrong type is reported before missing fields", DIPX_E_TYPE, ACCEPTED ("81 'id' 'x'")},
    {"accepted: ACCEPTED seq 2^64 - 1", 0,
     ACCEPTED ("82 'id' " ID16 " 'seq' cf ff ff ff ff ff ff ff ff")},
    {"REFUSED code 0", DIPX_E_VALUE, REFUSED ("00", "''")},
    {"REFUSED code 100: local codes never travel", DIPX_E_VALUE, REFUSED ("64", "''")},
    {"accepted: REFUSED code 99, unassigned wire code", 0, REFUSED ("63", "''")},
    {"REFUSED reason with a newline", DIPX_E_VALUE, REFUSED ("16", "s(61 0a 62)")},
    {"REFUSED reason with DEL", DIPX_E_VALUE, REFUSED ("16", "s(61 7f)")},
    {"REFUSED reason with UTF-8", DIPX_E_VALUE, REFUSED ("16", "s(63 61 66 c3 a9)")},
    {"REFUSED reason with a NUL", DIPX_E_VALUE, REFUSED ("16", "s(61 00)")},
    {"REFUSED reason of 257 characters", DIPX_E_FIELD_LENGTH, REFUSED ("16", "s(61*257)")},
    {"accepted: REFUSED reason of 256 characters", 0, REFUSED ("16", "s(61*256)")},
    {"accepted: REFUSED reason empty", 0, REFUSED ("16", "''")},
    {"accepted: REFUSED reason with edge spaces", 0, REFUSED ("16", "' a '")},
    {"REFUSED without reason", DIPX_E_MISSING_FIELD, "93 01 05 82 'id' " ID16 " 'code' 16"},
    {"DELIVER count 0", DIPX_E_VALUE, DELIVER ("01", "00")},
    {"DELIVER count 2^32", DIPX_E_VALUE, DELIVER ("01", "cf 00 00 00 01 00 00 00 00")},
    {"DELIVER seq 0", DIPX_E_VALUE, DELIVER ("00", "01")},
    {"accepted: DELIVER count 2^32 - 1", 0, DELIVER ("01", "ce ff ff ff ff")},
    {"ACK with no ids", DIPX_E_COUNT, ACK ("90", "b(00*64)")},
    {"ACK with 257 ids", DIPX_E_COUNT, ACK ("dc 01 01 {c4 10 00*16}*257", "b(00*64)")},
    {"accepted: ACK with 256 ids", 0, ACK ("dc 01 00 {c4 10 00*16}*256", "b(00*64)")},
    {"ACK id of 15 bytes", DIPX_E_FIELD_LENGTH, ACK ("91 b(00*15)", "b(00*64)")},
    {"ACK id as str", DIPX_E_TYPE, ACK ("91 s(00*16)", "b(00*64)")},
    {"ACK ids not a list", DIPX_E_TYPE, ACK ("b(00*16)", "b(00*64)")},
    {"ACK signature of 63 bytes", DIPX_E_FIELD_LENGTH, ACK ("91 b(00*16)", "b(00*63)")},
    {"ACK signature of 65 bytes", DIPX_E_FIELD_LENGTH, ACK ("91 b(00*16)", "b(00*65)")},
    {"accepted: ACK repeating an id", 0, ACK ("92 b(00*16) b(00*16)", "b(00*64)")},
    {"RECEIPT event unknown", DIPX_E_VALUE,
     "93 01 08 84 'id' " ID16 " 'event' 'read' 'at' 00 'by' 'dipx.broker'"},
    {"RECEIPT event in capitals", DIPX_E_VALUE,
     "93 01 08 84 'id' " ID16 " 'event' 'ACCEPTED' 'at' 00 'by' 'dipx.broker'"},
    {"RECEIPT event as a number", DIPX_E_TYPE,
     "93 01 08 84 'id' " ID16 " 'event' 00 'at' 00 'by' 'dipx.broker'"},
    {"RECEIPT by empty", DIPX_E_FIELD_LENGTH,
     "93 01 08 84 'id' " ID16 " 'event' 'accepted' 'at' 00 'by' ''"},
    {"RECEIPT code 0", DIPX_E_VALUE, RECEIPT ("5", " 'code' 00")},
    {"RECEIPT count 2^32", DIPX_E_VALUE, RECEIPT ("5", " 'count' cf 00 00 00 01 00 00 00 00")},
    {"RECEIPT reason of 257", DIPX_E_FIELD_LENGTH, RECEIPT ("5", " 'reason' s(61*257)")},
    {"RECEIPT with HISTORY's index", DIPX_E_UNKNOWN_FIELD, RECEIPT ("5", " 'index' 00")},
    {"RECEIPT without by", DIPX_E_MISSING_FIELD,
     "93 01 08 83 'id' " ID16 " 'event' 'accepted' 'at' 00"},
    {"accepted: RECEIPT count 0", 0, RECEIPT ("5", " 'count' 00")},
    {"ERROR cmd 256", DIPX_E_VALUE, ERROR ("0d", "cd 01 00")},
    {"ERROR code 100", DIPX_E_VALUE, ERROR ("64", "00")},
    {"accepted: ERROR cmd 0 (command unknown)", 0, ERROR ("0d", "00")},
    {"accepted: ERROR cmd 255", 0, ERROR ("0d", "cc ff")},
    {"OUTCOME event acked: only actioned or rejected", DIPX_E_VALUE,
     OUTCOME ("4", " 'event' 'acked'" SIG64)},
    {"OUTCOME event unknown", DIPX_E_VALUE, OUTCOME ("4", " 'event' 'done'" SIG64)},
    {"OUTCOME rejected without reason", DIPX_E_MISSING_FIELD,
     OUTCOME ("4", " 'event' 'rejected'" SIG64)},
    {"missing fields before cross-field rules", DIPX_E_MISSING_FIELD,
     OUTCOME ("3", " 'event' 'acked'")},
    {"accepted: OUTCOME rejected with empty reason", 0,
     OUTCOME ("5", " 'event' 'rejected' 'reason' ''" SIG64)},
    {"accepted: OUTCOME actioned with reason", 0,
     OUTCOME ("5", " 'event' 'actioned' 'reason' 'done'" SIG64)},
    {"TRACK with a seq", DIPX_E_UNKNOWN_FIELD, "93 01 0b 82 'id' " ID16 " 'seq' 01"},
    {"TRACK without id", DIPX_E_MISSING_FIELD, "93 01 0b 80"},
    {"HISTORY index = total", DIPX_E_VALUE, HISTORY ("03", "03")},
    {"HISTORY index > total", DIPX_E_VALUE, HISTORY ("05", "03")},
    {"HISTORY total 0", DIPX_E_VALUE, HISTORY ("00", "00")},
    {"HISTORY total 257", DIPX_E_VALUE, HISTORY ("00", "cd 01 01")},
    {"HISTORY index 256", DIPX_E_VALUE, HISTORY ("cd 01 00", "cd 01 00")},
    {"accepted: HISTORY index 255 of 256", 0, HISTORY ("cc ff", "cd 01 00")},
    {"HISTORY without index", DIPX_E_MISSING_FIELD,
     "93 01 0c 85 'id' " ID16 " 'event' 'delivered' 'at' 00 'by' 'dipx.broker' 'total' 01"},
    /* sizes */
    {"frame over DIPX_MAX_FRAME", DIPX_E_FRAME_SIZE, "93 01 03 81 'env' b(00*1053663)"},
    {"frame size is checked first, even of garbage", DIPX_E_FRAME_SIZE, "c1*1053673"},
    {"SEND env over DIPX_MAX_ENV", DIPX_E_FIELD_LENGTH, "93 01 03 81 'env' b(00*1053417)"},
    {"accepted: SEND env of DIPX_MAX_ENV", 0, "93 01 03 81 'env' b(00*1053416)"},
};

/*  Headers. Field order is free, so each row puts its odd field last and the
    valid others first (HX_<field>: every field but that one).  */
#define H_V " 'v' 01"
#define H_ID " 'id' " ID16
#define H_TYPE " 'type' 'drug_test_result'"
#define H_FROM " 'from' 'police.met.brixton'"
#define H_TO " 'to' 'cjit.lambeth'"
#define H_SUBJ " 'subj' b(bb*32)"
#define H_BASIS " 'basis' 'statute'"
#define H_REF " 'ref' 'PACE s.63B'"
#define H_PURPOSE " 'purpose' 'law_enforcement'"
#define H_CATS " 'cats' 92 'identifiers' 'test_results'"
#define H_CREATED " 'created' cf 00 00 01 9b 76 da a8 00"
#define H_EXPIRES " 'expires' cf 00 00 01 9c 11 59 70 00"
#define H_PI " 'pi_by' 'J. Smith' 'pi_approver' 'A. Jones' 'pi_why' 'Credible threat'"
#define HX_TIMES H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS
#define HX_EXPIRES HX_TIMES H_CREATED
#define H_ALL HX_EXPIRES H_EXPIRES
#define HX_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_ID H_V H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_TYPE H_V H_ID H_FROM H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_FROM H_V H_ID H_TYPE H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_TO H_V H_ID H_TYPE H_FROM H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_SUBJ H_V H_ID H_TYPE H_FROM H_TO H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_BASIS H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_REF H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_PURPOSE H_CATS H_CREATED H_EXPIRES
#define HX_PURPOSE H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_REF H_CATS H_CREATED H_EXPIRES
#define HX_CATS H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_BASIS H_REF H_PURPOSE H_CREATED H_EXPIRES
#define HDR_OK "8c" H_ALL
/*  An envelope around a header, with a ciphertext and signature of the right
    sizes: decode checks no crypto.  */
#define ENV(hdr) "83 'hdr' b(" hdr ") 'ct' b(00*41) 'sig' b(00*64)"
#define E_HDR " 'hdr' b(" HDR_OK ")"
#define E_CT " 'ct' b(00*41)"
#define E_SIG " 'sig' b(00*64)"

static const s_row_t s_envelope_rows[] = {
    {"accepted: the reference header", 0, ENV (HDR_OK)},
    {"accepted: public interest with its three fields", 0,
     ENV ("8f" HX_BASIS " 'basis' 'public_interest'" H_PI)},
    /* the envelope map */
    {"envelope is an array", DIPX_E_TYPE, "93 b(" HDR_OK ") b(00*41) b(00*64)"},
    {"envelope is an empty map", DIPX_E_MISSING_FIELD, "80"},
    {"envelope without sig", DIPX_E_MISSING_FIELD, "82" E_HDR E_CT},
    {"envelope without hdr", DIPX_E_MISSING_FIELD, "82" E_CT E_SIG},
    {"envelope with an extra key", DIPX_E_UNKNOWN_FIELD, "84" E_HDR E_CT E_SIG " 'v' 01"},
    {"envelope with hdr twice", DIPX_E_DUP_FIELD, "84" E_HDR E_HDR E_CT E_SIG},
    {"envelope with a nested value: depth before schema", DIPX_E_DEPTH,
     "84" E_HDR E_CT E_SIG " 'x' 90"},
    {"hdr as a map, not a bin: depth 2 > 1", DIPX_E_DEPTH, "83 'hdr' " HDR_OK E_CT E_SIG},
    {"hdr as a str", DIPX_E_TYPE, "83 'hdr' s(" HDR_OK ")" E_CT E_SIG},
    {"hdr empty", DIPX_E_FIELD_LENGTH, "83 'hdr' b()" E_CT E_SIG},
    {"hdr over DIPX_MAX_HDR", DIPX_E_FIELD_LENGTH, "83 'hdr' b(00*4097)" E_CT E_SIG},
    {"ct of 40 bytes: nonce and MAC, no plaintext", DIPX_E_FIELD_LENGTH,
     "83" E_HDR " 'ct' b(00*40)" E_SIG},
    {"ct over DIPX_MAX_CT", DIPX_E_FIELD_LENGTH, "83" E_HDR " 'ct' b(00*1049129)" E_SIG},
    {"ct as str", DIPX_E_TYPE, "83" E_HDR " 'ct' s(00*41)" E_SIG},
    {"sig of 63 bytes", DIPX_E_FIELD_LENGTH, "83" E_HDR E_CT " 'sig' b(00*63)"},
    {"sig of 65 bytes", DIPX_E_FIELD_LENGTH, "83" E_HDR E_CT " 'sig' b(00*65)"},
    {"sig cut short", DIPX_E_TRUNCATED, "83" E_HDR E_CT " 'sig' c4 40 00*63"},
    {"a byte after the envelope", DIPX_E_TRAILING, ENV (HDR_OK) "00"},
    {"map32 header claims 4G pairs", DIPX_E_COUNT, "df ff ff ff ff"},
    {"accepted: keys in another order", 0, "83" E_SIG E_CT E_HDR},
    {"accepted: ct at DIPX_MAX_CT", 0, "83" E_HDR " 'ct' b(00*1049128)" E_SIG},
    /* the header document inside */
    {"header is an array", DIPX_E_TYPE, ENV ("93 01 02 03")},
    {"header cut short", DIPX_E_TRUNCATED, ENV ("8c" HX_EXPIRES " 'expires' cf 00 00 01")},
    {"a byte after the header, inside hdr", DIPX_E_TRAILING, ENV (HDR_OK "00")},
    {"header nested 3 deep", DIPX_E_DEPTH, ENV ("8c" HX_CATS " 'cats' 91 91 'identifiers'")},
    {"header of 25 fields: over DIPX_MAX_FIELDS", DIPX_E_COUNT,
     ENV ("de 00 19" H_ALL H_PI "{'x' 00}*10")},
    {"header with a duplicate (16 fields)", DIPX_E_DUP_FIELD, ENV ("de 00 10" H_ALL H_PI H_V)},
    {"header with an unknown field", DIPX_E_UNKNOWN_FIELD, ENV ("8d" H_ALL " 'note' 'x'")},
    {"header without id", DIPX_E_MISSING_FIELD, ENV ("8b" HX_ID)},
    {"header without cats", DIPX_E_MISSING_FIELD, ENV ("8b" HX_CATS)},
    {"accepted: header as map16", 0, ENV ("de 00 0c" H_ALL)},
    {"header v 2", DIPX_E_VERSION, ENV ("8c" HX_V " 'v' 02")},
    {"header v 0", DIPX_E_VERSION, ENV ("8c" HX_V " 'v' 00")},
    {"header v 257 (1 mod 256)", DIPX_E_VERSION, ENV ("8c" HX_V " 'v' cd 01 01")},
    {"accepted: header v 1 as uint64", 0, ENV ("8c" HX_V " 'v' cf 00 00 00 00 00 00 00 01")},
    {"header v as str", DIPX_E_TYPE, ENV ("8c" HX_V " 'v' '1'")},
    {"header version after fields: v 2 with an unknown field", DIPX_E_UNKNOWN_FIELD,
     ENV ("8d" HX_V " 'v' 02 'note' 'x'")},
    {"header version before cross-field rules: v 2 and from = to", DIPX_E_VERSION,
     ENV ("8c" H_ID H_TYPE H_FROM H_SUBJ H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES
          " 'v' 02 'to' 'police.met.brixton'")},
    {"id of 15 bytes", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_ID " 'id' b(00*15)")},
    {"id all zero (REFUSED's 'no id')", DIPX_E_VALUE, ENV ("8c" HX_ID " 'id' b(00*16)")},
    {"accepted: id zero but its last byte", 0, ENV ("8c" HX_ID " 'id' b(00*15 01)")},
    {"type with capitals", DIPX_E_VALUE, ENV ("8c" HX_TYPE " 'type' 'Drug_test_result'")},
    {"type starting with a digit", DIPX_E_VALUE, ENV ("8c" HX_TYPE " 'type' '1st_test'")},
    {"type with a hyphen", DIPX_E_VALUE, ENV ("8c" HX_TYPE " 'type' 'drug-test'")},
    {"type empty", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_TYPE " 'type' ''")},
    {"type of 49 characters", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_TYPE " 'type' s(61*49)")},
    {"accepted: type of 48 characters", 0, ENV ("8c" HX_TYPE " 'type' s(61*48)")},
    {"from with capitals", DIPX_E_VALUE, ENV ("8c" HX_FROM " 'from' 'Police.met'")},
    {"to of 65 characters", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_TO " 'to' s(61*65)")},
    {"subj of 31 bytes", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_SUBJ " 'subj' b(bb*31)")},
    {"subj as str", DIPX_E_TYPE, ENV ("8c" HX_SUBJ " 'subj' s(61*32)")},
    {"basis unknown", DIPX_E_VALUE, ENV ("8c" HX_BASIS " 'basis' 'stat'")},
    {"basis in capitals", DIPX_E_VALUE, ENV ("8c" HX_BASIS " 'basis' 'STATUTE'")},
    {"basis as a number", DIPX_E_TYPE, ENV ("8c" HX_BASIS " 'basis' 01")},
    {"ref empty", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_REF " 'ref' ''")},
    {"ref with a leading space", DIPX_E_VALUE, ENV ("8c" HX_REF " 'ref' ' PACE'")},
    {"ref with a trailing space", DIPX_E_VALUE, ENV ("8c" HX_REF " 'ref' 'PACE '")},
    {"ref with a tab", DIPX_E_VALUE, ENV ("8c" HX_REF " 'ref' s(61 09 62)")},
    {"ref with UTF-8", DIPX_E_VALUE, ENV ("8c" HX_REF " 'ref' s(63 61 66 c3 a9)")},
    {"ref of 129 characters", DIPX_E_FIELD_LENGTH, ENV ("8c" HX_REF " 'ref' s(72*129)")},
    {"purpose unknown", DIPX_E_VALUE, ENV ("8c" HX_PURPOSE " 'purpose' 'curiosity'")},
    {"cats empty", DIPX_E_COUNT, ENV ("8c" HX_CATS " 'cats' 90")},
    {"cats of 9", DIPX_E_COUNT,
     ENV ("8c" HX_CATS " 'cats' 99 'identifiers' 'test_results' 'assessment' 'care_plan' "
          "'treatment_progress' 'notes' 'health' 'risk' 'risk'")},
    {"cats repeated", DIPX_E_VALUE, ENV ("8c" HX_CATS " 'cats' 92 'risk' 'risk'")},
    {"cats unknown", DIPX_E_VALUE, ENV ("8c" HX_CATS " 'cats' 91 'gossip'")},
    {"cats as a str", DIPX_E_TYPE, ENV ("8c" HX_CATS " 'cats' 'risk'")},
    {"cats holding a number", DIPX_E_TYPE, ENV ("8c" HX_CATS " 'cats' 91 01")},
    {"accepted: all 8 cats, any order", 0,
     ENV ("8c" HX_CATS " 'cats' 98 'risk' 'health' 'notes' 'treatment_progress' 'care_plan' "
          "'assessment' 'test_results' 'identifiers'")},
    {"expires as int64", DIPX_E_TYPE,
     ENV ("8c" HX_EXPIRES " 'expires' d3 00 00 01 9c 11 59 70 00")},
    {"expires = created", DIPX_E_VALUE, ENV ("8c" HX_EXPIRES " 'expires' cf 00 00 01 9b 76 da a8 00")},
    {"expires before created", DIPX_E_VALUE,
     ENV ("8c" HX_EXPIRES " 'expires' cf 00 00 01 9b 76 da a7 ff")},
    {"lifetime DIPX_MAX_TTL_MS + 1", DIPX_E_VALUE,
     ENV ("8c" HX_EXPIRES " 'expires' cf 00 00 01 a2 d3 b2 30 01")},
    {"accepted: lifetime DIPX_MAX_TTL_MS", 0,
     ENV ("8c" HX_EXPIRES " 'expires' cf 00 00 01 a2 d3 b2 30 00")},
    {"accepted: created 0, expires 1", 0, ENV ("8c" HX_TIMES " 'created' 00 'expires' 01")},
    {"from = to", DIPX_E_VALUE, ENV ("8c" HX_TO " 'to' 'police.met.brixton'")},
    {"public interest without its fields", DIPX_E_MISSING_FIELD,
     ENV ("8c" HX_BASIS " 'basis' 'public_interest'")},
    {"public interest without pi_why", DIPX_E_MISSING_FIELD,
     ENV ("8e" HX_BASIS " 'basis' 'public_interest' 'pi_by' 'J' 'pi_approver' 'A'")},
    {"pi_why on a statutory basis", DIPX_E_VALUE, ENV ("8d" H_ALL " 'pi_why' 'x'")},
    {"pi_by on a consent basis", DIPX_E_VALUE,
     ENV ("8d" HX_BASIS " 'basis' 'consent' 'pi_by' 'x'")},
    {"pi_by empty", DIPX_E_FIELD_LENGTH,
     ENV ("8f" HX_BASIS " 'basis' 'public_interest' 'pi_by' '' 'pi_approver' 'A' 'pi_why' 'W'")},
    {"pi_why of 1025", DIPX_E_FIELD_LENGTH,
     ENV ("8f" HX_BASIS " 'basis' 'public_interest' 'pi_by' 'B' 'pi_approver' 'A' 'pi_why' "
          "s(77*1025)")},
    {"accepted: pi_why of 1024", 0,
     ENV ("8f" HX_BASIS " 'basis' 'public_interest' 'pi_by' 'B' 'pi_approver' 'A' 'pi_why' "
          "s(77*1024)")},
    {"missing pi fields before lifetime", DIPX_E_MISSING_FIELD,
     ENV ("8c" H_V H_ID H_TYPE H_FROM H_TO H_SUBJ H_REF H_PURPOSE H_CATS
          " 'basis' 'public_interest' 'created' 01 'expires' 01")},
};

/*  Sealed plaintexts, opened after a good decode and signature: $id and $hh
    are the reference header's id and hash.  */
#define I_V " 'v' 01"
#define I_ID " 'id' b($id)"
#define I_FROM " 'from' 'police.met.brixton'"
#define I_TO " 'to' 'cjit.lambeth'"
#define I_HH " 'hh' b($hh)"
#define I_BODY " 'body' b('payload')"

static const s_row_t s_inner_rows[] = {
    {"accepted: the reference plaintext", 0, "86" I_V I_ID I_FROM I_TO I_HH I_BODY},
    {"accepted: empty body", 0, "86" I_V I_ID I_FROM I_TO I_HH " 'body' b()"},
    {"accepted: fields in another order", 0, "86" I_BODY I_HH I_TO I_FROM I_ID I_V},
    {"sealed v 2", DIPX_E_VERSION, "86 'v' 02" I_ID I_FROM I_TO I_HH I_BODY},
    {"sealed v 257", DIPX_E_VERSION, "86 'v' cd 01 01" I_ID I_FROM I_TO I_HH I_BODY},
    {"sealed id differs from header", DIPX_E_READDRESSED,
     "86" I_V " 'id' b(00*16)" I_FROM I_TO I_HH I_BODY},
    {"sealed from differs from header", DIPX_E_READDRESSED,
     "86" I_V I_ID " 'from' 'police.met.lambeth'" I_TO I_HH I_BODY},
    {"sealed to differs from header", DIPX_E_READDRESSED,
     "86" I_V I_ID I_FROM " 'to' 'cjit.southwark'" I_HH I_BODY},
    {"sealed header hash differs", DIPX_E_HEADER_MISMATCH,
     "86" I_V I_ID I_FROM I_TO " 'hh' b(00*32)" I_BODY},
    {"readdressed is reported before header mismatch", DIPX_E_READDRESSED,
     "86" I_V I_ID I_FROM " 'to' 'cjit.southwark' 'hh' b(00*32)" I_BODY},
    {"version is reported before readdressed", DIPX_E_VERSION,
     "86 'v' 02" I_ID I_FROM " 'to' 'cjit.southwark'" I_HH I_BODY},
    {"sealed body missing", DIPX_E_MISSING_FIELD, "85" I_V I_ID I_FROM I_TO I_HH},
    {"sealed extra field", DIPX_E_UNKNOWN_FIELD, "87" I_V I_ID I_FROM I_TO I_HH I_BODY " 'x' 00"},
    {"sealed plaintext is an array", DIPX_E_TYPE, "91 01"},
    {"sealed plaintext nested", DIPX_E_DEPTH, "86" I_V I_ID I_FROM I_TO I_HH " 'body' 90"},
    {"sealed plaintext with a trailing byte", DIPX_E_TRAILING,
     "86" I_V I_ID I_FROM I_TO I_HH I_BODY "00"},
    {"sealed plaintext cut short", DIPX_E_TRUNCATED, "86" I_V I_ID I_FROM I_TO I_HH " 'body' c4 05"},
    {"sealed plaintext not msgpack", DIPX_E_MALFORMED, "c1"},
    {"sealed body as str", DIPX_E_TYPE, "86" I_V I_ID I_FROM I_TO I_HH " 'body' 'payload'"},
};

/*  --- running the tables ----------------------------------------------------------  */

static fx_keys_t s_keys;

/*  Writes a row's bytes into $DIPX_DUMP_CORPUS/<target>/<name>, if set.  */
static void
s_dump (const char *target, const char *table, size_t i, const fx_buf_t *in)
{
    const char *dir = getenv ("DIPX_DUMP_CORPUS");
    if (!dir || in->len > 65536)
        return;
    char path[4096];
    snprintf (path, sizeof path, "%s/%s", dir, target);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/%s/%s-%03zu", dir, target, table, i);
    FILE *f = fopen (path, "wb");
    assert_non_null (f);
    if (in->len)
        assert_int_equal (fwrite (in->data, 1, in->len, f), in->len);
    fclose (f);
}

static int
s_check_row (const char *table, size_t i, const s_row_t *row, int rc, long allocs)
{
    if (rc == row->code && allocs == 0)
        return 0;
    print_error ("%s row %zu \"%s\": got %d %s, expected %d %s, %ld allocations\n", table, i,
                 row->what, rc, dipx_error_name (rc), row->code, dipx_error_name (row->code),
                 allocs);
    return 1;
}

static void
test_frame_table (void **state)
{
    (void) state;
    int failed = 0;
    for (size_t i = 0; i < ROWS (s_frame_rows); i++) {
        const s_row_t *row = &s_frame_rows[i];
        fx_buf_t in = {0};
        assert_int_equal (fx_bytes_parse (row->in, &in), 0);
        s_dump ("fuzz_frame", "frame", i, &in);
        dipx_frame_t f;
        s_allocs = 0;
        s_counting = 1;
        int rc = dipx_frame_decode (in.data, in.len, &f); /* NULL for the empty row */
        s_counting = 0;
        failed += s_check_row ("frame", i, row, rc, s_allocs);
        if (rc == 0) {
            /* An accepted frame re-encodes to bytes that decode the same.  */
            uint8_t *out;
            size_t out_len;
            dipx_frame_t g;
            assert_int_equal (dipx_frame_encode (&f, &out, &out_len), 0);
            assert_int_equal (dipx_frame_decode (out, out_len, &g), 0);
            assert_true (fx_frame_equal (&f, &g));
            free (out);
        }
        fx_buf_free (&in);
    }
    assert_int_equal (failed, 0);
}

static void
test_envelope_table (void **state)
{
    (void) state;
    int failed = 0;
    for (size_t i = 0; i < ROWS (s_envelope_rows); i++) {
        const s_row_t *row = &s_envelope_rows[i];
        fx_buf_t in = {0};
        assert_int_equal (fx_bytes_parse (row->in, &in), 0);
        s_dump ("fuzz_envelope", "envelope", i, &in);
        dipx_envelope_t e;
        s_allocs = 0;
        s_counting = 1;
        int rc = dipx_envelope_decode (in.data, in.len, &e);
        s_counting = 0;
        failed += s_check_row ("envelope", i, row, rc, s_allocs);
        fx_buf_free (&in);
    }
    assert_int_equal (failed, 0);
}

/*  The reference envelope's header bytes and hash.  */
static void
s_reference (fx_buf_t *hdr, uint8_t hh[32])
{
    fx_buf_t env = {0};
    fx_vector ("envelope", &env);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env.data, env.len, &e), 0);
    hdr->len = 0;
    fx_buf_put (hdr, e.hdr.ptr, e.hdr.len);
    memcpy (hh, e.hh, 32);
    fx_buf_free (&env);
}

static void
test_inner_table (void **state)
{
    (void) state;
    fx_buf_t hdr = {0};
    uint8_t hh[32];
    s_reference (&hdr, hh);
    fx_var_set ("hh", hh, 32);
    fx_var_set ("id", fx_id1, DIPX_ID_BYTES);
    int failed = 0;
    for (size_t i = 0; i < ROWS (s_inner_rows); i++) {
        const s_row_t *row = &s_inner_rows[i];
        fx_buf_t plain = {0};
        assert_int_equal (fx_bytes_parse (row->in, &plain), 0);
        s_dump ("fuzz_inner", "sealed", i, &plain);
        uint8_t *ct, *env;
        size_t ct_len, env_len;
        fx_box (plain.data, plain.len, fx_nonce, s_keys.shared, &ct, &ct_len);
        fx_envelope_build (hdr.data, hdr.len, ct, ct_len, s_keys.s_sign_sk, &env, &env_len);
        fx_buf_t as_buf = {env, env_len, env_len};
        s_dump ("fuzz_envelope", "sealed", i, &as_buf);
        dipx_envelope_t e;
        assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
        assert_int_equal (dipx_envelope_verify (&e, s_keys.s_sign_pk, NULL), 0);
        uint8_t *body;
        size_t body_len;
        int rc = dipx_envelope_open (&e, s_keys.shared, &body, &body_len);
        failed += s_check_row ("sealed", i, row, rc, 0);
        if (rc == 0)
            free (body);
        else
            assert_null (body);
        free (env);
        free (ct);
        fx_buf_free (&plain);
    }
    fx_buf_free (&hdr);
    assert_int_equal (failed, 0);
}

/*  --- envelope crypto negatives ------------------------------------------------------  */

static void
s_seal_reference (uint8_t **env, size_t *env_len)
{
    dipx_header_t h;
    fx_header (&h);
    assert_int_equal (dipx_envelope_seal (&h, (const uint8_t *) FX_BODY, strlen (FX_BODY),
                                          s_keys.shared, s_keys.s_sign_sk, env, env_len),
                      0);
}

/*  The broker checks the signature against the named sender's key: any
    other key fails, the recipient's included.  */
static void
test_wrong_sender_key (void **state)
{
    (void) state;
    uint8_t *env;
    size_t env_len;
    s_seal_reference (&env, &env_len);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_int_equal (dipx_envelope_verify (&e, s_keys.s_sign_pk, NULL), 0);
    assert_int_equal (dipx_envelope_verify (&e, s_keys.r_sign_pk, NULL), DIPX_E_BAD_SIGNATURE);
    /* The encryption key is not a signing key.  */
    assert_int_equal (dipx_envelope_verify (&e, s_keys.s_enc_pk, NULL), DIPX_E_BAD_SIGNATURE);
    uint8_t zero[32] = {0};
    assert_int_equal (dipx_envelope_verify (&e, zero, NULL), DIPX_E_BAD_SIGNATURE);
    free (env);
}

/*  Opening needs the shared key of recipient and named sender; anything else
    is DIPX_E_CRYPTO. This is what makes crypto_box authenticate the sender.  */
static void
test_wrong_shared_key (void **state)
{
    (void) state;
    uint8_t *env, *body = NULL;
    size_t env_len, body_len = 0;
    s_seal_reference (&env, &env_len);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);

    uint8_t seed[32], c_pk[32], c_sk[32], wrong[32];
    memset (seed, 5, sizeof seed);
    crypto_box_seed_keypair (c_pk, c_sk, seed);
    /* The recipient opening as if a third agency had sent it.  */
    assert_int_equal (crypto_box_beforenm (wrong, c_pk, s_keys.r_enc_sk), 0);
    assert_int_equal (dipx_envelope_open (&e, wrong, &body, &body_len), DIPX_E_CRYPTO);
    assert_null (body);
    assert_int_equal (body_len, 0);
    /* A third agency trying to open what was sealed for the recipient.  */
    assert_int_equal (crypto_box_beforenm (wrong, s_keys.s_enc_pk, c_sk), 0);
    assert_int_equal (dipx_envelope_open (&e, wrong, &body, &body_len), DIPX_E_CRYPTO);
    free (env);

    /* A third agency sealing in the sender's name: even if its signature were
       accepted, the recipient's open with the named sender's key fails.  */
    fx_buf_t hdr = {0};
    uint8_t hh[32], *ct;
    size_t ct_len;
    s_reference (&hdr, hh);
    fx_var_set ("hh", hh, 32);
    fx_var_set ("id", fx_id1, DIPX_ID_BYTES);
    fx_buf_t plain = {0};
    assert_int_equal (fx_bytes_parse ("86" I_V I_ID I_FROM I_TO I_HH I_BODY, &plain), 0);
    assert_int_equal (crypto_box_beforenm (wrong, s_keys.r_enc_pk, c_sk), 0);
    fx_box (plain.data, plain.len, fx_nonce, wrong, &ct, &ct_len);
    fx_envelope_build (hdr.data, hdr.len, ct, ct_len, s_keys.s_sign_sk, &env, &env_len);
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    assert_int_equal (dipx_envelope_open (&e, s_keys.shared, &body, &body_len), DIPX_E_CRYPTO);
    free (env);
    free (ct);
    fx_buf_free (&plain);
    fx_buf_free (&hdr);
}

/*  Re-addressing: sealed for cjit.lambeth, the header's `to` changed to
    cjit.southwk (same length) and re-signed by the sender. Signature and
    decode pass; the sealed recipient betrays it.  */
static void
test_readdressed (void **state)
{
    (void) state;
    uint8_t *env, *env2, *body;
    size_t env_len, env2_len, body_len;
    s_seal_reference (&env, &env_len);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    uint8_t *hdr = malloc (e.hdr.len);
    assert_non_null (hdr);
    memcpy (hdr, e.hdr.ptr, e.hdr.len);
    assert_int_equal (fx_replace (hdr, e.hdr.len, "cjit.lambeth", "cjit.southwk"), 1);
    fx_envelope_build (hdr, e.hdr.len, e.ct.ptr, e.ct.len, s_keys.s_sign_sk, &env2, &env2_len);

    dipx_envelope_t e2;
    assert_int_equal (dipx_envelope_decode (env2, env2_len, &e2), 0);
    assert_string_equal (e2.h.to, "cjit.southwk");
    assert_int_equal (dipx_envelope_verify (&e2, s_keys.s_sign_pk, NULL), 0);
    assert_int_equal (dipx_envelope_open (&e2, s_keys.shared, &body, &body_len),
                      DIPX_E_READDRESSED);
    /* The original signature no longer covers the altered header.  */
    memcpy (e2.sig, e.sig, 64);
    assert_int_equal (dipx_envelope_verify (&e2, s_keys.s_sign_pk, NULL), DIPX_E_BAD_SIGNATURE);
    free (hdr);
    free (env2);
    free (env);
}

/*  An altered header (purpose law_enforcement -> case_management, same
    length), re-signed: only the sealed header hash shows it.  */
static void
test_header_mismatch (void **state)
{
    (void) state;
    uint8_t *env, *env2, *body;
    size_t env_len, env2_len, body_len;
    s_seal_reference (&env, &env_len);
    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    uint8_t *hdr = malloc (e.hdr.len);
    assert_non_null (hdr);
    memcpy (hdr, e.hdr.ptr, e.hdr.len);
    assert_int_equal (fx_replace (hdr, e.hdr.len, "law_enforcement", "case_management"), 1);
    fx_envelope_build (hdr, e.hdr.len, e.ct.ptr, e.ct.len, s_keys.s_sign_sk, &env2, &env2_len);
    dipx_envelope_t e2;
    assert_int_equal (dipx_envelope_decode (env2, env2_len, &e2), 0);
    assert_int_equal (e2.h.purpose, DIPX_PURPOSE_CASE_MANAGEMENT);
    assert_int_equal (dipx_envelope_verify (&e2, s_keys.s_sign_pk, NULL), 0);
    assert_int_equal (dipx_envelope_open (&e2, s_keys.shared, &body, &body_len),
                      DIPX_E_HEADER_MISMATCH);
    free (hdr);
    free (env2);
    free (env);

    /* A header re-encoded with the same values but other bytes (map16, keys
       in another order) is another header: its hash differs too.  */
    fx_buf_t alt = {0};
    uint8_t *ct, *env3;
    size_t ct_len, env3_len;
    s_seal_reference (&env, &env_len);
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    fx_buf_t sb = {0};
    fx_vector ("subject", &sb);
    fx_var_set ("subj", sb.data, sb.len);
    assert_int_equal (fx_bytes_parse ("de 00 0c" H_V H_ID H_TYPE H_FROM H_TO " 'subj' b($subj)"
                                      H_BASIS H_REF H_PURPOSE H_CATS H_CREATED H_EXPIRES,
                                      &alt),
                      0);
    ct = malloc (e.ct.len);
    assert_non_null (ct);
    ct_len = e.ct.len;
    memcpy (ct, e.ct.ptr, ct_len);
    fx_envelope_build (alt.data, alt.len, ct, ct_len, s_keys.s_sign_sk, &env3, &env3_len);
    dipx_envelope_t e3;
    assert_int_equal (dipx_envelope_decode (env3, env3_len, &e3), 0);
    assert_memory_equal (&e3.h, &e.h, sizeof e.h); /* same values */
    assert_int_equal (dipx_envelope_open (&e3, s_keys.shared, &body, &body_len),
                      DIPX_E_HEADER_MISMATCH);
    free (env3);
    free (ct);
    free (env);
    fx_buf_free (&alt);
    fx_buf_free (&sb);
}

/*  Swapping ciphertexts between two messages of the same sender and
    recipient, re-signed: the sealed id (or, for the same id, the sealed
    header hash) no longer matches.  */
static void
test_ciphertext_swap (void **state)
{
    (void) state;
    dipx_header_t h1, h2;
    fx_header (&h1);
    fx_header (&h2);
    memcpy (h2.id, fx_id2, DIPX_ID_BYTES);
    uint8_t *a, *b, *swapped, *body;
    size_t a_len, b_len, swapped_len, body_len;
    assert_int_equal (dipx_envelope_seal (&h1, (const uint8_t *) "one", 3, s_keys.shared,
                                          s_keys.s_sign_sk, &a, &a_len),
                      0);
    assert_int_equal (dipx_envelope_seal (&h2, (const uint8_t *) "two", 3, s_keys.shared,
                                          s_keys.s_sign_sk, &b, &b_len),
                      0);
    dipx_envelope_t ea, eb, es;
    assert_int_equal (dipx_envelope_decode (a, a_len, &ea), 0);
    assert_int_equal (dipx_envelope_decode (b, b_len, &eb), 0);
    fx_envelope_build (ea.hdr.ptr, ea.hdr.len, eb.ct.ptr, eb.ct.len, s_keys.s_sign_sk, &swapped,
                       &swapped_len);
    assert_int_equal (dipx_envelope_decode (swapped, swapped_len, &es), 0);
    assert_int_equal (dipx_envelope_verify (&es, s_keys.s_sign_pk, NULL), 0);
    assert_int_equal (dipx_envelope_open (&es, s_keys.shared, &body, &body_len),
                      DIPX_E_READDRESSED);
    free (swapped);
    free (b);

    /* Same id, another header (type changed): the id matches, the hash does not.  */
    strcpy (h2.type, "required_assessment");
    memcpy (h2.id, fx_id1, DIPX_ID_BYTES);
    assert_int_equal (dipx_envelope_seal (&h2, (const uint8_t *) "two", 3, s_keys.shared,
                                          s_keys.s_sign_sk, &b, &b_len),
                      0);
    assert_int_equal (dipx_envelope_decode (b, b_len, &eb), 0);
    fx_envelope_build (ea.hdr.ptr, ea.hdr.len, eb.ct.ptr, eb.ct.len, s_keys.s_sign_sk, &swapped,
                       &swapped_len);
    assert_int_equal (dipx_envelope_decode (swapped, swapped_len, &es), 0);
    assert_int_equal (dipx_envelope_open (&es, s_keys.shared, &body, &body_len),
                      DIPX_E_HEADER_MISMATCH);
    free (swapped);
    free (b);
    free (a);
}

/*  Flips every bit of a sealed envelope with a 2 KiB payload, one at a time:
    each flip must make decode, verify or open fail.  */
static void
test_bit_flips (void **state)
{
    (void) state;
    dipx_header_t h;
    fx_header (&h);
    uint8_t payload[2048];
    randombytes_buf (payload, sizeof payload);
    uint8_t *env;
    size_t env_len;
    assert_int_equal (dipx_envelope_seal (&h, payload, sizeof payload, s_keys.shared,
                                          s_keys.s_sign_sk, &env, &env_len),
                      0);
    uint8_t *copy = malloc (env_len);
    assert_non_null (copy);
    long at_decode = 0, at_verify = 0, at_open = 0, survivors = 0;
    for (size_t bit = 0; bit < env_len * 8; bit++) {
        memcpy (copy, env, env_len);
        copy[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        dipx_envelope_t e;
        uint8_t *body;
        size_t body_len;
        if (dipx_envelope_decode (copy, env_len, &e) != 0)
            at_decode++;
        else if (dipx_envelope_verify (&e, s_keys.s_sign_pk, NULL) != 0)
            at_verify++;
        else if (dipx_envelope_open (&e, s_keys.shared, &body, &body_len) != 0)
            at_open++;
        else {
            survivors++;
            print_error ("bit %zu flipped survives\n", bit);
            free (body);
        }
    }
    print_message ("bit flips over %zu bytes: %ld fail decode, %ld verify, %ld open, %ld survive\n",
                   env_len, at_decode, at_verify, at_open, survivors);
    assert_int_equal (survivors, 0);
    assert_int_equal (at_decode + at_verify + at_open, (long) env_len * 8);
    free (copy);
    free (env);
}

/*  Allocation failures: seal and open fail cleanly (DIPX_E_NOMEM, nothing
    leaked, outputs untouched or NULL) at each of their allocations in turn.  */
static void
test_alloc_failures (void **state)
{
    (void) state;
    dipx_header_t h;
    fx_header (&h);
    int rc = DIPX_E_NOMEM;
    long k;
    uint8_t *env = NULL;
    size_t env_len = 0;
    for (k = 0; rc == DIPX_E_NOMEM && k < 100; k++) {
        s_allocs = 0;
        s_fail_at = k;
        s_counting = 1;
        rc = dipx_envelope_seal (&h, (const uint8_t *) FX_BODY, strlen (FX_BODY), s_keys.shared,
                                 s_keys.s_sign_sk, &env, &env_len);
        s_counting = 0;
        s_fail_at = -1;
        if (rc == DIPX_E_NOMEM)
            assert_null (env);
    }
    assert_int_equal (rc, 0);
    assert_true (k > 1); /* at least one failure was injected */
    print_message ("seal: %ld allocations failed in turn\n", k - 1);

    dipx_envelope_t e;
    assert_int_equal (dipx_envelope_decode (env, env_len, &e), 0);
    uint8_t *body = NULL;
    size_t body_len = 0;
    rc = DIPX_E_NOMEM;
    for (k = 0; rc == DIPX_E_NOMEM && k < 100; k++) {
        s_allocs = 0;
        s_fail_at = k;
        s_counting = 1;
        rc = dipx_envelope_open (&e, s_keys.shared, &body, &body_len);
        s_counting = 0;
        s_fail_at = -1;
        if (rc == DIPX_E_NOMEM)
            assert_null (body);
    }
    assert_int_equal (rc, 0);
    assert_true (k > 1);
    assert_memory_equal (body, FX_BODY, strlen (FX_BODY));
    free (body);
    free (env);
}

int
main (void)
{
    fx_keys (&s_keys);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_frame_table),
        cmocka_unit_test (test_envelope_table),
        cmocka_unit_test (test_inner_table),
        cmocka_unit_test (test_wrong_sender_key),
        cmocka_unit_test (test_wrong_shared_key),
        cmocka_unit_test (test_readdressed),
        cmocka_unit_test (test_header_mismatch),
        cmocka_unit_test (test_ciphertext_swap),
        cmocka_unit_test (test_bit_flips),
        cmocka_unit_test (test_alloc_failures),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
