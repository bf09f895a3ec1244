/*  bench_ackonly.c - see bench_ackonly.h.  */
#include "bench_ackonly.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "dipx.h"
#include "dipx_envelope.h"
#include "dipx_frame.h"
#include "dipx_identity.h"

struct bench_ackonly_t {
    void *sock;                /* CURVE DEALER to the broker */
    dipx_identity_t *identity; /* this agency */
    dipx_frame_t *ack;         /* the ACK being gathered (a frame is 4 KiB) */
    dipx_frame_t *in;          /* the frame last received, decoded */
    uint8_t last[DIPX_ID_BYTES]; /* the id last acknowledged */
    bool acked;                /* an ACK has been sent */
    zmq_msg_t msg;             /* and its bytes */
};

/*  Sends the ACK gathered so far, signed over its statement as libdipx
    signs it.  */
static int
s_flush (bench_ackonly_t *self)
{
    dipx_fack_t *a = &self->ack->u.ack;
    if (a->ids.count == 0)
        return 0;
    a->at = dipx_now_ms ();
    uint8_t stmt[DIPX_ACK_STMT_MAX];
    size_t n = dipx_ack_statement (dipx_identity_id (self->identity), a->at, &a->ids, stmt);
    crypto_sign_detached (a->sig, NULL, stmt, n, dipx_identity_sign_sk (self->identity));
    uint8_t *out;
    size_t len;
    int rc = dipx_frame_encode (self->ack, &out, &len);
    memcpy (self->last, a->ids.ids[a->ids.count - 1], DIPX_ID_BYTES);
    self->acked = true;
    a->ids.count = 0;
    if (rc)
        return rc;
    rc = zmq_send (self->sock, out, len, 0) == (int) len ? 0 : DIPX_E_ZMQ;
    free (out);
    return rc;
}

/*  Receives and decodes one frame into self->in within timeout_ms (0: only
    one already here).  */
static int
s_next_frame (bench_ackonly_t *self, int timeout_ms)
{
    if (timeout_ms > 0) {
        zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll (&it, 1, timeout_ms);
        if (n < 0)
            return zmq_errno () == EINTR ? DIPX_E_TIMEOUT : DIPX_E_ZMQ;
        if (n == 0)
            return DIPX_E_TIMEOUT;
    }
    zmq_msg_close (&self->msg);
    zmq_msg_init (&self->msg);
    if (zmq_msg_recv (&self->msg, self->sock, ZMQ_DONTWAIT) < 0)
        return zmq_errno () == EAGAIN ? DIPX_E_TIMEOUT : DIPX_E_ZMQ;
    return dipx_frame_decode (zmq_msg_data (&self->msg), zmq_msg_size (&self->msg), self->in);
}

/*  An ERROR that ends the run: anything but not_recipient (an ACK of a
    message acknowledged already: a redelivery that crossed the first ACK).  */
static int
s_error_fatal (const dipx_frame_t *f)
{
    int code = -(int) f->u.error.code;
    return f->cmd == DIPX_CMD_ERROR && code != DIPX_E_NOT_RECIPIENT ? code : 0;
}

