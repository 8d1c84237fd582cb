/* util: the allocation-free helpers other modules lean on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A scratch file holding len bytes of data with the given mode; its path
 * into path (a mkstemp template). */
static void scratch_file(char *path, const char *data, size_t len, mode_t mode)
{
    int fd;

    strcpy(path, "/tmp/rz-test-util-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The first line, without \n or \r\n; the mode comes back also when the
 * read fails; errors name the path, never the content. */
static void test_read_password_file(void **state)
{
    char path[64], out[UTIL_PASSWORD_MAX + 1], err[256], big[UTIL_PASSWORD_MAX + 10];
    unsigned mode;

    (void)state;
    scratch_file(path, "s3cret\r\nsecond line\n", 21, 0600);
    assert_int_equal(util_read_password_file(path, out, sizeof(out), &mode, err, sizeof(err)), 6);
    assert_string_equal(out, "s3cret");
    assert_int_equal(mode, 0600);
    unlink(path);

    scratch_file(path, "no newline", 10, 0644);
    assert_int_equal(util_read_password_file(path, out, sizeof(out), &mode, err, sizeof(err)), 10);
    assert_string_equal(out, "no newline");
    assert_int_equal(mode, 0644);
    /* a buffer too small for the line: refused, not cut */
    assert_int_equal(util_read_password_file(path, out, 5, &mode, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "the first line is too long"));
    assert_null(strstr(err, "newline"));
    unlink(path);

    scratch_file(path, "\nhunter2\n", 9, 0640);
    assert_int_equal(util_read_password_file(path, out, sizeof(out), &mode, err, sizeof(err)), -1);
    assert_int_equal(mode, 0640);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "the first line is empty"));
    assert_null(strstr(err, "hunter2"));
    unlink(path);

    /* at most UTIL_PASSWORD_MAX bytes are read */
    memset(big, 'x', sizeof(big));
    scratch_file(path, big, sizeof(big), 0600);
    assert_int_equal(util_read_password_file(path, out, sizeof(out), &mode, err, sizeof(err)),
                     UTIL_PASSWORD_MAX);
    unlink(path);

    assert_int_equal(util_read_password_file(path, out, sizeof(out), &mode, err, sizeof(err)), -1);
    assert_int_equal(mode, 0);
    assert_non_null(strstr(err, "No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_every_byte),
        cmocka_unit_test(test_lower_truncates),
        cmocka_unit_test(test_read_password_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
