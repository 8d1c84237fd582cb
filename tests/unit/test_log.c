/*
 * Unit tests for log.c: levels filter, the line format, and syslog
 * (openlog/syslog are wrapped at link time, so nothing reaches the system
 * logger).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static char sys_ident[64], sys_msg[2048];
static int sys_priority = -1, sys_facility = -1, sys_calls;

void __wrap_openlog(const char *ident, int option, int facility);
void __wrap_syslog(int priority, const char *fmt, ...);
void __wrap_closelog(void);

void __wrap_openlog(const char *ident, int option, int facility)
{
    (void)option;
    snprintf(sys_ident, sizeof(sys_ident), "%s", ident);
    sys_facility = facility;
}

void __wrap_syslog(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sys_msg, sizeof(sys_msg), fmt, ap);
    va_end(ap);
    sys_priority = priority;
    sys_calls++;
}

void __wrap_closelog(void)
{
}

/* Log into a temporary file and return its contents. */
static char *capture(void (*emit)(void))
{
    char path[] = "/tmp/rz-test-log.XXXXXX", err[256];
    int fd = mkstemp(path);
    static char buf[8192];
    FILE *fp;
    size_t n;

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_open(path, err, sizeof(err)), 0);
    emit();
    assert_int_equal(log_open("", err, sizeof(err)), 0);
    fp = fopen(path, "r");
    assert_non_null(fp);
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    unlink(path);
    return buf;
}

static void emit_levels(void)
{
    log_set_level(LOGL_NOTICE);
    log_warn("main", "shown %d", 1);
    log_info("main", "hidden %d", 2);
    log_notice(NULL, "process-wide");
}

static void test_levels_and_format(void **state)
{
    char *out;
    int y, mo, d, h, mi, s, ms, pid;
    char lvl[16], rest[256];

    (void)state;
    log_syslog(0, NULL, 0);
    out = capture(emit_levels);
    assert_null(strstr(out, "hidden"));
    assert_int_equal(sscanf(out, "%d-%d-%d %d:%d:%d.%d %15s %d %255[^\n]", &y, &mo, &d, &h, &mi,
                            &s, &ms, lvl, &pid, rest), 10);
    assert_string_equal(lvl, "warning");
    assert_int_equal(pid, (int)getpid());
    assert_string_equal(rest, "[main] shown 1");
    assert_non_null(strstr(out, " notice "));
    assert_non_null(strstr(out, "process-wide\n"));
}

static void emit_one(void)
{
    log_set_level(LOGL_INFO);
    log_error("pool-a", "disk on fire");
}

static void test_syslog_gets_each_line(void **state)
{
    char expect[64];

    (void)state;
    sys_calls = 0;
    log_syslog(1, "rz-test", 2);            /* log_facility_names[2] = "local0" */
    assert_string_equal(sys_ident, "rz-test");
    assert_int_equal(sys_facility, LOG_LOCAL0);
    assert_non_null(strstr(capture(emit_one), "[pool-a] disk on fire\n"));
    assert_int_equal(sys_calls, 1);
    assert_int_equal(sys_priority, LOG_ERR);
    /* no timestamp (syslog adds its own), no trailing newline */
    snprintf(expect, sizeof(expect), "error %d [pool-a] disk on fire", (int)getpid());
    assert_string_equal(sys_msg, expect);
    log_syslog(0, NULL, 0);
    capture(emit_one);
    assert_int_equal(sys_calls, 1);
}

static void test_facility_names(void **state)
{
    (void)state;
    assert_string_equal(log_facility_names[0], "user");
    log_syslog(1, "x", 1);
    assert_int_equal(sys_facility, LOG_DAEMON);
    log_syslog(1, "x", 9);
    assert_int_equal(sys_facility, LOG_LOCAL7);
    log_syslog(0, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_format),
        cmocka_unit_test(test_syslog_gets_each_line),
        cmocka_unit_test(test_facility_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
