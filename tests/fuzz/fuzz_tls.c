/*
 * fuzz_tls: io.c's TLS client (start_handshake/handshake_step,
 * tls_read_some, tls_write_some, tls_close) against a hostile server, in
 * one process, over a socketpair, without a network.
 *
 *   input = [mode][flags][read max][attack][offset hi][offset lo]
 *           [bytes (mode 0) or ops, each an op byte and an argument byte]
 *
 *   flags   01 the server speaks TLS 1.2 at most   02 small SO_SNDBUF, client
 *           04 read_max set again in the read callback (else by OP_REARM)
 *           08 the server's end closes at the end   10 a scan error closes
 *           20 small SO_SNDBUF, server   40 a ROLE queued before the handshake
 *           80 (mode 0) the server end reads what the client sends
 *   read max  io_conn_read_max: 0 none, 1..15 bytes, then r * 37 up to 127,
 *           then (r - 127) * 257
 *   attack  socket writes of 1..(attack & 7f)+1 bytes (80: whole); mode 3:
 *           attack & 3 flips, cuts or inserts an alert at the offset, 04 a
 *           wrong name (with 08 an IP address), else 08 an untrusted
 *           certificate
 *   ops     enum op below
 *
 * The client end of the socketpair goes into an io_conn exactly as
 * io_conn_connect leaves it once the TCP connect is done (io_conn_attach):
 * the proxy's own client context (tls_ctx_new, peer verification on) that
 * trusts a throwaway EC P-256 certificate made at start, checked against
 * a fixed name. Its read handler frames the input with resp_scan_feed and
 * drains it, as backend_read_cb does; its event handler closes on any error.
 * The server end is driven synchronously by this file, between turns of
 * the loop (one at a time, EVLOOP_ONCE | EVLOOP_NONBLOCK; every loop
 * bounded):
 *
 *   mode 0  raw: the bytes go to the client as they are, in chunks, instead
 *           of a TLS server (garbage, truncated records, a ServerHello's
 *           beginning); the server end may read the ClientHello or not.
 *   mode 1  a server SSL on memory BIOs completes the handshake, then the
 *           ops run: application data from the input, in records split
 *           across the socket in chunks; raw garbage or a tampered record
 *           after some of them; client writes (tls_write_some), also into a
 *           socket the server does not read; key updates (TLS 1.3) and
 *           renegotiations (TLS 1.2) asked by the server; the client pausing
 *           and resuming its reads as backend.c does; close_notify.
 *   mode 2  as 1, but every piece of application data is a valid RESP
 *           stream generated from the input bytes.
 *   mode 3  as 1, but the handshake is attacked: the server's bytes flipped,
 *           cut or padded with garbage at an offset, a wrong expected name,
 *           or a certificate the client does not trust.
 *
 * A small read limit (io_conn_read_max) makes tls_read_some stop with
 * decrypted data still inside OpenSSL (io_conn_read_again), and a small
 * SO_SNDBUF on either end fills the socket (SSL_ERROR_WANT_WRITE, the retry
 * with the same bytes).
 *
 * Checks that are ours, not the sanitizers' (abort() on a violation):
 * - the client is never connected in mode 0, nor with a wrong name or an
 *   untrusted certificate (and then the reason says "certificate verify
 *   failed"); a clean handshake (modes 1, 2) always completes;
 * - what reaches the client's input is always a prefix of the application
 *   data the server sent before any garbage or tampered record, and once
 *   the loop is idle with the server reading, all of it; an error or an end
 *   reported while the server's end is open means everything before it
 *   arrived (before a key update or renegotiation, when it failed the
 *   session), and an end is reported only after a real close_notify;
 * - a tampered record or a close_notify that reached the client is
 *   reported (an error, IO_EOF); after the server's end closes, every
 *   session ends with an event;
 * - in mode 2 the reply scanner never fails, and counts exactly the
 *   replies generated;
 * - what the server decrypts is a prefix of what the client queued, and
 *   all of it once idle;
 * - no busy loop: after every step, an armed read (write) event on a
 *   readable (writable) socket gets something done when the loop turns;
 * - no callback after io_conn_close, IO_CONNECTED at most once, an
 *   IO_TLS reason is a non-empty printable line.
 * LeakSanitizer checks that io_conn_close freed the session.
 *
 * FUZZ_TLS_VERBOSE=1 in the environment prints what each run did.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "io.h"
#include "proxy.h"
#include "resp.h"
#include "tls.h"

/* What rzproxy.c defines: io.c runs its events on proxy.base. */
struct proxy proxy;

#define NAME "master.fuzz.rzproxy.test"
#define WRONG_NAME "other.fuzz.rzproxy.test"
#define WRONG_IP "127.0.0.1"          /* the certificate has no IP address */
#define LOOP_MAX 100000               /* loop runs in one quiesce() */

static SSL_CTX *client_ctx;           /* tls_ctx_new's, trusting good_cert */
static SSL_CTX *server_ctx;           /* good_cert */
static SSL_CTX *untrusted_ctx;        /* a certificate for NAME the client does not trust */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_tls: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

/* ---- once per process: certificates and contexts ----------------------- */

