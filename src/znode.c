/*
 * znode: parse the master znode (see znode.h for the formats and outcomes).
 *
 *   bytes ──> size / NUL checks ──> trim ──> empty? ──> NO_MASTER
 *                                             │
 *                      first byte '{' ? JSON : plain  (or forced by fmt)
 *                      │                          │
 *            jansson: object, "master"      host:port checks
 *            null/absent ──> NO_MASTER            │
 *            string ──> host:port checks ─────────┴──> MASTER or BAD_DATA
 *
 * Decisions, with the reasons:
 *
 * - Empty or whitespace-only data is NO_MASTER ("znode is empty"): a node
 *   created without data is a director that has not written yet, not garbage.
 * - JSON "master":"" is BAD_DATA. redis_failover writes null when it has no
 *   master (NodeManager#current_nodes: `@master ? @master.to_s : nil`) and
 *   never an empty string, so "" means a different or broken writer.
 * - JSON is parsed with JSON_REJECT_DUPLICATES: redis_failover builds the
 *   document from a Ruby Hash, which cannot hold a key twice, so a duplicate
 *   "master" is a foreign writer and picking either value would be a guess.
 * - redis_failover formats a node as "#{host}:#{port}", so an IPv6 master
 *   arrives without brackets ("::1:6379"). Inside JSON, a host part with
 *   colons is accepted when it is a valid IPv6 address, splitting at the last
 *   colon (the port is always last and always digits, so this is exactly what
 *   the writer meant). Plain text requires brackets, as DESIGN section 3 says.
 * - IPv6 zone ids ("[fe80::1%eth0]:6379") are rejected: an interface name is
 *   local to one host, so it cannot be meaningful in a znode that every proxy
 *   on every host reads, and libevent's resolver path would not take it.
 * - Host names are checked for plausibility only (letters, digits, '-', '.',
 *   '_', at most 253 bytes plus an optional final dot, no empty labels); an
 *   all-digits-and-dots name must be a valid IPv4 address, so "999.1.1.1"
 *   is refused here instead of going to DNS.
 * - We do not reuse util_parse_hostport: it needs a NUL-terminated string,
 *   copies the unescaped input into its message, and does not check the host.
 */
#include "znode.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HOSTNAME_MAX 253             /* DNS limit, without the optional final dot */

static void set_why(char *why, size_t whylen, const char *fmt, ...) RZ_PRINTF(3, 4);

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* One byte, escaped for a reason string: "a", "\x0a", "\\\"". */
static const char *esc_byte(char c, char *buf, size_t buflen)
{
    util_escape(&c, 1, buf, buflen);
    return buf;
}

/* Copy of a NUL-terminated message with bytes outside printable ASCII as
 * \xNN (jansson quotes the offending input in its error text). */
static void sanitize(const char *in, char *out, size_t outlen)
{
    size_t o = 0;

    for (; *in != '\0'; in++) {
        unsigned char c = (unsigned char)*in;

        if (c >= 0x20 && c <= 0x7e) {
            if (o + 1 >= outlen)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 4 >= outlen)
                break;
            snprintf(out + o, outlen - o, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
}

static bool is_ipv6(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a6;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1;
}

static bool is_ipv4(const char *s, size_t n)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a4;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, &a4) == 1;
}

/* Digits only, 1..65535. Returns 0 or -1 with a reason in err. */
static int parse_port(const char *s, size_t n, int *port, char *err, size_t errlen)
{
    long v = 0;

    if (n == 0) {
        set_why(err, errlen, "missing port");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            set_why(err, errlen, "port is not a number");
            return -1;
        }
    }
    if (n > 5) {
        set_why(err, errlen, "port out of range 1-65535");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    if (v < 1 || v > 65535) {
        set_why(err, errlen, "port out of range 1-65535");
        return -1;
    }
    *port = (int)v;
    return 0;
}

