/*
 * cfg_options.c — typed option values checked against a declared table.
 *
 * Owns: turning a map of options (a module's, or a section of the global
 * configuration) into cfg_values_t, one typed value per row of a
 * tern_option_t table, and the scalar parsers for booleans, durations and
 * sizes.  Defaults are written as YAML text in the table and go through
 * the same parser and checks as the administrator's values; a default that
 * does not pass is a bug in the table and is reported as an error too.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- scalar parsers ---------------------------------------------------- */

int cfg_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

typedef struct unit {
    const char *suffix;
    long long mult;
} unit_t;

/* Parse "DIGITS[.DIGITS]SUFFIX" where SUFFIX is one of `units` (the list
 * ends with a NULL suffix; "" is the unit of a plain number).  Fractions
 * are rounded to the nearest whole result, keeping six decimals; with
 * `whole_unit1`, a fraction of a unit worth 1 is refused.  0 or -1. */
static int parse_scaled(const char *s, const unit_t *units, int icase, int whole_unit1,
                        long long *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    long long whole = 0, frac = 0, den = 1;
    for (; isdigit((unsigned char)*s); s++) {
        int d = *s - '0';
        if (whole > (LLONG_MAX - d) / 10)
            return -1;
        whole = whole * 10 + d;
    }
    int has_frac = *s == '.';
    if (has_frac) {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        for (; isdigit((unsigned char)*s); s++) {
            if (den < 1000000) {
                frac = frac * 10 + (*s - '0');
                den *= 10;
            }
        }
    }
    const unit_t *u = units;
    while (u->suffix && (icase ? strcasecmp(s, u->suffix) : strcmp(s, u->suffix)) != 0)
        u++;
    if (!u->suffix || (has_frac && whole_unit1 && u->mult == 1))
        return -1;
    if (whole > LLONG_MAX / u->mult)
        return -1;
    long long r = whole * u->mult;
    /* frac < 10^6 and mult <= 2^40: the product fits in 63 bits. */
    long long f = (frac * u->mult + den / 2) / den;
    if (r > LLONG_MAX - f)
        return -1;
    *out = r + f;
    return 0;
}

int cfg_parse_duration_ms(const char *s, long long *out)
{
    static const unit_t units[] = {
        {"", 1000},         {"ms", 1},           {"s", 1000}, {"m", 60 * 1000},
        {"h", 3600 * 1000}, {"d", 86400 * 1000}, {NULL, 0},
    };
    return parse_scaled(s, units, 0, 0, out);
}

int cfg_parse_size(const char *s, long long *out)
{
    static const unit_t units[] = {
        {"", 1},           {"b", 1},           {"k", 1LL << 10},
        {"kb", 1LL << 10}, {"kib", 1LL << 10}, {"m", 1LL << 20},
        {"mb", 1LL << 20}, {"mib", 1LL << 20}, {"g", 1LL << 30},
        {"gb", 1LL << 30}, {"gib", 1LL << 30}, {"t", 1LL << 40},
        {"tb", 1LL << 40}, {"tib", 1LL << 40}, {NULL, 0},
    };
    return parse_scaled(s, units, 1, 1, out);
}

/* Strict base-10 integer with optional sign; 0 or -1. */
static int parse_int(const char *s, long long *out)
{
    if (!s || !(isdigit((unsigned char)*s) || *s == '-' || *s == '+'))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || !isdigit((unsigned char)end[-1]))
        return -1;
    *out = v;
    return 0;
}

/* ---- values ------------------------------------------------------------ */

enum { CONV_OK = 0, CONV_TYPE, CONV_RANGE, CONV_NOMEM };

static const char *type_phrase(tern_opt_type_t t)
{
    switch (t) {
    case TERN_OPT_BOOL:
        return "true or false";
    case TERN_OPT_INT:
        return "an integer";
    case TERN_OPT_STRING:
        return "a string";
    case TERN_OPT_LIST:
        return "a list of strings";
    case TERN_OPT_DURATION:
        return "a duration";
    case TERN_OPT_SIZE:
        return "a size";
    }
    return "of a known type";
}

/* `v` as the administrator would write it: durations and sizes in the
 * largest unit that divides them exactly. */
