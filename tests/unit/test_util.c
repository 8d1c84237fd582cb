/* util: the allocation-free helpers other modules lean on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "util.h"

/* util_lower works eight bytes at a time: every byte value, at every offset
 * of a word and in the byte-wise tail, must come out as tolower() in the C
 * locale makes it. */
static void test_lower_every_byte(void **state)
{
    char src[40], dst[40], want[40];

    (void)state;
    for (int b = 0; b < 256; b++) {
        for (size_t len = 1; len <= sizeof(src) - 8; len++) {
            for (size_t at = 0; at < len; at++) {
                memset(src, 'Q', len);
                src[at] = (char)b;
                for (size_t i = 0; i < len; i++)
                    want[i] = (char)tolower((unsigned char)src[i]);
                want[len] = '\0';
                assert_int_equal(util_lower(dst, sizeof(dst), src, len), len);
                assert_memory_equal(dst, want, len + 1);
            }
        }
    }
}

static void test_lower_truncates(void **state)
{
    char dst[8];

    (void)state;
    assert_int_equal(util_lower(dst, sizeof(dst), "ABCDEFGHIJ", 10), 7);
    assert_string_equal(dst, "abcdefg");
    assert_int_equal(util_lower(dst, 1, "AB", 2), 0);
    assert_string_equal(dst, "");
    assert_int_equal(util_lower(dst, 0, "AB", 2), 0);
    assert_int_equal(util_lower(dst, sizeof(dst), "@[`{", 4), 4);
    assert_string_equal(dst, "@[`{");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_every_byte),
        cmocka_unit_test(test_lower_truncates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