static EVP_PKEY *make_key(void)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    EVP_PKEY *k = NULL;

    if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kc, NID_X9_62_prime256v1) != 1 ||
        EVP_PKEY_keygen(kc, &k) != 1)
        die("cannot make an EC key");
    EVP_PKEY_CTX_free(kc);
    return k;
}

/* A self-signed certificate for NAME (CN and DNS name), valid for a day. */
static X509 *make_cert(EVP_PKEY *k)
{
    X509 *x = X509_new();
    X509_NAME *n;
    X509_EXTENSION *ext;
    X509V3_CTX v3;

    if (x == NULL || X509_set_version(x, 2) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || X509_set_pubkey(x, k) != 1)
        die("cannot make a certificate");
    n = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)NAME, -1, -1,
                                   0) != 1 || X509_set_issuer_name(x, n) != 1)
        die("cannot name the certificate");
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:" NAME);
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
        die("cannot add the subjectAltName");
    X509_EXTENSION_free(ext);
    if (X509_sign(x, k, EVP_sha256()) == 0)
        die("cannot sign the certificate");
    return x;
}

static SSL_CTX *make_server_ctx(X509 *cert, EVP_PKEY *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        die("cannot make the server context");
    /* Tickets still go out (the client reads them after the handshake);
     * a cache would only grow across runs. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

static void init_once(void)
{
    struct conf_pool cf;
    EVP_PKEY *key, *other_key;
    X509 *cert, *other_cert;
    char err[256];

    /* rzproxy.c does the same: a write to a closed socket is an error,
     * not a signal. */
    signal(SIGPIPE, SIG_IGN);
    proxy.base = event_base_new();
    if (proxy.base == NULL)
        die("event_base_new");
    io_init();

    key = make_key();
    cert = make_cert(key);
    other_key = make_key();
    other_cert = make_cert(other_key);
    server_ctx = make_server_ctx(cert, key);
    untrusted_ctx = make_server_ctx(other_cert, other_key);

    /* The proxy's client context, for a pool with no tls-* files: the
     * system's CA store, plus our certificate as if from tls-ca-cert-file. */
    memset(&cf, 0, sizeof(cf));
    client_ctx = tls_ctx_new(&cf, err, sizeof(err));
    if (client_ctx == NULL) {
        fprintf(stderr, "fuzz_tls: tls_ctx_new: %s\n", err);
        abort();
    }
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx), cert) != 1)
        die("cannot trust the certificate");
    X509_free(cert);
    X509_free(other_cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
}