int
bench_ackonly_open (void *ctx, const char *endpoint, const char *broker_key_z85,
                    const char *secret_path, uint32_t window, int timeout_ms,
                    bench_ackonly_t **out)
{
    *out = NULL;
    uint8_t server_key[32];
    if (dipx_key_from_z85 (broker_key_z85, DIPX_Z85_KEY_LEN, server_key) != 0)
        return DIPX_E_INVAL;
    bench_ackonly_t *self = calloc (1, sizeof *self);
    if (!self)
        return DIPX_E_NOMEM;
    zmq_msg_init (&self->msg);
    int rc = dipx_identity_load (secret_path, &self->identity);
    self->ack = calloc (1, sizeof *self->ack);
    self->in = calloc (1, sizeof *self->in);
    if (rc == 0 && (!self->ack || !self->in))
        rc = DIPX_E_NOMEM;
    int linger = 0, hwm = 10000;
    if (rc == 0) {
        self->ack->cmd = DIPX_CMD_ACK;
        self->sock = zmq_socket (ctx, ZMQ_DEALER);
        if (!self->sock || zmq_setsockopt (self->sock, ZMQ_LINGER, &linger, sizeof linger)
            || zmq_setsockopt (self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm)
            || zmq_setsockopt (self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm)
            || zmq_setsockopt (self->sock, ZMQ_CURVE_SERVERKEY, server_key, 32)
            || zmq_setsockopt (self->sock, ZMQ_CURVE_PUBLICKEY,
                               dipx_identity_enc_pk (self->identity), 32)
            || zmq_setsockopt (self->sock, ZMQ_CURVE_SECRETKEY,
                               dipx_identity_enc_sk (self->identity), 32)
            || zmq_connect (self->sock, endpoint))
            rc = DIPX_E_ZMQ;
    }
    if (rc == 0) {
        dipx_frame_t hello = {.cmd = DIPX_CMD_HELLO};
        hello.u.hello.window = window;
        uint8_t *buf;
        size_t len;
        rc = dipx_frame_encode (&hello, &buf, &len);
        if (rc == 0) {
            rc = zmq_send (self->sock, buf, len, 0) == (int) len ? 0 : DIPX_E_ZMQ;
            free (buf);
        }
    }
    if (rc == 0)
        rc = s_next_frame (self, timeout_ms);
    if (rc == 0 && self->in->cmd != DIPX_CMD_WELCOME)
        rc = self->in->cmd == DIPX_CMD_ERROR ? -(int) self->in->u.error.code : DIPX_E_STATE;
    if (rc) {
        bench_ackonly_close (&self);
        return rc;
    }
    *out = self;
    return 0;
}

int
bench_ackonly_recv (bench_ackonly_t *self, int timeout_ms, uint8_t id[DIPX_ID_BYTES],
                    uint64_t *count)
{
    for (;;) {
        /* What is here already first; the ACK goes when nothing is.  */
        int rc = s_next_frame (self, 0);
        if (rc == DIPX_E_TIMEOUT) {
            if ((rc = s_flush (self)))
                return rc;
            rc = s_next_frame (self, timeout_ms);
        }
        if (rc)
            return rc;
        const dipx_frame_t *f = self->in;
        if ((rc = s_error_fatal (f)))
            return rc;
        if (f->cmd != DIPX_CMD_DELIVER)
            continue; /* a repeated WELCOME, a RECEIPT: nothing to do */
        dipx_envelope_t env;
        if ((rc = dipx_envelope_decode (f->u.deliver.env.ptr, f->u.deliver.env.len, &env)))
            return rc;
        memcpy (id, env.h.id, DIPX_ID_BYTES);
        *count = f->u.deliver.count;
        dipx_idlist_t *ids = &self->ack->u.ack.ids;
        memcpy (ids->ids[ids->count++], env.h.id, DIPX_ID_BYTES);
        if (ids->count == DIPX_MAX_ACK_IDS && (rc = s_flush (self)))
            return rc;
        return 0;
    }
}

int
bench_ackonly_flush (bench_ackonly_t *self, int timeout_ms)
{
    int rc = s_flush (self);
    if (rc || !self->acked)
        return rc;
    /* The broker answers a successful ACK with nothing. A TRACK of the last
       id acknowledged is answered after it (a connection's frames are
       handled in order): an ERROR about the ACK would come first.  */
    dipx_frame_t track = {.cmd = DIPX_CMD_TRACK};
    memcpy (track.u.track.id, self->last, DIPX_ID_BYTES);
    uint8_t *buf;
    size_t len;
    if ((rc = dipx_frame_encode (&track, &buf, &len)))
        return rc;
    rc = zmq_send (self->sock, buf, len, 0) == (int) len ? 0 : DIPX_E_ZMQ;
    free (buf);
    while (rc == 0 && (rc = s_next_frame (self, timeout_ms)) == 0) {
        const dipx_frame_t *f = self->in;
        if (f->cmd == DIPX_CMD_HISTORY)
            return 0;
        if (f->cmd == DIPX_CMD_ERROR && f->u.error.cmd == DIPX_CMD_TRACK)
            return -(int) f->u.error.code;
        rc = s_error_fatal (f);
    }
    return rc;
}

const char *
bench_ackonly_id (const bench_ackonly_t *self)
{
    return dipx_identity_id (self->identity);
}

void
bench_ackonly_close (bench_ackonly_t **self_p)
{
    bench_ackonly_t *self = *self_p;
    if (!self)
        return;
    if (self->sock)
        zmq_close (self->sock);
    zmq_msg_close (&self->msg);
    dipx_identity_destroy (&self->identity);
    free (self->ack);
    free (self->in);
    free (self);
    *self_p = NULL;
}
