/*
 * fuzz_config.c — libFuzzer target for the configuration parser
 * (src/config/cfg_yaml.c, cfg_options.c, cfg_server.c): the input is a
 * whole tern.yml, loaded from a memory file as ternd --check-config would,
 * and its values go through the option parsers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"

static const tern_option_t table[] = {
    {.name = "n", .type = TERN_OPT_INT, .def = "1", .doc = "a number", .min = 0, .max = 9},
    {.name = "on", .type = TERN_OPT_BOOL, .def = "true", .doc = "a switch"},
    {.name = "size", .type = TERN_OPT_SIZE, .def = "64K", .doc = "a size"},
    {.name = "wait", .type = TERN_OPT_DURATION, .def = "1s", .doc = "a duration"},
    {.name = "name", .type = TERN_OPT_STRING, .def = "x", .doc = "a string"},
    {.name = "list", .type = TERN_OPT_LIST, .def = "", .doc = "a list"},
    {.name = NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    cfg_error_t err;
    /* The generic tree and an option table built from it. */
    cfg_node_t *root = cfg_yaml_parse((const char *)data, size, "fuzz.yml", &err);
    if (root) {
        cfg_values_t v;
        if (cfg_values_build(table, root->type == CFG_MAP ? root : NULL, "fuzz", &v, &err) == 0)
            cfg_values_clear(&v);
        for (const cfg_node_t *c = root->children; c; c = c->next) {
            if (c->value) {
                long long n;
                int b;
                cfg_parse_size(c->value, &n);
                cfg_parse_duration_ms(c->value, &n);
                cfg_parse_bool(c->value, &b);
            }
        }
        cfg_node_free(&root);
    }
    /* The whole server configuration, from a file. */
    int fd = memfd_create("tern.yml", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        tern_config_t *cfg = config_load(path, &err);
        config_free(&cfg);
    }
    close(fd);
    return 0;
}