/* ---- growable byte strings --------------------------------------------- */

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void bytes_str(struct bytes *b, const char *s)
{
    bytes_add(b, s, strlen(s));
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* The input, consumed from the front; 0s once it runs out. */
struct src {
    const uint8_t *p;
    size_t n;
};

static uint8_t take(struct src *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

/* ---- a valid RESP stream from the input -------------------------------- */

static void gen_line(struct bytes *b, struct src *s, size_t max)
{
    size_t n = take(s) % (max + 1);

    for (size_t i = 0; i < n; i++) {
        char c = (char)(0x20 + take(s) % 95);     /* printable: no CR, no LF */

        bytes_add(b, &c, 1);
    }
    bytes_str(b, "\r\n");
}

static void gen_num(struct bytes *b, long long v)
{
    char num[32];

    snprintf(num, sizeof(num), "%lld\r\n", v);
    bytes_str(b, num);
}

/* Bulk-style payload: the length, then raw input bytes. */
static void gen_blob(struct bytes *b, struct src *s, const char *prefix, size_t max)
{
    size_t n = take(s) % (max + 1), pre = strlen(prefix);

    gen_num(b, (long long)(n + pre));
    bytes_str(b, prefix);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = take(s);

        bytes_add(b, &c, 1);
    }
    bytes_str(b, "\r\n");
}

/* One value (an attribute and what follows count as one). */
static void gen_value(struct bytes *b, struct src *s, int depth)
{
    uint8_t t = take(s);
    int n;

    if (depth >= 4 && t % 16 >= 5 && t % 16 <= 9)
        t = 0;                                   /* no deeper aggregates */
    switch (t % 16) {
    case 0: bytes_str(b, "+"); gen_line(b, s, 12); break;
    case 1: bytes_str(b, "-ERR "); gen_line(b, s, 20); break;
    case 2: bytes_str(b, ":"); gen_num(b, (long long)(int16_t)(take(s) << 8 | take(s))); break;
    case 3: bytes_str(b, "$"); gen_blob(b, s, "", 40); break;
    case 4: bytes_str(b, t & 0x10 ? "$-1\r\n" : t & 0x20 ? "*-1\r\n" : "_\r\n"); break;
    case 5: case 6: case 7: case 8:
        n = take(s) % 4;
        bytes_str(b, (const char *[]){ "*", "%", "~", ">" }[t % 16 - 5]);
        gen_num(b, n);
        if (t % 16 == 6)
            n *= 2;                              /* a map's count is of pairs */
        if (t % 16 == 8 && n > 0) {              /* a push names its kind */
            bytes_str(b, "$7\r\nmessage\r\n");
            n--;
        }
        while (n-- > 0)
            gen_value(b, s, depth + 1);
        break;
    case 9:
        bytes_str(b, "|1\r\n+key-popularity\r\n");
        gen_value(b, s, depth + 1);
        gen_value(b, s, depth + 1);
        break;
    case 10: bytes_str(b, t & 0x10 ? "#t\r\n" : "#f\r\n"); break;
    case 11: bytes_str(b, t & 0x10 ? ",3.14\r\n" : ",-inf\r\n"); break;
    case 12: bytes_str(b, "(3492890328409238509324850943850943825024385\r\n"); break;
    case 13: bytes_str(b, "="); gen_blob(b, s, "txt:", 20); break;
    case 14: bytes_str(b, "!"); gen_blob(b, s, "SYNTAX ", 20); break;
    default:
        if (t & 0x10) {                          /* a streamed string */
            bytes_str(b, "$?\r\n");
            for (n = take(s) % 3; n > 0; n--) {
                bytes_str(b, ";");
                gen_blob(b, s, "x", 10);
            }
            bytes_str(b, ";0\r\n");
        } else {                                 /* a streamed aggregate */
            bytes_str(b, "*?\r\n");
            for (n = take(s) % 3; n > 0; n--)
                gen_value(b, s, depth + 1);
            bytes_str(b, ".\r\n");
        }
        break;
    }
}

/* ---- the client: an io_conn as backend.c drives one -------------------- */

struct client_end {
    struct io_conn io;
    struct resp_scan scan;
    int raw;                     /* mode 0: never connected */
    int must_scan;               /* mode 2: the data is valid RESP */
    int close_on_scan_error;     /* as backend_read_cb; else keep draining */
    int rearm_in_handler;        /* io_conn_read_max again once drained, as client.c */
    size_t read_max;
    int scan_failed;
    size_t replies;              /* complete top-level replies */
    int connected;               /* IO_CONNECTED came */
    int events;                  /* other IO_* that came (the last closed us) */
    int closed;                  /* io_conn_close was called */
    int pause_next;              /* the next read pauses reading, as pause_for() */
    int paused;
    struct bytes got;            /* every byte that reached the input, in order */
    struct bytes queued;         /* every byte queued for the server, in order */
    char why[256];               /* io_conn_tls_error at the last IO_TLS */
    struct server_end *srv;
};

/* ---- the server: an SSL on memory BIOs, or raw bytes ------------------- */

struct server_end {
    int fd;                      /* -1 once closed */
    SSL *ssl;                    /* NULL in mode 0 */
    int hs_done;
    int dead;                    /* the server SSL failed (the client's alert, or cut):
                                    it sends nothing more, what it sent still counts */
    struct bytes wire;           /* bytes for the socket, not yet written */
    size_t wire_off;
    size_t wire_total;           /* bytes ever put on the wire */
    size_t written;              /* bytes ever written to the socket */
    size_t read;                 /* bytes ever read from the socket */
    struct bytes expect;         /* application data sent before any corruption */
    struct bytes recv;           /* what the server decrypted */
    size_t replies;              /* mode 2: top-level values generated */
    int corrupt;                 /* garbage or a tampered record is on the wire */
    int garbage;                 /* raw garbage is on the wire (may look incomplete) */
    int tampered;                /* a whole tampered record after clean ones */
    int close_notify;            /* a close_notify after clean records */
    int rekeyed;                 /* a key update or a renegotiation was asked for: */
    size_t expect_at_rekey;      /* expect.len then */
    /* mode 3: what happens to the server's handshake bytes */
    int attack;                  /* 0 none, 1 flip, 2 cut, 3 insert garbage */
    size_t attack_at;            /* offset into everything the server sent */
    int attacked;                /* the attack was applied */
};

/* got[from..] (the rest was checked before) is what the server sent there. */
static void check_prefix(const struct client_end *cl, size_t from)
{
    const struct server_end *sv = cl->srv;

    if (sv->ssl == NULL)
        return;
    if (cl->got.len > sv->expect.len ||
        memcmp(cl->got.p + from, sv->expect.p + from, cl->got.len - from) != 0) {
        fprintf(stderr, "fuzz_tls: the client got %zu bytes that are not the first %zu the "
                "server sent\n", cl->got.len, sv->expect.len);
        abort();
    }
}

static void cl_read(void *arg)
{
    struct client_end *cl = arg;
    struct evbuffer *in;

    if (cl->closed)
        die("read callback after io_conn_close");
    in = cl->io.in;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            die("evbuffer_peek");
        bytes_add(&cl->got, v.iov_base, v.iov_len);
        check_prefix(cl, cl->got.len - v.iov_len);
        while (!cl->scan_failed && used < v.iov_len) {
            struct resp_reply_info ri;
            int done = 0;
            ssize_t n = resp_scan_feed(&cl->scan, (const char *)v.iov_base + used,
                                       v.iov_len - used, &done, &ri);

            if (n < 0) {
                if (cl->must_scan) {
                    fprintf(stderr, "fuzz_tls: the scanner failed on valid RESP: %s\n",
                            resp_scan_error(&cl->scan));
                    abort();
                }
                cl->scan_failed = 1;
                break;
            }
            used += (size_t)n;
            cl->replies += done;
        }
        evbuffer_drain(in, v.iov_len);
        if (cl->scan_failed && cl->close_on_scan_error) {
            io_conn_close(&cl->io);            /* "protocol error from master" */
            cl->closed = 1;
            return;
        }
    }
    if (cl->rearm_in_handler && cl->read_max > 0)
        io_conn_read_max(&cl->io, cl->read_max);
    if (cl->pause_next) {
        cl->pause_next = 0;
        cl->paused = 1;
        io_conn_read(&cl->io, 0);
    }
}

