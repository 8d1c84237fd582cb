/*
 * fuzz_conf: conf_parse_string() on the raw input, then conf_free() on
 * success (LeakSanitizer catches what either path forgets). On failure the
 * message must be NUL-terminated and start with the name we gave.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size heap copy, not NUL-terminated, so ASan sees overreads. */
    char *text = malloc(size ? size : 1);
    struct conf conf;
    char err[256];

    if (text == NULL)
        abort();
    if (size)
        memcpy(text, data, size);
    memset(err, 'x', sizeof(err));
    if (conf_parse_string(text, size, "fuzz", &conf, err, sizeof(err)) == 0) {
        conf_free(&conf);
    } else if (memchr(err, '\0', sizeof(err)) == NULL || strncmp(err, "fuzz", 4) != 0) {
        fprintf(stderr, "fuzz_conf: bad error message\n");
        abort();
    }
    free(text);
    return 0;
}
