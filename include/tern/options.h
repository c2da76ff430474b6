/*
 * tern/options.h — declared configuration options of a module.
 *
 * A module lists its options in a table; the core validates the config
 * against it before the module loads (unknown keys and wrong types are
 * errors naming file and line) and the module reads typed values back.
 * The option tables in doc/modules.md and doc/modules/ are generated from
 * these (contrib/module-docs.py); `doc` is the table's Meaning cell, in
 * Markdown.
 */
#ifndef TERN_OPTIONS_H
#define TERN_OPTIONS_H

typedef enum {
    TERN_OPT_BOOL = 1, /* true / false */
    TERN_OPT_INT,      /* integer within [min, max] when min < max */
    TERN_OPT_STRING,   /* any scalar */
    TERN_OPT_LIST,     /* sequence of scalars (or one scalar) */
    TERN_OPT_DURATION, /* seconds, or with suffix ms/s/m/h/d; read back in milliseconds */
    TERN_OPT_SIZE      /* bytes, or with suffix K/M/G (KiB...); read back in bytes */
} tern_opt_type_t;

typedef struct tern_option {
    const char *name;
    tern_opt_type_t type;
    const char *def; /* default as it would be written in YAML ("" for an empty list) */
    const char *doc; /* one line for the admin guide */
    long long min, max;
} tern_option_t;

#endif
