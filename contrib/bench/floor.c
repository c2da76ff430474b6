/*
 * floor.c — `tern-bench floor`: the machine's own latency floor.
 *
 * Owns the round-trip probe.  A child pinned to one CPU echoes single
 * bytes over a socketpair to the parent, pinned to another, which sends
 * one every --gap-us microseconds and times the answer.  No TLS, no XML,
 * no server: what is left is the kernel waking a sleeping process on the
 * other CPU, and whatever pauses the scheduler or a hypervisor adds.
 * Every latency measured between those two CPUs includes this, so the
 * figures say how low a p99 this machine can show at all.  A "stall" is a
 * round trip over 1 ms.
 */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#include "bench.h"

#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STALL_NS 1000000u

typedef struct {
    int cpu_echo, cpu_probe;
    double duration;
    int gap_us;
    int json_only;
} floor_opts_t;

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

static int usage(FILE *f)
{
    fprintf(f, "Usage: tern-bench floor [--cpus A,B] [--duration S] [--gap-us N] [--json-only]\n"
               "One-byte round trips between a process on CPU A (the server's) and one on\n"
               "CPU B (the load tool's), one every N microseconds (500) for S seconds (10):\n"
               "the latency every measurement between those CPUs includes.\n");
    return 2;
}

static int parse(int argc, char **argv, floor_opts_t *o)
{
    static const struct option opts[] = {
        {"cpus", required_argument, NULL, 'c'},   {"duration", required_argument, NULL, 'd'},
        {"gap-us", required_argument, NULL, 'g'}, {"json-only", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'c':
            if (sscanf(optarg, "%d,%d", &o->cpu_echo, &o->cpu_probe) != 2 || o->cpu_echo < 0 ||
                o->cpu_probe < 0 || o->cpu_echo >= CPU_SETSIZE || o->cpu_probe >= CPU_SETSIZE) {
                fprintf(stderr, "tern-bench floor: --cpus: '%s' is not A,B\n", optarg);
                return -1;
            }
            break;
        case 'd':
            o->duration = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(o->duration > 0 && o->duration <= 3600)) {
                fprintf(stderr, "tern-bench floor: --duration: '%s' is not 0-3600 s\n", optarg);
                return -1;
            }
            break;
        case 'g':
            o->gap_us = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || o->gap_us < 0 || o->gap_us > 1000000) {
                fprintf(stderr, "tern-bench floor: --gap-us: '%s' is not 0-1000000\n", optarg);
                return -1;
            }
            break;
        case 'j':
            o->json_only = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tern-bench floor: unexpected '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* The echo end: answer every byte until the other end closes. */
static void echo(int fd, int cpu)
{
    if (pin(cpu) < 0)
        _exit(1);
    char b;
    while (read(fd, &b, 1) == 1)
        if (write(fd, &b, 1) != 1)
            break;
    _exit(0);
}

static void sleep_us(int us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

int floor_main(int argc, char **argv)
{
    floor_opts_t o = {.cpu_echo = 0, .cpu_probe = 1, .duration = 10, .gap_us = 500};
    if (parse(argc, argv, &o) < 0)
        return usage(stderr);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("tern-bench floor: socketpair");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("tern-bench floor: fork");
        return 1;
    }
    if (child == 0) {
        close(sv[0]);
        echo(sv[1], o.cpu_echo);
    }
    close(sv[1]);
    if (pin(o.cpu_probe) < 0) {
        fprintf(stderr, "tern-bench floor: cannot run on CPU %d\n", o.cpu_probe);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        return 1;
    }
    hist_t *h = calloc(1, sizeof(*h));
    uint64_t stalls = 0, lost = 0;
    uint64_t t_end = now_ns() + (uint64_t)(o.duration * 1e9);
    while (h != NULL && now_ns() < t_end) {
        sleep_us(o.gap_us);
        char b = 'x';
        uint64_t t0 = now_ns();
        if (send(sv[0], &b, 1, MSG_NOSIGNAL) != 1 || read(sv[0], &b, 1) != 1) {
            lost++;
            break;
        }
        uint64_t rtt = now_ns() - t0;
        hist_add(h, rtt);
        if (rtt > STALL_NS)
            stalls++;
    }
    close(sv[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (h == NULL || lost || h->count == 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tern-bench floor: the echo process failed (CPU %d)\n", o.cpu_echo);
        free(h);
        return 1;
    }
    char cpus[32];
    snprintf(cpus, sizeof(cpus), "%d,%d", o.cpu_echo, o.cpu_probe);
    report_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        free(h);
        return 1;
    }
    report_str(r, "scenario", "scenario", "floor");
    report_str(r, "cpus", "CPUs (echo, probe)", cpus);
    report_num(r, "duration_s", "measured for", o.duration, 1, "s");
    report_num(r, "round_trips", "round trips", (double)h->count, 0, NULL);
    report_num(r, "rtt_us_p50", "round trip p50", (double)hist_quantile(h, 0.5) / 1e3, 1, "us");
    report_num(r, "rtt_us_p99", "round trip p99", (double)hist_quantile(h, 0.99) / 1e3, 1, "us");
    report_num(r, "rtt_us_p999", "round trip p99.9", (double)hist_quantile(h, 0.999) / 1e3, 1,
               "us");
    report_num(r, "rtt_us_max", "round trip max", (double)h->max / 1e3, 1, "us");
    report_num(r, "stalls", "round trips over 1 ms", (double)stalls, 0, NULL);
    report_num(r, "stalls_per_s", "of those per second", (double)stalls / o.duration, 2, NULL);
    report_print(r, o.json_only);
    free(r);
    free(h);
    return 0;
}