static void cl_drained(void *arg)
{
    struct client_end *cl = arg;

    if (cl->closed)
        die("drained callback after io_conn_close");
}

static void cl_event(void *arg, int what, int err)
{
    struct client_end *cl = arg;
    const struct server_end *sv = cl->srv;

    (void)err;
    if (cl->closed)
        die("event callback after io_conn_close");
    if (what == IO_CONNECTED) {
        if (cl->connected)
            die("IO_CONNECTED twice");
        if (cl->raw)
            die("connected to raw bytes");
        cl->connected = 1;
        return;
    }
    if (what & IO_TLS) {
        const char *why = io_conn_tls_error(&cl->io);
        size_t n = strlen(why);

        if (n == 0 || n >= sizeof(cl->why))
            die("an IO_TLS error without a reason");
        for (size_t i = 0; i < n; i++)
            if (why[i] < 0x20 || why[i] > 0x7e)
                die("a non-printable byte in the IO_TLS reason");
        memcpy(cl->why, why, n + 1);
    }
    cl->events |= what;
    /* Once the handshake is done, and while the server's end is open, an
     * end or a read error comes after everything sent before it. A
     * renegotiation or a key update may fail the session (OpenSSL's client
     * fails a renegotiation asked for twice in a row: "bad length"): then
     * only what came before the first must have arrived. */
    if (cl->connected && sv->fd >= 0 && sv->ssl != NULL &&
        (what & (IO_EOF | IO_TLS))) {
        size_t need = (what & IO_TLS) && sv->rekeyed ? sv->expect_at_rekey : sv->expect.len;

        if (cl->got.len < need) {
            fprintf(stderr, "fuzz_tls: event 0x%x (%s) after %zu of %zu bytes\n", what,
                    cl->why, cl->got.len, need);
            abort();
        }
        if ((what & IO_EOF) && !sv->close_notify)
            die("IO_EOF without a close_notify while the server's end is open");
    }
    io_conn_close(&cl->io);
    cl->closed = 1;
}

static const struct io_handler cl_handler = { cl_read, cl_drained, cl_event };

/* ---- driving both ends ------------------------------------------------- */

struct run {
    struct client_end *cl;
    struct server_end *sv;
    int mode;
    int close_at_end;            /* close the server's end once the ops are done */
    uint32_t prng;
    size_t chunk_max;            /* socket writes of 1..chunk_max bytes, 0 = all */
};

static uint32_t prng_next(struct run *r)
{
    r->prng ^= r->prng << 13;
    r->prng ^= r->prng >> 17;
    r->prng ^= r->prng << 5;
    return r->prng;
}