void cfg_format_value(tern_opt_type_t t, long long v, char *buf, size_t len)
{
    static const unit_t dur[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    static const unit_t size[] = {
        {"T", 1LL << 40}, {"G", 1LL << 30}, {"M", 1LL << 20}, {"K", 1LL << 10}};
    const unit_t *units = t == TERN_OPT_DURATION ? dur : t == TERN_OPT_SIZE ? size : NULL;
    if (units && v != 0) {
        for (size_t i = 0; i < 4; i++) {
            if (v % units[i].mult == 0) {
                snprintf(buf, len, "%lld%s", v / units[i].mult, units[i].suffix);
                return;
            }
        }
    }
    snprintf(buf, len, "%lld%s", v, t == TERN_OPT_DURATION ? (v ? "ms" : "s") : "");
}

/* A NULL-terminated list in `mem`, filled from scalar `n` or the scalars of
 * sequence `n`.  *bad is set to the offending node on CONV_TYPE. */
static int convert_list(cfg_mem_t **mem, cfg_value_t *v, const cfg_node_t *n,
                        const cfg_node_t **bad)
{
    size_t count = 0;
    if (n->type == CFG_SEQ) {
        for (const cfg_node_t *c = n->children; c; c = c->next) {
            if (c->type != CFG_SCALAR || c->is_null) {
                *bad = c;
                return CONV_TYPE;
            }
            count++;
        }
    } else if (n->type == CFG_SCALAR) {
        count = n->is_null ? 0 : 1;
    } else {
        return CONV_TYPE;
    }
    const char **list = cfg_mem_alloc(mem, (count + 1) * sizeof(*list));
    if (!list)
        return CONV_NOMEM;
    if (n->type == CFG_SCALAR) {
        if (count && !(list[0] = cfg_mem_strdup(mem, n->value)))
            return CONV_NOMEM;
    } else {
        size_t i = 0;
        for (const cfg_node_t *c = n->children; c; c = c->next)
            if (!(list[i++] = cfg_mem_strdup(mem, c->value)))
                return CONV_NOMEM;
    }
    v->list = list;
    v->list_len = count;
    return CONV_OK;
}

/* Fill `v` (row `o`) from node `n`.  Returns a CONV_ code; *bad names the
 * node at fault (initially `n`). */
static int convert(cfg_mem_t **mem, cfg_value_t *v, const tern_option_t *o, const cfg_node_t *n,
                   const cfg_node_t **bad)
{
    *bad = n;
    v->num = 0;
    v->str = NULL;
    v->list = NULL;
    v->list_len = 0;
    if (o->type == TERN_OPT_LIST)
        return convert_list(mem, v, n, bad);
    if (n->type != CFG_SCALAR)
        return CONV_TYPE;
    if (o->type == TERN_OPT_STRING) {
        v->str = cfg_mem_strdup(mem, n->is_null ? "" : n->value);
        return v->str ? CONV_OK : CONV_NOMEM;
    }
    int b = 0;
    int rc = -1;
    if (!n->is_null) {
        switch (o->type) {
        case TERN_OPT_BOOL:
            rc = cfg_parse_bool(n->value, &b);
            v->num = b;
            break;
        case TERN_OPT_INT:
            rc = parse_int(n->value, &v->num);
            break;
        case TERN_OPT_DURATION:
            rc = cfg_parse_duration_ms(n->value, &v->num);
            break;
        case TERN_OPT_SIZE:
            rc = cfg_parse_size(n->value, &v->num);
            break;
        default:
            break;
        }
    }
    if (rc < 0)
        return CONV_TYPE;
    if (o->type != TERN_OPT_BOOL && o->min < o->max && (v->num < o->min || v->num > o->max))
        return CONV_RANGE;
    v->str = cfg_mem_strdup(mem, n->value);
    return v->str ? CONV_OK : CONV_NOMEM;
}

__attribute__((format(printf, 3, 4))) static int node_err(cfg_error_t *err, const cfg_node_t *n,
                                                          const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n)
        snprintf(err->text, sizeof(err->text), "%s:%u: %s", n->file, n->line, msg);
    else
        snprintf(err->text, sizeof(err->text), "%s", msg);
    return -1;
}

/* Report a failed conversion of option `o` in context `ctx`. */
static int conv_err(cfg_error_t *err, int rc, const tern_option_t *o, const cfg_node_t *bad,
                    const char *ctx)
{
    if (rc == CONV_NOMEM)
        return node_err(err, bad, "%s: out of memory", ctx);
    if (rc == CONV_RANGE) {
        char lo[32], hi[32];
        cfg_format_value(o->type, o->min, lo, sizeof(lo));
        cfg_format_value(o->type, o->max, hi, sizeof(hi));
        return node_err(err, bad, "%s: option '%s' must be between %s and %s", ctx, o->name, lo,
                        hi);
    }
    return node_err(err, bad, "%s: option '%s' must be %s", ctx, o->name, type_phrase(o->type));
}

