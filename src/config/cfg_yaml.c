/*
 * cfg_yaml.c — YAML text to a cfg_node_t tree, and the arena behind it.
 *
 * Owns: reading the configuration file, driving libyaml's event parser,
 * and the cfg_mem_t arena that holds every node and string of a tree (and
 * that cfg_options.c and cfg_server.c use for their results).  Each node
 * remembers its file and 1-based line so that later checks can name them.
 * Deliberately small: one document, no anchors or aliases, no duplicate
 * keys, map keys are scalars.  Tags are ignored; scalars keep their text.
 */
#include "config/config.h"

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MEM_CHUNK     4096
#define MAX_DEPTH     64
#define MAX_FILE_SIZE (16u * 1024 * 1024)

/* ---- arena ------------------------------------------------------------- */

struct cfg_mem {
    struct cfg_mem *next;
    size_t used, size;
    max_align_t data[]; /* `size` bytes */
};

/* Zeroed storage for n bytes, released by cfg_mem_free(); NULL when out of
 * memory.  Small requests share chunks; big ones get a block of their own
 * placed behind the current chunk so that its free space stays in use. */
void *cfg_mem_alloc(cfg_mem_t **mem, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) / align * align;
    cfg_mem_t *head = *mem;
    if (head && head->size - head->used >= n) {
        void *p = (char *)head->data + head->used;
        head->used += n;
        return p;
    }
    size_t size = n > MEM_CHUNK / 4 ? n : MEM_CHUNK;
    cfg_mem_t *b = calloc(1, sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->used = n;
    if (head && size == n) {
        b->next = head->next;
        head->next = b;
    } else {
        b->next = head;
        *mem = b;
    }
    return b->data;
}

char *cfg_mem_strdup(cfg_mem_t **mem, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = cfg_mem_alloc(mem, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void cfg_mem_free(cfg_mem_t **mem)
{
    cfg_mem_t *b = *mem;
    while (b) {
        cfg_mem_t *next = b->next;
        free(b);
        b = next;
    }
    *mem = NULL;
}

/* ---- parser ------------------------------------------------------------ */

typedef struct loader {
    yaml_parser_t parser;
    const char *text; /* the whole input, for reader error lines */
    size_t len;
    cfg_mem_t *mem;
    const char *file;
    cfg_error_t *err;
    int failed;
} loader_t;

/* Record the first error only ("FILE:LINE: text"); always returns NULL. */
__attribute__((format(printf, 3, 4))) static void *fail(loader_t *ld, unsigned line,
                                                        const char *fmt, ...)
{
    if (!ld->failed) {
        ld->failed = 1;
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(ld->err->text, sizeof(ld->err->text), "%s:%u: %s", ld->file, line, msg);
    }
    return NULL;
}

static unsigned line_of(const yaml_event_t *ev)
{
    return (unsigned)ev->start_mark.line + 1;
}

/* Report libyaml's error.  Reader errors (bad encoding) carry a byte
 * offset rather than a mark; their line is counted in the input. */
static void parse_error(loader_t *ld)
{
    const yaml_parser_t *p = &ld->parser;
    unsigned line = (unsigned)p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        fail(ld, line, "out of memory");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < ld->len; i++)
            line += ld->text[i] == '\n';
    }
    fail(ld, line, "%s", p->problem ? p->problem : "invalid YAML");
}

/* Next event into *ev; 0, or -1 after reporting the syntax error. */
static int next_event(loader_t *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev)) {
        parse_error(ld);
        return -1;
    }
    return 0;
}

static const char *anchor_of(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return (const char *)ev->data.scalar.anchor;
    case YAML_SEQUENCE_START_EVENT:
        return (const char *)ev->data.sequence_start.anchor;
    case YAML_MAPPING_START_EVENT:
        return (const char *)ev->data.mapping_start.anchor;
    default:
        return NULL;
    }
}

/* Refuse aliases and the anchors they would refer to. */
static int check_alias(loader_t *ld, const yaml_event_t *ev)
{
    if (ev->type == YAML_ALIAS_EVENT || anchor_of(ev)) {
        fail(ld, line_of(ev), "aliases are not supported");
        return -1;
    }
    return 0;
}

static int is_null_text(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static cfg_node_t *new_node(loader_t *ld, cfg_type_t type, unsigned line)
{
    cfg_node_t *n = cfg_mem_alloc(&ld->mem, sizeof(*n));
    if (!n)
        return fail(ld, line, "out of memory");
    n->type = type;
    n->file = ld->file;
    n->line = line;
    return n;
}

/* A scalar node from a scalar event; NULs inside a value are refused since
 * every consumer reads C strings. */
static cfg_node_t *scalar_node(loader_t *ld, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(text, '\0', len))
        return fail(ld, line_of(ev), "a value contains a NUL character");
    cfg_node_t *n = new_node(ld, CFG_SCALAR, line_of(ev));
    if (!n)
        return NULL;
    n->value = cfg_mem_strdup(&ld->mem, text);
    if (!n->value)
        return fail(ld, line_of(ev), "out of memory");
    n->is_null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && is_null_text(text);
    return n;
}

static cfg_node_t *load_node(loader_t *ld, const yaml_event_t *ev, int depth);