static size_t fionread(int fd)
{
    int n = 0;

    if (fd < 0 || ioctl(fd, FIONREAD, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

/* Everything that changes when something happens. */
static size_t progress(const struct run *r)
{
    const struct client_end *cl = r->cl;

    return cl->got.len * 3 + r->sv->recv.len * 5 + (size_t)cl->events * 7 + cl->closed +
           (size_t)cl->connected * 11 + fionread(cl->closed ? -1 : cl->io.fd) * 13 +
           fionread(r->sv->fd) * 17 + io_conn_out_len(&cl->io) * 19 + r->sv->read * 23 +
           r->sv->written * 29;
}

/* One turn of the loop: what is ready or active runs, then back here.
 * (EVLOOP_NONBLOCK alone turns until nothing is ready: a busy loop in io.c
 * would never come back, and show only as a timeout.) */
static void loop_once(void)
{
    if (event_base_loop(proxy.base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0)
        die("event_base_loop");
}

static int poll_fd(int fd, short ev)
{
    struct pollfd p = { fd, ev, 0 };

    return poll(&p, 1, 0) == 1 && (p.revents & (ev | POLLHUP | POLLERR));
}

/* An armed event on a ready socket must get something done when the loop
 * turns; else io.c would turn the loop for nothing until the socket
 * changes (a busy loop). */
static void check_spin(struct run *r)
{
    const struct client_end *cl = r->cl;

    for (int i = 0; i < 3; i++) {
        size_t before;
        int rd, wr;

        if (cl->closed)
            return;
        rd = cl->io.rd_on && poll_fd(cl->io.fd, POLLIN);
        wr = cl->io.waiting && poll_fd(cl->io.fd, POLLOUT);
        if (!rd && !wr)
            return;
        before = progress(r);
        loop_once();
        if (progress(r) != before)
            return;
    }
    fprintf(stderr, "fuzz_tls: the loop spins: the %s event is on, the socket ready (%zu "
            "bytes to read, %zu to write) and nothing happens\n",
            cl->io.rd_on && poll_fd(cl->io.fd, POLLIN) ? "read" : "write",
            fionread(cl->io.fd), io_conn_out_len(&cl->io));
    abort();
}

/* Run the loop until nothing moves (bounded). */
static void quiesce(struct run *r)
{
    size_t last = progress(r);
    int still = 0;

    for (int i = 0; i < LOOP_MAX && still < 3; i++) {
        size_t now;

        loop_once();
        now = progress(r);
        still = now == last ? still + 1 : 0;
        last = now;
    }
    check_spin(r);
}

/* The server SSL's output onto the wire; in mode 3 the attack on the
 * handshake bytes happens here. */
static void server_collect(struct run *r)
{
    static const char alert[] = "\x15\x03\x03\x00\x02\x02\x28garbage";  /* holds a NUL */
    struct server_end *sv = r->sv;
    unsigned char buf[4096];
    int n;

    if (sv->ssl == NULL)
        return;
    while ((n = BIO_read(SSL_get_wbio(sv->ssl), buf, sizeof(buf))) > 0) {
        size_t len = (size_t)n, from = 0;

        if (sv->attack == 2 && sv->attacked)
            continue;                          /* cut: nothing more goes out */
        if (sv->attack != 0 && !sv->attacked && sv->wire_total + len > sv->attack_at) {
            size_t at = sv->attack_at - sv->wire_total;

            sv->attacked = 1;
            sv->corrupt = 1;                   /* nothing after it is checked */
            sv->garbage = 1;
            if (sv->attack == 1) {
                buf[at] ^= 0x5a;
            } else if (sv->attack == 2) {
                len = at;
                sv->dead = 1;
            } else {                           /* a fatal alert, then garbage */
                bytes_add(&sv->wire, buf, at);
                bytes_add(&sv->wire, alert, sizeof(alert) - 1);
                from = at;
            }
        }
        bytes_add(&sv->wire, buf + from, len - from);
        sv->wire_total += (size_t)n;
    }
}

/* Write the wire to the socket: chunked (the loop runs between chunks) or
 * all at once, as far as the socket takes it. */
static void server_flush(struct run *r, int chunked)
{
    struct server_end *sv = r->sv;
    int chunks = 0;

    server_collect(r);
    while (sv->fd >= 0 && sv->wire_off < sv->wire.len) {
        size_t left = sv->wire.len - sv->wire_off, n = left;
        ssize_t w;

        /* The first pieces split records anywhere; a long wire's rest goes
         * whole (the syscalls are what a run costs). */
        if (chunked && r->chunk_max > 0 && chunks++ < 64)
            n = 1 + prng_next(r) % r->chunk_max;
        if (n > left)
            n = left;
        w = write(sv->fd, sv->wire.p + sv->wire_off, n);
        if (w <= 0)
            break;                             /* full (or the client closed) */
        sv->wire_off += (size_t)w;
        sv->written += (size_t)w;
        if (chunked)
            loop_once();
    }
    if (sv->wire_off == sv->wire.len)
        sv->wire_off = sv->wire.len = 0;
}

/* Read what the client sent and, with TLS, decrypt it. */
static void server_read(struct run *r)
{
    struct server_end *sv = r->sv;
    unsigned char buf[16384];
    ssize_t n;

    while (sv->fd >= 0 && (n = read(sv->fd, buf, sizeof(buf))) > 0) {
        sv->read += (size_t)n;
        if (sv->ssl != NULL && BIO_write(SSL_get_rbio(sv->ssl), buf, (int)n) != (int)n)
            die("BIO_write");
    }
    if (sv->ssl == NULL || sv->dead)
        return;
    if (!sv->hs_done) {
        int rc = SSL_do_handshake(sv->ssl);

        if (rc == 1) {
            sv->hs_done = 1;
        } else {
            int e = SSL_get_error(sv->ssl, rc);

            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                sv->dead = 1;
            ERR_clear_error();
            return;
        }
    }
    for (;;) {
        int k = SSL_read(sv->ssl, buf, sizeof(buf));

        if (k <= 0) {
            int e = SSL_get_error(sv->ssl, k);

            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                sv->dead = 1;                  /* the client's alert, or its close */
            ERR_clear_error();
            break;
        }
        bytes_add(&sv->recv, buf, (size_t)k);
        if (sv->recv.len > r->cl->queued.len ||
            memcmp(sv->recv.p, r->cl->queued.p, sv->recv.len) != 0)
            die("the server decrypted bytes the client did not queue (or not in order)");
    }
}

/* Application data through the server SSL. */
static void server_send(struct run *r, const void *p, size_t n, size_t replies)
{
    struct server_end *sv = r->sv;
    int w;

    if (sv->dead || !sv->hs_done || sv->close_notify || n == 0)
        return;
    ERR_clear_error();
    w = SSL_write(sv->ssl, p, (int)n);
    if (w <= 0) {                              /* mid-renegotiation: say it later */
        if (SSL_get_error(sv->ssl, w) != SSL_ERROR_WANT_READ)
            sv->dead = 1;
        ERR_clear_error();
        return;
    }
    if ((size_t)w != n)
        die("a partial SSL_write on a memory BIO");
    if (!sv->corrupt) {
        bytes_add(&sv->expect, p, n);
        sv->replies += replies;
    }
    server_collect(r);
}

/* One record with one ciphertext byte flipped: the client must fail on it. */
static void server_tamper(struct run *r, uint8_t where)
{
    struct server_end *sv = r->sv;
    size_t start, body;

    if (sv->dead || !sv->hs_done || sv->close_notify)
        return;
    server_collect(r);
    start = sv->wire.len;
    if (SSL_write(sv->ssl, "+tampered\r\n", 11) != 11) {
        ERR_clear_error();
        return;
    }
    server_collect(r);
    if (sv->wire.len - start < 5 + 17)
        die("a record shorter than its MAC");
    body = sv->wire.len - start - 5;
    sv->wire.p[start + 5 + where % body] ^= 0x01;
    if (!sv->corrupt)
        sv->tampered = 1;
    sv->corrupt = 1;
}

/* Alternate the client's loop and the server's handshake until both are
 * done (or one failed). */
static void handshake(struct run *r)
{
    for (int i = 0; i < 64; i++) {
        quiesce(r);
        if (r->cl->closed || r->sv->dead)
            break;
        server_read(r);
        server_flush(r, 1);
        if (r->sv->hs_done && r->cl->connected)
            break;
    }
    if (!r->sv->attacked)
        r->sv->attack = 0;         /* on the handshake only */
}

/* Everything left goes out, the server reads everything, the client reads
 * again: then the loop must be idle. */
static void settle(struct run *r)
{
    struct client_end *cl = r->cl;

    if (!cl->closed && cl->paused) {           /* as backend_resume() */
        cl->paused = 0;
        io_conn_read(&cl->io, 1);
        if (evbuffer_get_length(cl->io.in) > 0)
            io_conn_read_again(&cl->io);
    }
    cl->pause_next = 0;
    cl->rearm_in_handler = 1;                  /* else one read_max's worth per turn */
    for (int i = 0; i < 1000; i++) {
        size_t before = progress(r);

        if (!cl->closed && cl->read_max > 0)
            io_conn_read_max(&cl->io, cl->read_max);
        server_flush(r, 0);
        quiesce(r);
        server_read(r);
        if (progress(r) == before && r->sv->wire_off == r->sv->wire.len)
            break;
    }
    quiesce(r);
}

static void client_queue(struct run *r, const void *p, size_t n)
{
    struct client_end *cl = r->cl;

    if (cl->closed || n == 0)
        return;
    evbuffer_add(cl->io.out, p, n);
    bytes_add(&cl->queued, p, n);
    io_conn_queued(&cl->io);
}

static void pattern(unsigned char *buf, size_t n, size_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)('a' + (seed + i) % 26);
}

enum op {
    OP_SEND,         /* application data from the input (mode 2: valid RESP) */
    OP_FLUSH,        /* the wire onto the socket in chunks */
    OP_BIG,          /* a payload over one record */
    OP_CWRITE,       /* the client queues a few bytes */
    OP_CWRITE_BIG,   /* ... or more than the socket takes */
    OP_SREAD,        /* the server reads the socket */
    OP_GARBAGE,      /* raw bytes after the records */
    OP_TAMPER,       /* a record with a flipped bit */
    OP_REKEY,        /* TLS 1.3 key update (asking for the client's), or renegotiation */
    OP_PAUSE,        /* the next read pauses reading, as pause_for() */
    OP_RESUME,       /* as backend_resume() */
    OP_LOOP,         /* a few turns of the loop */
    OP_CLOSE_NOTIFY, /* the server's close_notify */
    OP_REARM,        /* io_conn_read_max again, as client.c does */
    OP_IDLE,         /* run until idle: nothing may spin */
    OP_COUNT
};

static void run_op(struct run *r, struct src *s)
{
    struct client_end *cl = r->cl;
    struct server_end *sv = r->sv;
    unsigned char buf[65536];
    uint8_t op = take(s), a = take(s);
    struct bytes b = { 0 };
    size_t n;

    switch (op % OP_COUNT) {
    case OP_SEND:
        if (r->mode == 2) {
            /* Values made of the next a bytes, at least one. */
            struct src sub = { s->p, s->n < a ? s->n : a };
            size_t k = 0;

            s->p += sub.n;
            s->n -= sub.n;
            do {
                gen_value(&b, &sub, 0);
                k++;
            } while (sub.n > 0);
            server_send(r, b.p, b.len, k);
        } else {
            n = s->n < a ? s->n : a;
            server_send(r, s->p, n, 0);
            s->p += n;
            s->n -= n;
        }
        break;
    case OP_FLUSH:
        server_flush(r, 1);
        break;
    case OP_BIG:
        n = 1000 + (size_t)a * 200;            /* up to 52 KB: several records */
        if (r->mode == 2) {
            char hdr[32];

            snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
            bytes_str(&b, hdr);
            pattern(buf, n, sv->expect.len);
            bytes_add(&b, buf, n);
            bytes_str(&b, "\r\n");
            server_send(r, b.p, b.len, 1);
        } else {
            pattern(buf, n, sv->expect.len);
            server_send(r, buf, n, 0);
        }
        break;
    case OP_CWRITE:
        n = s->n < a % 64 ? s->n : a % 64;
        client_queue(r, s->p, n);
        s->p += n;
        s->n -= n;
        loop_once();
        break;
    case OP_CWRITE_BIG:
        n = 4096 + (size_t)a * 240;            /* up to 65 KB */
        pattern(buf, n, cl->queued.len);
        client_queue(r, buf, n);
        loop_once();
        break;
    case OP_SREAD:
        server_read(r);
        break;
    case OP_GARBAGE:
        n = s->n < a ? s->n : a;
        if (n == 0 || sv->dead)
            break;
        server_collect(r);
        bytes_add(&sv->wire, s->p, n);
        s->p += n;
        s->n -= n;
        sv->garbage = 1;
        sv->corrupt = 1;
        break;
    case OP_TAMPER:
        server_tamper(r, a);
        break;
    case OP_REKEY: {
        int rc;

        if (sv->dead || !sv->hs_done || sv->close_notify)
            break;
        if (!sv->rekeyed)
            sv->expect_at_rekey = sv->expect.len;
        sv->rekeyed = 1;
        if (SSL_version(sv->ssl) >= TLS1_3_VERSION)
            (void)SSL_key_update(sv->ssl, a & 1 ? SSL_KEY_UPDATE_REQUESTED
                                                : SSL_KEY_UPDATE_NOT_REQUESTED);
        else
            (void)SSL_renegotiate(sv->ssl);
        rc = SSL_do_handshake(sv->ssl);
        if (rc <= 0) {
            int e = SSL_get_error(sv->ssl, rc);

            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                sv->dead = 1;
        }
        ERR_clear_error();
        server_collect(r);
        break;
    }
    case OP_PAUSE:
        cl->pause_next = 1;
        break;
    case OP_RESUME:
        if (!cl->closed && cl->paused) {
            cl->paused = 0;
            io_conn_read(&cl->io, 1);
            if (evbuffer_get_length(cl->io.in) > 0)
                io_conn_read_again(&cl->io);
        }
        break;
    case OP_LOOP:
        for (int i = 0; i < 1 + a % 8; i++)
            loop_once();
        break;
    case OP_CLOSE_NOTIFY:
        if (sv->dead || !sv->hs_done || sv->close_notify)
            break;
        /* Not while renegotiating: "shutdown while in init" sends nothing. */
        if (SSL_shutdown(sv->ssl) >= 0)
            sv->close_notify = !sv->corrupt;
        ERR_clear_error();
        server_collect(r);
        break;
    case OP_REARM:
        if (!cl->closed && cl->read_max > 0)
            io_conn_read_max(&cl->io, cl->read_max);
        break;
    case OP_IDLE:
        quiesce(r);
        break;
    }
    bytes_free(&b);
}

/* ---- one run ----------------------------------------------------------- */

static void run_raw(struct run *r, struct src *s, int server_reads)
{
    loop_once();                               /* the ClientHello goes out */
    while (s->n > 0 && !r->cl->closed) {
        size_t n = 1 + prng_next(r) % (r->chunk_max ? r->chunk_max : 64);

        if (n > s->n)
            n = s->n;
        bytes_add(&r->sv->wire, s->p, n);
        s->p += n;
        s->n -= n;
        server_flush(r, 0);
        if (server_reads)
            server_read(r);
        loop_once();
        check_spin(r);
    }
    quiesce(r);
}

static void run_tls(struct run *r, struct src *s)
{
    struct client_end *cl = r->cl;
    struct server_end *sv = r->sv;

    handshake(r);
    if (r->mode != 3 && !cl->connected) {
        fprintf(stderr, "fuzz_tls: a clean handshake failed: events 0x%x %s\n", cl->events,
                cl->why);
        abort();
    }
    if (r->mode == 3 && cl->connected && sv->attack == 0 && !sv->hs_done)
        die("connected while the server's handshake is not done");
    while (s->n > 0 && !cl->closed && cl->connected) {
        run_op(r, s);
        check_spin(r);
    }
    if (cl->closed)
        return;
    settle(r);
    if (cl->closed || !cl->connected)
        return;
    /* The server's end is open, the loop idle, the server read all. */
    if (cl->got.len != sv->expect.len) {
        fprintf(stderr, "fuzz_tls: idle with %zu of %zu bytes delivered\n", cl->got.len,
                sv->expect.len);
        abort();
    }
    if (sv->tampered && !sv->garbage)
        die("a tampered record reached the client and nothing was reported");
    if (sv->close_notify && !sv->garbage)
        die("a close_notify reached the client and nothing was reported");
    if (r->mode == 2 && !sv->corrupt && cl->replies != sv->replies) {
        fprintf(stderr, "fuzz_tls: %zu replies generated, %zu framed\n", sv->replies,
                cl->replies);
        abort();
    }
    if (!sv->dead && sv->recv.len != cl->queued.len) {
        fprintf(stderr, "fuzz_tls: idle with %zu of %zu queued bytes decrypted\n",
                sv->recv.len, cl->queued.len);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready, verbose;
    struct client_end *cl;
    struct server_end *sv;
    struct run r;
    struct src s = { data, size };
    uint8_t mode, flags, rmax, attack;
    size_t attack_at;
    const char *name = NAME;
    int bad_name = 0;
    SSL_CTX *sctx;
    int fds[2];

    if (!ready) {
        init_once();
        ready = 1;
        verbose = getenv("FUZZ_TLS_VERBOSE") != NULL;
    }
    if (size < 6)
        return 0;
    sctx = server_ctx;
    mode = take(&s) % 4;
    flags = take(&s);
    rmax = take(&s);
    attack = take(&s);
    attack_at = (size_t)take(&s) << 8;
    attack_at |= take(&s);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        die("socketpair");
    if (flags & 0x02) {                        /* the client's writes fill it soon */
        int sz = 4096;

        (void)setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }
    if (flags & 0x20) {                        /* so do the server's */
        int sz = 4096;

        (void)setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }

    cl = calloc(1, sizeof(*cl));
    sv = calloc(1, sizeof(*sv));
    if (cl == NULL || sv == NULL)
        abort();
    resp_scan_init(&cl->scan);
    cl->srv = sv;
    cl->raw = mode == 0;
    cl->must_scan = mode == 2;
    cl->close_on_scan_error = (flags & 0x10) != 0;
    cl->rearm_in_handler = (flags & 0x04) != 0;
    cl->read_max = rmax < 16 ? rmax : rmax < 128 ? (size_t)rmax * 37 : (size_t)(rmax - 127) * 257;
    sv->fd = fds[1];

    memset(&r, 0, sizeof(r));
    r.cl = cl;
    r.sv = sv;
    r.mode = mode;
    r.close_at_end = (flags & 0x08) != 0 || mode == 0;
    r.prng = 2166136261u;
    for (size_t i = 0; i < size; i++)
        r.prng = (r.prng ^ data[i]) * 16777619u;
    r.prng |= 1;
    r.chunk_max = attack & 0x80 ? 0 : (size_t)(attack & 0x7f) + 1;

    if (mode == 3) {
        sv->attack = attack & 3;
        sv->attack_at = attack_at % 2048;
        if (attack & 0x04) {
            name = attack & 0x08 ? WRONG_IP : WRONG_NAME;
            bad_name = 1;
        } else if (attack & 0x08)
            sctx = untrusted_ctx;
    }
    if (mode != 0) {
        BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());

        sv->ssl = SSL_new(sctx);
        if (sv->ssl == NULL || rb == NULL || wb == NULL)
            die("cannot make the server session");
        SSL_set_bio(sv->ssl, rb, wb);
        SSL_set_accept_state(sv->ssl);
        if (flags & 0x01)
            SSL_set_max_proto_version(sv->ssl, TLS1_2_VERSION);
    }

    io_conn_attach(&cl->io, fds[0], 60000, &cl_handler, cl, 0, client_ctx, name);
    io_conn_read(&cl->io, 1);
    if (cl->read_max > 0)
        io_conn_read_max(&cl->io, cl->read_max);
    if (flags & 0x40) {                        /* queued before the handshake, as set-up commands */
        static const char role[] = "*1\r\n$4\r\nROLE\r\n";

        client_queue(&r, role, sizeof(role) - 1);
    }

    if (mode == 0)
        run_raw(&r, &s, (flags & 0x80) != 0);
    else
        run_tls(&r, &s);

    /* An attack on the handshake may break it before the certificate is
     * looked at: only an intact handshake must fail on the certificate. */
    if (mode == 3 && (bad_name || sctx != server_ctx)) {
        if (cl->connected)
            die("connected to a certificate for another name, or an untrusted one");
        if (!sv->attacked && !(cl->closed && strncmp(cl->why, "certificate verify failed",
                                                     strlen("certificate verify failed")) == 0)) {
            fprintf(stderr, "fuzz_tls: a bad certificate or name, and no verify failure: "
                    "events 0x%x, why '%s'\n", cl->events, cl->why);
            abort();
        }
    }

    /* The end: the server's end goes (or not), every session must end. */
    if (r.close_at_end && !cl->closed) {
        server_flush(&r, 0);
        close(sv->fd);
        sv->fd = -1;
        quiesce(&r);
        if (!cl->closed)
            die("the server's end closed and the client was not told");
    }
    if (!cl->closed) {
        quiesce(&r);
        io_conn_close(&cl->io);
        cl->closed = 1;
    }
    if (verbose)
        fprintf(stderr, "fuzz_tls: mode %d: connected %d, events 0x%x (%s), %zu of %zu bytes "
                "in, %zu replies, %zu of %zu bytes out, server %s%s%s%s%s\n", mode,
                cl->connected, cl->events, cl->why, cl->got.len, sv->expect.len, cl->replies,
                sv->recv.len, cl->queued.len, sv->dead ? "dead " : "",
                sv->corrupt ? "corrupt " : "", sv->tampered ? "tampered " : "",
                sv->close_notify ? "close_notify " : "", sv->rekeyed ? "rekeyed" : "");
    if (sv->fd >= 0)
        close(sv->fd);
    loop_once();                               /* nothing may fire for a closed conn */
    SSL_free(sv->ssl);
    resp_scan_free(&cl->scan);
    bytes_free(&cl->got);
    bytes_free(&cl->queued);
    bytes_free(&sv->wire);
    bytes_free(&sv->expect);
    bytes_free(&sv->recv);
    free(cl);
    free(sv);
    ERR_clear_error();
    return 0;
}