/* A plausible DNS name or dotted IPv4 address (not empty, no ':'). */
static int check_hostname(const char *s, size_t n, char *err, size_t errlen)
{
    size_t body = n;
    bool numeric = true;
    char eb[16];

    if (body > 0 && s[body - 1] == '.')
        body--;                      /* "redis.example.com." is a FQDN */
    if (body > HOSTNAME_MAX) {
        set_why(err, errlen, "host too long (%zu bytes, max %d)", n, HOSTNAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (is_digit(c) || c == '.')
            continue;
        numeric = false;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_')
            continue;
        set_why(err, errlen, "bad character '%s' in host", esc_byte(c, eb, sizeof(eb)));
        return -1;
    }
    if (body == 0 || s[0] == '.' || memmem(s, n, "..", 2) != NULL) {
        set_why(err, errlen, "bad host name: empty label");
        return -1;
    }
    if (s[0] == '-') {
        set_why(err, errlen, "bad host name: starts with '-'");
        return -1;
    }
    if (numeric && !is_ipv4(s, n)) {
        set_why(err, errlen, "bad IPv4 address");
        return -1;
    }
    return 0;
}

/*
 * "host:port" or "[v6]:port" in s[0..n), no surrounding whitespace.
 * bare_v6 also accepts "v6addr:port" (redis_failover's own formatting).
 * host gets the address without brackets (hostlen >= 256).
 */
static int parse_hostport(const char *s, size_t n, bool bare_v6, char *host, size_t hostlen,
                          int *port, char *err, size_t errlen)
{
    const char *h, *portp;
    size_t hn;
    char eb[16];

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= ' ' || c >= 0x7f) {
            set_why(err, errlen, "bad character '%s'", esc_byte(s[i], eb, sizeof(eb)));
            return -1;
        }
    }
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);

        if (rb == NULL) {
            set_why(err, errlen, "missing ']'");
            return -1;
        }
        h = s + 1;
        hn = (size_t)(rb - h);
        if (hn == 0) {
            set_why(err, errlen, "empty host");
            return -1;
        }
        if (memchr(h, '%', hn) != NULL) {
            set_why(err, errlen, "IPv6 zone ids are not supported");
            return -1;
        }
        if (!is_ipv6(h, hn)) {
            set_why(err, errlen, "bad IPv6 address");
            return -1;
        }
        if (rb + 1 == s + n) {
            set_why(err, errlen, "missing ':port'");
            return -1;
        }
        if (rb[1] != ':') {
            set_why(err, errlen, "garbage after ']'");
            return -1;
        }
        portp = rb + 2;
    } else {
        const char *colon = memrchr(s, ':', n);

        if (colon == NULL) {
            set_why(err, errlen, "missing ':port'");
            return -1;
        }
        h = s;
        hn = (size_t)(colon - s);
        if (hn == 0) {
            set_why(err, errlen, "empty host");
            return -1;
        }
        if (memchr(h, ':', hn) != NULL) {
            if (!is_ipv6(h, hn)) {
                set_why(err, errlen, "more than one ':'");
                return -1;
            }
            if (!bare_v6) {
                set_why(err, errlen, "IPv6 address must be in brackets");
                return -1;
            }
        } else if (check_hostname(h, hn, err, errlen) != 0) {
            return -1;
        }
        portp = colon + 1;
    }
    if (parse_port(portp, (size_t)(s + n - portp), port, err, errlen) != 0)
        return -1;
    if (hn >= hostlen) {             /* cannot happen with hostlen 256; stay safe */
        set_why(err, errlen, "host too long");
        return -1;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    return 0;
}

static const char *json_type_phrase(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER:
    case JSON_REAL:    return "a number";
    case JSON_TRUE:    return "true";
    case JSON_FALSE:   return "false";
    case JSON_NULL:    return "null";
    }
    return "unknown";
}

/* "slaves": the ones that parse, the master itself left out. Replicas are a
 * hint for reads (each is checked before any read goes to it), so a bad
 * entry costs that entry, not the master. */
static void parse_replicas(const json_t *slaves, struct znode_master *m)
{
    size_t i;
    json_t *s;

    m->nreplicas = 0;
    if (!json_is_array(slaves))
        return;
    json_array_foreach(slaves, i, s) {
        struct znode_node *n = &m->replicas[m->nreplicas];
        char detail[64];

        if (m->nreplicas == ZNODE_MAX_REPLICAS)
            break;
        if (!json_is_string(s) ||
            parse_hostport(json_string_value(s), json_string_length(s), true, n->host,
                           sizeof(n->host), &n->port, detail, sizeof(detail)) != 0)
            continue;
        if (n->port == m->port && strcmp(n->host, m->host) == 0)
            continue;
        m->nreplicas++;
    }
}