/* The entries of a map whose MAPPING-START is `start`, up to its end. */
static cfg_node_t *load_map(loader_t *ld, const yaml_event_t *start, int depth)
{
    cfg_node_t *map = new_node(ld, CFG_MAP, line_of(start));
    if (!map)
        return NULL;
    cfg_node_t **tail = &map->children;
    for (;;) {
        yaml_event_t kev, vev;
        if (next_event(ld, &kev) < 0)
            return NULL;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return map;
        }
        const char *key = NULL;
        unsigned key_line = line_of(&kev);
        if (check_alias(ld, &kev) == 0) {
            if (kev.type != YAML_SCALAR_EVENT)
                fail(ld, key_line, "map keys must be plain strings");
            else if (memchr(kev.data.scalar.value, '\0', kev.data.scalar.length))
                fail(ld, key_line, "a key contains a NUL character");
            else
                key = cfg_mem_strdup(&ld->mem, (const char *)kev.data.scalar.value);
        }
        yaml_event_delete(&kev);
        if (!key)
            return fail(ld, key_line, "out of memory");
        if (cfg_map_get(map, key))
            return fail(ld, key_line, "duplicate key '%s'", key);
        if (next_event(ld, &vev) < 0)
            return NULL;
        cfg_node_t *child = load_node(ld, &vev, depth + 1);
        yaml_event_delete(&vev);
        if (!child)
            return NULL;
        child->key = key;
        child->line = key_line;
        *tail = child;
        tail = &child->next;
    }
}

/* The items of a sequence whose SEQUENCE-START is `start`, up to its end. */
static cfg_node_t *load_seq(loader_t *ld, const yaml_event_t *start, int depth)
{
    cfg_node_t *seq = new_node(ld, CFG_SEQ, line_of(start));
    if (!seq)
        return NULL;
    cfg_node_t **tail = &seq->children;
    for (;;) {
        yaml_event_t ev;
        if (next_event(ld, &ev) < 0)
            return NULL;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return seq;
        }
        cfg_node_t *item = load_node(ld, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!item)
            return NULL;
        *tail = item;
        tail = &item->next;
    }
}

/* The node that starts with event `ev` (not consumed: the caller deletes
 * it), reading the events of its contents.  NULL after an error. */
static cfg_node_t *load_node(loader_t *ld, const yaml_event_t *ev, int depth)
{
    if (check_alias(ld, ev) < 0)
        return NULL;
    if (depth > MAX_DEPTH)
        return fail(ld, line_of(ev), "nesting is too deep");
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return scalar_node(ld, ev);
    case YAML_MAPPING_START_EVENT:
        return load_map(ld, ev, depth);
    case YAML_SEQUENCE_START_EVENT:
        return load_seq(ld, ev, depth);
    default:
        return fail(ld, line_of(ev), "unexpected YAML event");
    }
}

/* Expect an event of `type` next; 0 or -1 (with `what` as the error). */
static int expect(loader_t *ld, yaml_event_type_t type, const char *what)
{
    yaml_event_t ev;
    if (next_event(ld, &ev) < 0)
        return -1;
    int ok = ev.type == type;
    if (!ok)
        fail(ld, line_of(&ev), "%s", what);
    yaml_event_delete(&ev);
    return ok ? 0 : -1;
}

/* Stream → at most one document → its root node.  An empty stream gives a
 * null scalar at line 1. */
static cfg_node_t *load_stream(loader_t *ld)
{
    yaml_event_t ev;
    if (expect(ld, YAML_STREAM_START_EVENT, "not a YAML stream") < 0 || next_event(ld, &ev) < 0)
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        cfg_node_t *n = new_node(ld, CFG_SCALAR, 1);
        if (n) {
            n->value = "";
            n->is_null = 1;
        }
        return n;
    }
    yaml_event_delete(&ev);
    if (next_event(ld, &ev) < 0)
        return NULL;
    cfg_node_t *root = load_node(ld, &ev, 0);
    yaml_event_delete(&ev);
    if (!root || expect(ld, YAML_DOCUMENT_END_EVENT, "unexpected content") < 0 ||
        expect(ld, YAML_STREAM_END_EVENT, "only one YAML document is allowed") < 0)
        return NULL;
    return root;
}

cfg_node_t *cfg_yaml_parse(const char *text, size_t len, const char *name, cfg_error_t *err)
{
    loader_t ld;
    memset(&ld, 0, sizeof(ld));
    ld.text = text;
    ld.len = len;
    ld.err = err;
    err->text[0] = '\0';
    ld.file = cfg_mem_strdup(&ld.mem, name);
    if (!ld.file) {
        snprintf(err->text, sizeof(err->text), "%s: out of memory", name);
        return NULL;
    }
    if (!yaml_parser_initialize(&ld.parser)) {
        cfg_mem_free(&ld.mem);
        snprintf(err->text, sizeof(err->text), "%s: out of memory", name);
        return NULL;
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    cfg_node_t *root = load_stream(&ld);
    yaml_parser_delete(&ld.parser);
    if (!root) {
        cfg_mem_free(&ld.mem);
        return NULL;
    }
    root->mem = ld.mem;
    return root;
}

/* Read the whole file (up to MAX_FILE_SIZE) and parse it. */
cfg_node_t *cfg_yaml_load(const char *path, cfg_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->text, sizeof(err->text), "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            char *nb = cap < MAX_FILE_SIZE ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                rc = cap < MAX_FILE_SIZE ? ENOMEM : EFBIG;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                rc = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        snprintf(err->text, sizeof(err->text), "%s: cannot read: %s", path, strerror(rc));
        return NULL;
    }
    cfg_node_t *root = cfg_yaml_parse(buf, len, path, err);
    free(buf);
    return root;
}

void cfg_node_free(cfg_node_t **root)
{
    if (!root || !*root)
        return;
    cfg_mem_t *mem = (*root)->mem;
    *root = NULL;
    cfg_mem_free(&mem);
}

cfg_node_t *cfg_map_get(const cfg_node_t *map, const char *key)
{
    if (!map || map->type != CFG_MAP || !key)
        return NULL;
    for (cfg_node_t *c = map->children; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}
