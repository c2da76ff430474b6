/*
 * stats.c — counters, histograms and clocks of tern-bench.
 *
 * Owns the log-bucketed latency histogram (exact below 128 units, then 64
 * buckets per power of two, so any value is known within 1.6%; two
 * histograms merge by adding their buckets, which is how the workers'
 * figures are combined), the summing of counter snapshots, and the clocks
 * (monotonic time, the process's own CPU time) every part measures with.
 */
#include "bench.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double now_s(void)
{
    return (double)now_ns() / 1e9;
}

double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

const char *phase_name(phase_t ph)
{
    static const char *const names[PH_COUNT] = {"idle",    "login", "setup",
                                                "measure", "drain", "done"};
    return ph < PH_COUNT ? names[ph] : "?";
}

static int bucket_of(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (int)v;
    int p = 63 - __builtin_clzll(v);
    int s = p - HIST_SUB_BITS;
    uint64_t m = v >> s;
    return 2 * HIST_SUB + (s - 1) * HIST_SUB + (int)(m - HIST_SUB);
}

/* A representative value of bucket i: the middle of its range. */
static uint64_t bucket_value(int i)
{
    if (i < 2 * HIST_SUB)
        return (uint64_t)i;
    int k = i - 2 * HIST_SUB;
    int s = k / HIST_SUB + 1;
    uint64_t m = (uint64_t)(k % HIST_SUB + HIST_SUB);
    uint64_t lo = m << s, hi = ((m + 1) << s) - 1;
    return lo + (hi - lo) / 2;
}

void hist_add(hist_t *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist_t *into, const hist_t *from)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

void snap_sum(snap_t *into, const snap_t *from)
{
    for (int i = 0; i < C_COUNT; i++)
        into->c[i] += from->c[i];
    into->cpu_s += from->cpu_s;
    if (from->t > into->t)
        into->t = from->t;
    if (from->last_login_t > into->last_login_t)
        into->last_login_t = from->last_login_t;
}