static enum znode_result parse_json(const char *data, size_t len, struct znode_master *m,
                                    char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root, *master;
    enum znode_result r;
    char detail[4 * JSON_ERROR_TEXT_LENGTH];

    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        sanitize(jerr.text, detail, sizeof(detail));
        set_why(why, whylen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                detail);
        return ZNODE_BAD_DATA;
    }
    if (!json_is_object(root)) {     /* unreachable from '{', kept as a guard */
        set_why(why, whylen, "JSON top level is %s, not an object", json_type_phrase(root));
        r = ZNODE_BAD_DATA;
        goto out;
    }
    master = json_object_get(root, "master");
    if (master == NULL) {
        set_why(why, whylen, "no \"master\" key");
        r = ZNODE_NO_MASTER;
    } else if (json_is_null(master)) {
        set_why(why, whylen, "master is null");
        r = ZNODE_NO_MASTER;
    } else if (!json_is_string(master)) {
        set_why(why, whylen, "master is %s, not a string", json_type_phrase(master));
        r = ZNODE_BAD_DATA;
    } else if (json_string_length(master) == 0) {
        set_why(why, whylen, "master is an empty string");
        r = ZNODE_BAD_DATA;
    } else if (parse_hostport(json_string_value(master), json_string_length(master), true,
                              m->host, sizeof(m->host), &m->port, detail,
                              sizeof(detail)) != 0) {
        set_why(why, whylen, "master not host:port: %s", detail);
        r = ZNODE_BAD_DATA;
    } else {
        r = ZNODE_MASTER;
        parse_replicas(json_object_get(root, "slaves"), m);
    }
out:
    json_decref(root);
    return r;
}

enum znode_result znode_parse(const char *data, size_t len, enum znode_format fmt,
                              struct znode_master *m, char *why, size_t whylen)
{
    struct znode_master scratch;
    enum znode_format detected;
    enum znode_result r;
    const char *nul;
    size_t b = 0, e = len;
    char detail[128];

    if (m == NULL)
        m = &scratch;
    memset(m, 0, sizeof(*m));
    m->format = ZNODE_FORMAT_AUTO;
    set_why(why, whylen, "%s", "");

    if (len > ZNODE_MAX_LEN) {
        set_why(why, whylen, "znode too large (%zu bytes, max %d)", len, ZNODE_MAX_LEN);
        return ZNODE_BAD_DATA;
    }
    if (len > 0 && (nul = memchr(data, '\0', len)) != NULL) {
        set_why(why, whylen, "NUL byte at offset %zu", (size_t)(nul - data));
        return ZNODE_BAD_DATA;
    }
    while (b < e && is_space(data[b]))
        b++;
    while (e > b && is_space(data[e - 1]))
        e--;
    if (b == e) {
        set_why(why, whylen, "znode is empty");
        return ZNODE_NO_MASTER;
    }
    detected = data[b] == '{' ? ZNODE_FORMAT_JSON : ZNODE_FORMAT_PLAIN;
    m->format = detected;

    switch (fmt) {
    case ZNODE_FORMAT_AUTO:
        break;
    case ZNODE_FORMAT_PLAIN:
        if (detected != ZNODE_FORMAT_PLAIN) {
            set_why(why, whylen, "expected host:port (znode-format plain), data looks like JSON");
            return ZNODE_BAD_DATA;
        }
        break;
    case ZNODE_FORMAT_JSON:
        if (detected != ZNODE_FORMAT_JSON) {
            set_why(why, whylen,
                    "expected a JSON object (znode-format json), data does not start with '{'");
            return ZNODE_BAD_DATA;
        }
        break;
    default:
        set_why(why, whylen, "unknown znode format %d", (int)fmt);
        return ZNODE_BAD_DATA;
    }

    if (detected == ZNODE_FORMAT_JSON) {
        /* The whole buffer, so line/column in errors match the raw bytes. */
        r = parse_json(data, len, m, why, whylen);
    } else if (parse_hostport(data + b, e - b, false, m->host, sizeof(m->host), &m->port,
                              detail, sizeof(detail)) != 0) {
        set_why(why, whylen, "not host:port: %s", detail);
        r = ZNODE_BAD_DATA;
    } else {
        r = ZNODE_MASTER;
    }
    if (r != ZNODE_MASTER) {
        m->host[0] = '\0';
        m->port = 0;
    }
    return r;
}

static const char *const format_names[] = {
    [ZNODE_FORMAT_AUTO] = "auto",
    [ZNODE_FORMAT_PLAIN] = "plain",
    [ZNODE_FORMAT_JSON] = "json",
};

int znode_format_parse(const char *s, enum znode_format *out)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcasecmp(s, format_names[i]) == 0) {
            *out = (enum znode_format)i;
            return 0;
        }
    }
    return -1;
}

const char *znode_format_name(enum znode_format f)
{
    if ((unsigned)f < sizeof(format_names) / sizeof(format_names[0]))
        return format_names[f];
    return "unknown";
}

void znode_escape(const char *data, size_t len, char *out, size_t outlen)
{
    util_escape(data, len, out, outlen);
}
