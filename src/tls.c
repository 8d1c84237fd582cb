#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf.h"

/* The root cause in OpenSSL's error queue (the first error pushed), as a
 * reason without codes; the queue is emptied. */
static void queue_reason(char *buf, size_t len)
{
    unsigned long first = 0, e;
    const char *reason;

    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
    }
    if (first == 0) {
        snprintf(buf, len, "unknown TLS error");
        return;
    }
#ifdef ERR_SYSTEM_ERROR
    /* OpenSSL 3 keeps an errno (a file that cannot be opened) as the
     * reason, with no text of its own. */
    if (ERR_SYSTEM_ERROR(first)) {
        snprintf(buf, len, "%s", strerror(ERR_GET_REASON(first)));
        return;
    }
#endif
    reason = ERR_reason_error_string(first);
    if (reason != NULL)
        snprintf(buf, len, "%s", reason);
    else
        ERR_error_string_n(first, buf, len);
}

static SSL_CTX *fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *path)
{
    char reason[160];

    queue_reason(reason, sizeof(reason));
    snprintf(err, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "", reason);
    SSL_CTX_free(ctx);
    return NULL;
}

static const char *or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

SSL_CTX *tls_ctx_new(const struct conf_pool *cf, char *err, size_t errlen)
{
    const char *ca_file = or_null(cf->tls_ca_cert_file), *ca_dir = or_null(cf->tls_ca_cert_dir);
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return fail(NULL, err, errlen, "cannot create a TLS context", NULL);
    /* TLS 1.2 is the oldest any maintained redis speaks. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Writes go out of a buffer that may move between retries (io.c copies
     * from the output evbuffer), and may be partial like write(2). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read ahead: a read takes what the socket has, not a record header and
     * then its body (two read(2) per record); io.c asks SSL_has_pending()
     * for what was read ahead. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Redis never renegotiates: one less thing a hostile peer can drive. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (ca_file != NULL || ca_dir != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, ca_dir) != 1)
            return fail(ctx, err, errlen, ca_file ? "tls-ca-cert-file" : "tls-ca-cert-dir",
                        ca_file ? ca_file : ca_dir);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return fail(ctx, err, errlen, "cannot load the system's CA certificates", NULL);
    }
    if (or_null(cf->tls_cert_file) != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cf->tls_cert_file) != 1)
            return fail(ctx, err, errlen, "tls-cert-file", cf->tls_cert_file);
        if (SSL_CTX_use_PrivateKey_file(ctx, cf->tls_key_file, SSL_FILETYPE_PEM) != 1)
            return fail(ctx, err, errlen, "tls-key-file", cf->tls_key_file);
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail(ctx, err, errlen, "tls-key-file does not match tls-cert-file",
                        cf->tls_key_file);
    }
    return ctx;
}

void tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

static int is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

SSL *tls_session_new(SSL_CTX *ctx, const char *host, const char *name, char *err, size_t errlen)
{
    const char *check = or_null(name) ? name : host;
    SSL *s;
    int ok;

    ERR_clear_error();
    s = SSL_new(ctx);
    if (s == NULL) {
        snprintf(err, errlen, "cannot create a TLS session");
        return NULL;
    }
    /* A name goes out as SNI and must be in the certificate (no partial
     * wildcards); an address (RFC 6066 keeps it out of SNI) must be among
     * the certificate's IP addresses. */
    if (is_ip(check)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), check) == 1;
    } else {
        SSL_set_hostflags(s, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set_tlsext_host_name(s, check) == 1 && SSL_set1_host(s, check) == 1;
    }
    if (!ok) {
        queue_reason(err, errlen);
        SSL_free(s);
        return NULL;
    }
    return s;
}

void tls_error(SSL *s, char *err, size_t errlen)
{
    long v = s != NULL ? SSL_get_verify_result(s) : X509_V_OK;
    char reason[160];

    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return;
    }
    queue_reason(reason, sizeof(reason));
    snprintf(err, errlen, "%s", reason);
}
