/*
 * fuzz_znode: znode_parse() with every format, plus znode_escape(), on the
 * raw input. Checks the contract in znode.h the sanitizers cannot: why is
 * NUL-terminated printable ASCII, "" on a master, and a master has a port in
 * 1..65535 and a NUL-terminated host.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "znode.h"

static void check(enum znode_result r, const struct znode_master *m, const char *why,
                  size_t whylen)
{
    const char *nul = memchr(why, '\0', whylen);

    if (nul == NULL) {
        fprintf(stderr, "fuzz_znode: why not NUL-terminated\n");
        abort();
    }
    for (const char *c = why; c < nul; c++) {
        if (*c < 0x20 || *c > 0x7e) {
            fprintf(stderr, "fuzz_znode: non-printable byte 0x%02x in why\n",
                    (unsigned char)*c);
            abort();
        }
    }
    if (r == ZNODE_MASTER) {
        if (why[0] != '\0' || m->port < 1 || m->port > 65535 ||
            memchr(m->host, '\0', sizeof(m->host)) == NULL || m->host[0] == '\0') {
            fprintf(stderr, "fuzz_znode: bad master (port %d, why \"%s\")\n", m->port, why);
            abort();
        }
    } else if (r != ZNODE_NO_MASTER && r != ZNODE_BAD_DATA) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum znode_format fmts[] = {
        ZNODE_FORMAT_AUTO, ZNODE_FORMAT_PLAIN, ZNODE_FORMAT_JSON,
    };
    /* An exact-size heap copy so ASan sees any read past the end. */
    char *copy = malloc(size ? size : 1);
    char why[ZNODE_WHY_LEN], small[7], esc[64];
    struct znode_master m;
    enum znode_result r;

    if (copy == NULL)
        abort();
    if (size)
        memcpy(copy, data, size);

    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        memset(&m, 0xa5, sizeof(m));
        memset(why, 'x', sizeof(why));
        r = znode_parse(size ? copy : NULL, size, fmts[i], &m, why, sizeof(why));
        check(r, &m, why, sizeof(why));

        /* Small why buffer, and no outputs at all. */
        memset(small, 'x', sizeof(small));
        (void)znode_parse(copy, size, fmts[i], &m, small, sizeof(small));
        if (memchr(small, '\0', sizeof(small)) == NULL)
            abort();
        if (znode_parse(copy, size, fmts[i], NULL, NULL, 0) != r)
            abort();
    }
    znode_escape(copy, size, esc, sizeof(esc));
    if (memchr(esc, '\0', sizeof(esc)) == NULL)
        abort();
    free(copy);
    return 0;
}
