/*  dipx_auth.c - ZAP (RFC 27) over an inproc REP socket, answered from the
    broker's main loop so that a registry swap on SIGHUP needs no locking.

    A request is seven frames: version "1.0", request id, domain, address,
    routing id, mechanism, and for CURVE the client's 32-byte public key. Any
    deviation is answered 400 when a request id could be read, and the
    request is dropped otherwise; a malformed ZAP request can only come from
    libzmq itself, but it is still not trusted.
*/
#include "dipx_auth.h"

#include <string.h>
#include <time.h>
#include <zmq.h>

#include "dipx_log.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_FRAMES 7

struct dipx_auth_t {
    void *sock;                         /* REP bound to the ZAP endpoint */
    const dipx_registry_t *registry;    /* consulted per request */
};

dipx_auth_t *
dipx_auth_new (void *ctx)
{
    dipx_auth_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = zmq_socket (ctx, ZMQ_REP);
    int linger = 0;
    if (!self->sock || zmq_setsockopt (self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0
        || zmq_bind (self->sock, S_ZAP_ENDPOINT) != 0) {
        dipx_log_error ("auth: cannot bind ZAP handler: %s", zmq_strerror (zmq_errno ()));
        dipx_auth_destroy (&self);
        return NULL;
    }
    return self;
}

void
dipx_auth_destroy (dipx_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->sock)
        zmq_close ((*self_p)->sock);
    free (*self_p);
    *self_p = NULL;
}

void *
dipx_auth_socket (dipx_auth_t *self)
{
    return self->sock;
}

void
dipx_auth_set_registry (dipx_auth_t *self, const dipx_registry_t *registry)
{
    self->registry = registry;
}

static void
s_copy_text (char *dst, size_t cap, const zmq_msg_t *m)
{
    size_t n = zmq_msg_size ((zmq_msg_t *) m);
    const unsigned char *p = zmq_msg_data ((zmq_msg_t *) m);
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char) p[i] : '?';
    dst[n] = 0;
}

static int
s_reply (void *sock, const zmq_msg_t *req_id, const char *status, const char *text,
         const char *user)
{
    zmq_msg_t id;
    zmq_msg_init (&id);
    zmq_msg_copy (&id, (zmq_msg_t *) req_id);
    int rc = zmq_send (sock, "1.0", 3, ZMQ_SNDMORE) < 0
             || zmq_msg_send (&id, sock, ZMQ_SNDMORE) < 0
             || zmq_send (sock, status, 3, ZMQ_SNDMORE) < 0
             || zmq_send (sock, text, strlen (text), ZMQ_SNDMORE) < 0
             || zmq_send (sock, user, strlen (user), ZMQ_SNDMORE) < 0
             || zmq_send (sock, "", 0, 0) < 0;
    zmq_msg_close (&id);
    return rc ? DIPX_E_ZMQ : 0;
}

int
dipx_auth_handle (dipx_auth_t *self, dipx_auth_event_t *ev)
{
    zmq_msg_t parts[S_FRAMES];
    int n = 0, more = 1, rc = 0;
    memset (ev, 0, sizeof *ev);
    /* Read the whole request, keeping at most S_FRAMES parts.  */
    while (more) {
        zmq_msg_t m;
        zmq_msg_init (&m);
        if (zmq_msg_recv (&m, self->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close (&m);
            if (n == 0 && zmq_errno () == EAGAIN)
                return 0;
            rc = DIPX_E_ZMQ;
            break;
        }
        more = zmq_msg_more (&m);
        if (n < S_FRAMES)
            parts[n++] = m;
        else {
            zmq_msg_close (&m);
            n = S_FRAMES + 1; /* too many: refuse below */
            break;
        }
    }
    while (more) { /* drain what remains of an over-long request */
        zmq_msg_t m;
        zmq_msg_init (&m);
        if (zmq_msg_recv (&m, self->sock, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more (&m);
        zmq_msg_close (&m);
    }
    int kept = n > S_FRAMES ? S_FRAMES : n;
    ev->status = 400;
    snprintf (ev->why, sizeof ev->why, "malformed ZAP request");
    strcpy (ev->key, "-");
    if (rc == 0 && n == S_FRAMES && zmq_msg_size (&parts[0]) == 3
        && memcmp (zmq_msg_data (&parts[0]), "1.0", 3) == 0 && zmq_msg_size (&parts[5]) == 5
        && memcmp (zmq_msg_data (&parts[5]), "CURVE", 5) == 0
        && zmq_msg_size (&parts[6]) == DIPX_KEY_BYTES) {
        const uint8_t *key = zmq_msg_data (&parts[6]);
        dipx_key_fingerprint (key, ev->key);
        s_copy_text (ev->peer, sizeof ev->peer, &parts[3]);
        const dipx_entry_t *e = self->registry ? dipx_registry_by_enc_key (self->registry, key)
                                               : NULL;
        if (!e)
            snprintf (ev->why, sizeof ev->why, "key not registered");
        else {
            memcpy (ev->agency, e->card.id, sizeof ev->agency);
            /* Refused with 400 (set above), never ZAP's "temporary" 300:
               libzmq answers 300 by silently dropping the connection, and
               a suspended agency, or one whose card has expired, must be
               told rather than left retrying.  */
            const char *why = dipx_entry_unusable (e, (int64_t) time (NULL));
            if (!why) {
                ev->admitted = true;
                ev->status = 200;
                why = "active";
            }
            snprintf (ev->why, sizeof ev->why, "%s", why);
        }
    }
    if (kept >= 1 && rc == 0) {
        /* A REP socket must answer before it can take the next request, so
           even a request without an id gets a (refusing) reply.  */
        zmq_msg_t no_id;
        zmq_msg_init (&no_id);
        char status[4];
        snprintf (status, sizeof status, "%d", ev->status);
        rc = s_reply (self->sock, kept >= 2 ? &parts[1] : &no_id, status,
                      ev->admitted ? "OK" : ev->why, ev->admitted ? ev->agency : "");
        zmq_msg_close (&no_id);
    }
    for (int i = 0; i < kept; i++)
        zmq_msg_close (&parts[i]);
    return rc ? rc : 1;
}
