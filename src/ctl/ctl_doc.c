/*
 * ctl_doc: build the master znode's new bytes (see ctl_doc.h).
 *
 * Decisions:
 * - Plain stays "host:port" with no newline: the proxy's parser accepts
 *   either, and the shortest form leaves nothing to argue about.
 * - JSON is edited, never rebuilt: a node manager may keep its own keys in
 *   the document and would lose them otherwise. jansson keeps object keys in
 *   insertion order, so the untouched keys keep their place.
 * - Node names are compared as (host without case, port), so "Redis-1:6379"
 *   and "redis-1:6379" are one node and the new master never stays listed
 *   as its own replica.
 */
#include "ctl_doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

enum znode_format ctl_doc_format(const char *data, size_t len, enum znode_format conf_fmt)
{
    size_t i = 0;

    if (conf_fmt == ZNODE_FORMAT_PLAIN || conf_fmt == ZNODE_FORMAT_JSON)
        return conf_fmt;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i < len && data[i] == '{' ? ZNODE_FORMAT_JSON : ZNODE_FORMAT_PLAIN;
}

int ctl_doc_split(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *hs = s, *he;
    char *end;
    long p;

    if (s[0] == '[') {
        he = strchr(s, ']');
        if (he == NULL || he[1] != ':')
            return -1;
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        he = colon;
    }
    if (he == hs || (size_t)(he - hs) >= hostlen || colon[1] < '0' || colon[1] > '9')
        return -1;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
        return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = (int)p;
    return 0;
}

int ctl_doc_same_node(const char *a, const char *b)
{
    char ha[256], hb[256];
    int pa, pb;

    if (ctl_doc_split(a, ha, sizeof(ha), &pa) != 0 || ctl_doc_split(b, hb, sizeof(hb), &pb) != 0)
        return 0;
    return pa == pb && strcasecmp(ha, hb) == 0;
}

/* Remove every string in arr naming node. */
static void array_remove(json_t *arr, const char *node)
{
    for (size_t i = json_array_size(arr); i-- > 0;) {
        json_t *v = json_array_get(arr, i);

        if (json_is_string(v) && ctl_doc_same_node(json_string_value(v), node))
            json_array_remove(arr, i);
    }
}

static int array_has(const json_t *arr, const char *node)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);

        if (json_is_string(v) && ctl_doc_same_node(json_string_value(v), node))
            return 1;
    }
    return 0;
}

/* The current document, or a fresh {"master":null,"slaves":[],"unavailable":[]}. */
static json_t *load_or_fresh(const char *data, size_t len, int *fresh)
{
    json_t *root = len > 0 ? json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (root != NULL && json_is_object(root))
        return root;
    json_decref(root);
    if (fresh != NULL)
        *fresh = 1;
    root = json_object();
    json_object_set_new(root, "master", json_null());
    json_object_set_new(root, "slaves", json_array());
    json_object_set_new(root, "unavailable", json_array());
    return root;
}

/* Set master and fix "slaves" in root. 0 or -1 (jansson out of memory). */
static int edit_json(json_t *root, const char *new_master, const char *old_master)
{
    json_t *slaves = json_object_get(root, "slaves");

    if (json_object_set_new(root, "master", json_string(new_master)) != 0)
        return -1;
    if (!json_is_array(slaves)) {
        /* absent, or something a node manager could not have written */
        if (json_object_set_new(root, "slaves", json_array()) != 0)
            return -1;
        slaves = json_object_get(root, "slaves");
    }
    array_remove(slaves, new_master);
    if (old_master != NULL && !ctl_doc_same_node(old_master, new_master) &&
        !array_has(slaves, old_master))
        return json_array_append_new(slaves, json_string(old_master));
    return 0;
}

char *ctl_doc_rewrite(const char *data, size_t len, enum znode_format fmt,
                      const char *new_master, const char *old_master, size_t *outlen,
                      int *fresh, char *err, size_t errlen)
{
    json_t *root;
    char *text;

    if (fresh != NULL)
        *fresh = 0;
    if (fmt != ZNODE_FORMAT_JSON) {
        *outlen = strlen(new_master);
        return xstrdup(new_master);
    }
    root = load_or_fresh(data, len, fresh);
    if (edit_json(root, new_master, old_master) != 0 ||
        (text = json_dumps(root, JSON_COMPACT)) == NULL) {
        json_decref(root);
        snprintf(err, errlen, "cannot build the JSON document (out of memory)");
        return NULL;
    }
    json_decref(root);
    *outlen = strlen(text);
    return text;                     /* malloc'd: jansson's default allocator */
}

int ctl_doc_slaves(const char *data, size_t len, char **out, int max)
{
    json_t *root, *slaves;
    int n = 0;

    if (len == 0 || (root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return 0;
    slaves = json_object_get(root, "slaves");
    for (size_t i = 0; json_is_array(slaves) && i < json_array_size(slaves) && n < max; i++) {
        json_t *v = json_array_get(slaves, i);

        if (json_is_string(v))
            out[n++] = xstrdup(json_string_value(v));
    }
    json_decref(root);
    return n;
}
