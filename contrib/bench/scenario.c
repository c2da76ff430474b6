/*
 * scenario.c — the list of scenarios tern-bench can run.
 *
 * Owns the name -> scenario table.  A new scenario (group chat: rooms,
 * occupants, fan-out latency) is a scen_NAME.c implementing scenario_t
 * and one line here.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

static const scenario_t *const all[] = {&scen_connect, &scen_chat, &scen_presence, &scen_s2s};

const scenario_t *scenario_find(const char *name)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

void scenario_list(void *file)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        fprintf(file, "  %-10s %s\n", all[i]->name, all[i]->summary);
}
