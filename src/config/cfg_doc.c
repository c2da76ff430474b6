/*
 * cfg_doc.c — option tables as documentation.
 *
 * Owns the Markdown form of a tern_option_t table, the one the module
 * pages in doc/ carry: contrib/module-docs.sh asks `ternd --options-doc`
 * for it, so the documented names, types, defaults and ranges are the ones
 * the server enforces.
 */
#include "config/config.h"

#include <string.h>

static const char *type_name(tern_opt_type_t t)
{
    switch (t) {
    case TERN_OPT_BOOL:
        return "bool";
    case TERN_OPT_INT:
        return "int";
    case TERN_OPT_STRING:
        return "string";
    case TERN_OPT_LIST:
        return "list";
    case TERN_OPT_DURATION:
        return "duration";
    case TERN_OPT_SIZE:
        return "size";
    }
    return "?";
}

/* A cell's text with the characters that would end the cell escaped. */
static void put_cell(const char *s, FILE *out)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

void cfg_options_markdown(const tern_option_t *table, FILE *out)
{
    fputs("| Option | Type | Default | Meaning |\n| --- | --- | --- | --- |\n", out);
    for (const tern_option_t *o = table; o && o->name; o++) {
        fprintf(out, "| `%s` | %s", o->name, type_name(o->type));
        if (o->type != TERN_OPT_BOOL && o->min < o->max) {
            char lo[32], hi[32];
            cfg_format_value(o->type, o->min, lo, sizeof(lo));
            cfg_format_value(o->type, o->max, hi, sizeof(hi));
            fprintf(out, ", %s to %s", lo, hi);
        }
        if (o->def && o->def[0] != '\0') {
            fputs(" | `", out);
            put_cell(o->def, out);
            fputs("` | ", out);
        } else {
            fputs(" | (empty) | ", out);
        }
        put_cell(o->doc ? o->doc : "", out);
        fputs(" |\n", out);
    }
}
