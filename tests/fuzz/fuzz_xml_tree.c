/*
 * fuzz_xml_tree.c — libFuzzer target for the stanza tree's building API
 * (src/xml/xml_tree.c), as modules use it: the input is a program of
 * operations (add a child, text or attribute of a fuzzer-chosen size,
 * copy, unlink, join texts, serialize), so strings of every size land at
 * every position of the arena's chunks.  Copies into the tree, which can
 * double it, are limited to four per input, and the strings to 64 KiB
 * each and 1 MiB in all, to stay within libFuzzer's memory limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml/xml_stream.h"

#define MAX_NODES 64

/* Next byte of the program, 0 when it is over. */
static uint8_t next(const uint8_t **p, const uint8_t *end)
{
    return *p < end ? *(*p)++ : 0;
}

/* A NUL-terminated string of a fuzzer-chosen length (up to 64 KiB, and
 * what is left of `budget`) whose content comes from the input where
 * there is some. */
static char *make_string(const uint8_t **p, const uint8_t *end, size_t *budget, size_t *len_r)
{
    size_t len = next(p, end);
    len = len << 8 | next(p, end);
    if (len > *budget)
        len = *budget;
    *budget -= len;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)('a' + (i + len) % 26);
    size_t have = (size_t)(end - *p) < len ? (size_t)(end - *p) : len;
    for (size_t i = 0; i < have && i < 16; i++)
        s[i] = (char)((*p)[i] ? (*p)[i] : 'z');
    *p += have < 16 ? have : 16;
    s[len] = '\0';
    *len_r = len;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    tern_xml_t *nodes[MAX_NODES];
    size_t n = 0;
    tern_xml_t *root = tern_xml_new("r", "urn:r");
    if (!root)
        return 0;
    nodes[n++] = root;
    tern_xml_t *extra = NULL;
    /* Copies can double the tree: a few per input keep it in memory. */
    int copies = 0;
    size_t budget = 1u << 20;
    while (p < end) {
        uint8_t op = next(&p, end);
        tern_xml_t *at = nodes[next(&p, end) % n];
        size_t len = 0;
        char *s = NULL;
        switch (op % 9) {
        case 0: /* child with a name of any size */
            s = make_string(&p, end, &budget, &len);
            if (s && len && n < MAX_NODES) {
                tern_xml_t *c = tern_xml_add_child(at, s, (op & 16) ? "urn:c" : NULL);
                if (c)
                    nodes[n++] = c;
            }
            break;
        case 1:
            s = make_string(&p, end, &budget, &len);
            if (s)
                tern_xml_add_text(at, s, len);
            break;
        case 2:
            s = make_string(&p, end, &budget, &len);
            if (s && len)
                tern_xml_set_attr(at, (op & 16) ? "id" : s, s);
            break;
        case 3:
            tern_xml_del_attr(at, "id");
            break;
        case 4: {
            const char *t = tern_xml_text(at);
            (void)strlen(t);
            break;
        }
        case 5: /* unlink anything but the root */
            if (at != root)
                tern_xml_unlink(at);
            break;
        case 6:
            if (copies++ < 4)
                tern_xml_copy_into(at, nodes[next(&p, end) % n]);
            break;
        case 7:
            if (!extra)
                extra = tern_xml_copy(at);
            break;
        default: {
            s = tern_xml_to_string(at, &len);
            if (s && len) {
                tern_xml_t *back = tern_xml_parse(s, len);
                tern_xml_unref(back);
            }
            break;
        }
        }
        free(s);
    }
    tern_xml_unref(extra);
    tern_xml_unref(root);
    return 0;
}
