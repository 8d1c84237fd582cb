/*
 * zkacl: may anyone change a znode (see zkacl.h for what counts and why).
 */
#include "zkacl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

#include "util.h"

/* world:anyone exactly, as the server compares it (case sensitive). */
static int is_world_anyone(const struct ACL *a)
{
    return a->id.scheme != NULL && a->id.id != NULL && strcmp(a->id.scheme, "world") == 0 &&
           strcmp(a->id.id, "anyone") == 0;
}

int zkacl_world_writable(const struct ACL_vector *acl)
{
    if (acl == NULL)
        return -1;
    for (int32_t i = 0; i < acl->count; i++) {
        const struct ACL *a = &acl->data[i];

        if (is_world_anyone(a) && (a->perms & (ZOO_PERM_WRITE | ZOO_PERM_ADMIN)) != 0)
            return (int)i;
    }
    return -1;
}

/* ZOO_PERM_* are `const int` variables, not constants: no table here. */
static void perms_text(int32_t perms, char out[6])
{
    int n = 0;

    if (perms & ZOO_PERM_CREATE)
        out[n++] = 'c';
    if (perms & ZOO_PERM_DELETE)
        out[n++] = 'd';
    if (perms & ZOO_PERM_READ)
        out[n++] = 'r';
    if (perms & ZOO_PERM_WRITE)
        out[n++] = 'w';
    if (perms & ZOO_PERM_ADMIN)
        out[n++] = 'a';
    out[n] = '\0';
}

void zkacl_format_entry(const struct ACL *a, char *out, size_t outlen)
{
    char perms[6];

    if (outlen == 0)
        return;
    perms_text(a->perms, perms);
    snprintf(out, outlen, "%s:%s:%s", a->id.scheme ? a->id.scheme : "",
             a->id.id ? a->id.id : "", perms);
}

void zkacl_format(const struct ACL_vector *acl, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    for (int32_t i = 0; acl != NULL && i < acl->count && o + 1 < outlen; i++) {
        if (i > 0)
            out[o++] = ',';
        zkacl_format_entry(&acl->data[i], out + o, outlen - o);
        o += strlen(out + o);
    }
}

void zkacl_copy(struct ACL_vector *dst, const struct ACL_vector *src)
{
    dst->count = 0;
    dst->data = NULL;
    if (src == NULL || src->count <= 0 || src->data == NULL)
        return;
    dst->data = xcalloc((size_t)src->count, sizeof(*dst->data));
    dst->count = src->count;
    for (int32_t i = 0; i < src->count; i++) {
        dst->data[i].perms = src->data[i].perms;
        dst->data[i].id.scheme = xstrdup(src->data[i].id.scheme ? src->data[i].id.scheme : "");
        dst->data[i].id.id = xstrdup(src->data[i].id.id ? src->data[i].id.id : "");
    }
}

void zkacl_free(struct ACL_vector *v)
{
    if (v == NULL || v->data == NULL)
        return;
    for (int32_t i = 0; i < v->count; i++) {
        free(v->data[i].id.scheme);
        free(v->data[i].id.id);
    }
    free(v->data);
    v->data = NULL;
    v->count = 0;
}
