/* zkacl: which ACLs let anyone change a znode (WRITE or ADMIN for
 * world:anyone), and the text the log and rzproxy-ctl show for them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <zookeeper/zookeeper.h>

#include "zkacl.h"

/* An entry from string literals (struct Id holds char *; never freed here). */
static struct ACL entry(const char *scheme, const char *id, int32_t perms)
{
    struct ACL a;

    a.perms = perms;
    a.id.scheme = (char *)scheme;
    a.id.id = (char *)id;
    return a;
}

static int verdict_of(struct ACL *entries, int32_t n)
{
    struct ACL_vector v = { n, entries };

    return zkacl_world_writable(&v);
}

/* The library's own presets: kazoo's and zkCli's default is the open one. */
static void test_presets(void **state)
{
    (void)state;
    assert_int_equal(zkacl_world_writable(&ZOO_OPEN_ACL_UNSAFE), 0);
    assert_int_equal(zkacl_world_writable(&ZOO_READ_ACL_UNSAFE), -1);
    assert_int_equal(zkacl_world_writable(&ZOO_CREATOR_ALL_ACL), -1);
}

/* WRITE names a master, ADMIN grants WRITE: each alone counts. READ,
 * CREATE and DELETE (children only) do not. */
static void test_which_perms_count(void **state)
{
    struct ACL a[1];

    (void)state;
    a[0] = entry("world", "anyone", ZOO_PERM_WRITE);
    assert_int_equal(verdict_of(a, 1), 0);
    a[0] = entry("world", "anyone", ZOO_PERM_ADMIN);
    assert_int_equal(verdict_of(a, 1), 0);
    a[0] = entry("world", "anyone", ZOO_PERM_READ | ZOO_PERM_CREATE | ZOO_PERM_DELETE);
    assert_int_equal(verdict_of(a, 1), -1);
    a[0] = entry("world", "anyone", 0);
    assert_int_equal(verdict_of(a, 1), -1);
}

/* Only world:anyone, spelled as the server spells it; other schemes name
 * particular clients (an ip range covering everyone is documented as not
 * counted). The first dangerous entry is the one reported. */
static void test_who_counts(void **state)
{
    struct ACL a[4];

    (void)state;
    a[0] = entry("digest", "director:aGFzaA==", ZOO_PERM_ALL);
    a[1] = entry("world", "anyone", ZOO_PERM_READ);
    a[2] = entry("ip", "0.0.0.0/0", ZOO_PERM_WRITE);
    a[3] = entry("World", "Anyone", ZOO_PERM_WRITE);
    assert_int_equal(verdict_of(a, 4), -1);
    a[3] = entry("world", "anyone", ZOO_PERM_WRITE);
    assert_int_equal(verdict_of(a, 4), 3);
    a[1] = entry("world", "anyone", ZOO_PERM_ALL);
    assert_int_equal(verdict_of(a, 4), 1);
}

static void test_empty_and_odd(void **state)
{
    struct ACL a[1];
    struct ACL_vector none = { 0, NULL };

    (void)state;
    assert_int_equal(zkacl_world_writable(NULL), -1);
    assert_int_equal(zkacl_world_writable(&none), -1);
    a[0] = entry(NULL, NULL, ZOO_PERM_ALL);
    assert_int_equal(verdict_of(a, 1), -1);
}

static void test_format(void **state)
{
    struct ACL a[2];
    struct ACL_vector v = { 2, a };
    char out[64];

    (void)state;
    a[0] = entry("world", "anyone", ZOO_PERM_ALL);
    a[1] = entry("digest", "u:h", ZOO_PERM_READ | ZOO_PERM_ADMIN);
    zkacl_format_entry(&a[0], out, sizeof(out));
    assert_string_equal(out, "world:anyone:cdrwa");
    zkacl_format(&v, out, sizeof(out));
    assert_string_equal(out, "world:anyone:cdrwa,digest:u:h:ra");
    /* truncated, always terminated */
    zkacl_format(&v, out, 20);
    assert_string_equal(out, "world:anyone:cdrwa,");
    zkacl_format(&v, out, 10);
    assert_string_equal(out, "world:any");
    zkacl_format(NULL, out, sizeof(out));
    assert_string_equal(out, "");
    a[0] = entry(NULL, NULL, 0);
    zkacl_format_entry(&a[0], out, sizeof(out));
    assert_string_equal(out, "::");
}

/* The queue's copy outlives the library's vector. */
static void test_copy_and_free(void **state)
{
    struct ACL a[2];
    struct ACL_vector v = { 2, a }, c;
    char want[64], got[64];

    (void)state;
    a[0] = entry("world", "anyone", ZOO_PERM_READ);
    a[1] = entry("digest", "u:h", ZOO_PERM_ALL);
    zkacl_copy(&c, &v);
    assert_int_equal(c.count, 2);
    assert_ptr_not_equal(c.data[1].id.id, a[1].id.id);
    zkacl_format(&v, want, sizeof(want));
    zkacl_format(&c, got, sizeof(got));
    assert_string_equal(got, want);
    zkacl_free(&c);
    assert_int_equal(c.count, 0);
    assert_null(c.data);
    zkacl_free(&c);                  /* twice is harmless */
    zkacl_copy(&c, NULL);
    assert_int_equal(c.count, 0);
    assert_null(c.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_which_perms_count),
        cmocka_unit_test(test_who_counts),
        cmocka_unit_test(test_empty_and_odd),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_copy_and_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