/* Fill `v` from the default of row `o` (YAML text, "" when NULL). */
static int set_default(cfg_mem_t **mem, cfg_value_t *v, const tern_option_t *o, const char *ctx,
                       cfg_error_t *err)
{
    const char *def = o->def ? o->def : "";
    cfg_error_t perr;
    cfg_node_t *n = cfg_yaml_parse(def, strlen(def), "default", &perr);
    const cfg_node_t *bad;
    int rc = n ? convert(mem, v, o, n, &bad) : CONV_TYPE;
    cfg_node_free(&n);
    if (rc == CONV_NOMEM)
        return node_err(err, NULL, "%s: out of memory", ctx);
    if (rc != CONV_OK)
        return node_err(err, NULL, "%s: option '%s' has an invalid default '%s' (%s%s)", ctx,
                        o->name, def, rc == CONV_RANGE ? "out of range" : "must be ",
                        rc == CONV_RANGE ? "" : type_phrase(o->type));
    return 0;
}

/* "a, b, c" of the table's names (shortened with "..." when long). */
static void known_names(const tern_option_t *table, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const tern_option_t *o = table; o->name; o++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", o->name);
        if (n < 0 || (size_t)n >= len - used) {
            snprintf(buf + (len > 5 ? len - 5 : 0), len > 5 ? 5 : len, " ...");
            return;
        }
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, len, "none");
}

static int build(const tern_option_t *table, const cfg_node_t *node, const char *ctx,
                 cfg_values_t *out, cfg_error_t *err)
{
    memset(out, 0, sizeof(*out));
    size_t count = 0;
    while (table[count].name)
        count++;
    cfg_mem_t *mem = NULL;
    cfg_value_t *values = cfg_mem_alloc(&mem, (count ? count : 1) * sizeof(*values));
    if (!values)
        return node_err(err, node, "%s: out of memory", ctx);
    for (size_t i = 0; i < count; i++) {
        values[i].opt = &table[i];
        if (set_default(&mem, &values[i], &table[i], ctx, err) < 0)
            goto fail;
    }
    if (node && !(node->type == CFG_SCALAR && node->is_null)) {
        if (node->type != CFG_MAP) {
            node_err(err, node, "%s: options must be a map", ctx);
            goto fail;
        }
        for (const cfg_node_t *c = node->children; c; c = c->next) {
            size_t i = 0;
            while (i < count && strcmp(table[i].name, c->key) != 0)
                i++;
            if (i == count) {
                char known[320];
                known_names(table, known, sizeof(known));
                node_err(err, c, "%s: unknown option '%s' (known: %s)", ctx, c->key, known);
                goto fail;
            }
            const cfg_node_t *bad;
            int rc = convert(&mem, &values[i], &table[i], c, &bad);
            if (rc != CONV_OK) {
                conv_err(err, rc, &table[i], bad, ctx);
                goto fail;
            }
        }
    }
    out->table = table;
    out->values = values;
    out->count = count;
    out->mem = mem;
    return 0;
fail:
    cfg_mem_free(&mem);
    return -1;
}

int cfg_values_build(const tern_option_t *table, const cfg_node_t *node, const char *owner,
                     cfg_values_t *out, cfg_error_t *err)
{
    char ctx[160];
    snprintf(ctx, sizeof(ctx), "module '%s'", owner ? owner : "?");
    return build(table, node, ctx, out, err);
}

int cfg_section_build(const tern_option_t *table, const cfg_node_t *node, const char *section,
                      cfg_values_t *out, cfg_error_t *err)
{
    char ctx[160];
    snprintf(ctx, sizeof(ctx), "section '%s'", section);
    return build(table, node, ctx, out, err);
}

void cfg_values_clear(cfg_values_t *v)
{
    if (!v)
        return;
    cfg_mem_t *mem = v->mem;
    cfg_mem_free(&mem);
    memset(v, 0, sizeof(*v));
}

const cfg_value_t *cfg_values_get(const cfg_values_t *v, const char *name)
{
    if (!v || !name)
        return NULL;
    for (size_t i = 0; i < v->count; i++)
        if (strcmp(v->values[i].opt->name, name) == 0)
            return &v->values[i];
    return NULL;
}
