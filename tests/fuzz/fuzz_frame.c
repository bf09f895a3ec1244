/*  fuzz_frame.c - libFuzzer target for dipx_frame_decode, the first thing
    the broker and the client run on bytes from the network.

    Beyond "no crash, no sanitizer report", it checks the decoder's contract:
    a refusal is one of the decode codes; an accepted frame re-encodes to
    bytes that decode to the same fields, and those re-encode to the same
    bytes (encoding is canonical even when the input was not). An envelope
    inside SEND or DELIVER is decoded too, as the broker does next.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "unit/proto_fixture.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static dipx_frame_t f, g; /* 4 KiB each: keep them off the stack */
    int rc = dipx_frame_decode (data, size, &f);
    if (rc != 0) {
        if (rc > DIPX_E_MALFORMED || rc < DIPX_E_FRAME_SIZE)
            abort (); /* only decode codes, 1..14 */
        return 0;
    }
    if (f.cmd < 1 || f.cmd > DIPX_CMD_MAX)
        abort ();

    uint8_t *once, *twice;
    size_t once_len, twice_len;
    if (dipx_frame_encode (&f, &once, &once_len) != 0)
        abort ();
    if (dipx_frame_decode (once, once_len, &g) != 0 || !fx_frame_equal (&f, &g))
        abort ();
    if (dipx_frame_encode (&g, &twice, &twice_len) != 0)
        abort ();
    if (once_len != twice_len || memcmp (once, twice, once_len) != 0)
        abort ();
    /* Minimal encodings are never longer than what was read.  */
    if (once_len > size)
        abort ();
    free (once);
    free (twice);

    const dipx_slice_t *env = f.cmd == DIPX_CMD_SEND      ? &f.u.send.env
                              : f.cmd == DIPX_CMD_DELIVER ? &f.u.deliver.env
                                                          : NULL;
    if (env) {
        dipx_envelope_t e;
        rc = dipx_envelope_decode (env->ptr, env->len, &e);
        if (rc > 0 || rc < DIPX_E_VERSION)
            abort ();
    }
    return 0;
}
