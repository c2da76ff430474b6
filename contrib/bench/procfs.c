/*
 * procfs.c — the server's figures, read from the operating system.
 *
 * Owns finding the server process (by pid, pid file or process name) and
 * sampling it: CPU time (utime + stime of /proc/PID/stat, all threads,
 * plus the CPU of its child processes: those still running, found by
 * their parent in /proc, and those it has reaped, from cutime + cstime)
 * and memory (VmRSS and VmHWM of /proc/PID/status, the main process
 * only).  Nothing here asks the server anything: the figures are the
 * kernel's.
 */
#include "bench.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pid_t pid_from_file(const char *path, const char **why)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        *why = "cannot read the server pid file";
        return -1;
    }
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid) == 1 && pid > 0;
    fclose(f);
    if (!ok) {
        *why = "the server pid file holds no pid";
        return -1;
    }
    return (pid_t)pid;
}

/* The single process whose comm is `name`. */
static pid_t pid_from_name(const char *name, const char **why)
{
    DIR *d = opendir("/proc");
    if (d == NULL) {
        *why = "cannot read /proc";
        return -1;
    }
    pid_t found = 0;
    int many = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300], comm[64];
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        int got = fgets(comm, sizeof(comm), f) != NULL;
        fclose(f);
        if (!got)
            continue;
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) == 0) {
            if (found != 0)
                many = 1;
            found = (pid_t)atol(e->d_name);
        }
    }
    closedir(d);
    if (many) {
        *why = "several processes have that name: use --server-pid";
        return -1;
    }
    if (found == 0) {
        *why = "no process has that name";
        return -1;
    }
    return found;
}

static pid_t find(pid_t given, const char *pidfile, const char *name, const char **why)
{
    pid_t pid = 0;
    if (given > 0)
        pid = given;
    else if (pidfile != NULL)
        pid = pid_from_file(pidfile, why);
    else if (name != NULL)
        pid = pid_from_name(name, why);
    if (pid > 0) {
        proc_sample_t s;
        if (procfs_sample(pid, &s) < 0) {
            *why = "cannot read /proc/PID/stat of the server";
            return -1;
        }
    }
    return pid;
}

pid_t procfs_find_server(const bench_opts_t *o, const char **why)
{
    return find(o->server_pid, o->server_pidfile, o->server_name, why);
}

pid_t procfs_find_server2(const bench_opts_t *o, const char **why)
{
    return find(o->server2_pid, o->server2_pidfile, o->server2_name, why);
}

typedef struct {
    long ppid;
    unsigned long long ticks;  /* utime + stime */
    unsigned long long cticks; /* cutime + cstime: reaped children */
    long threads;
} stat_t;

/* Reads /proc/PID/stat into *st: 0, or -1 if the process is gone or the
 * file is not as expected. */
static int read_stat(const char *pid, stat_t *st)
{
    char path[300], buf[2048];
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The name in parentheses may hold spaces: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return -1;
    p += 2; /* field 3, the state */
    unsigned long long utime = 0, stime = 0;
    long long cutime = 0, cstime = 0;
    /* fields 3..20: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice num_threads */
    if (sscanf(p, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld %*d %*d %ld",
               &st->ppid, &utime, &stime, &cutime, &cstime, &st->threads) != 6)
        return -1;
    st->ticks = utime + stime;
    st->cticks = (unsigned long long)(cutime > 0 ? cutime : 0) +
                 (unsigned long long)(cstime > 0 ? cstime : 0);
    return 0;
}

/* Clock ticks used by the running descendants of root (children,
 * grandchildren...), from one pass over /proc; 0 if it has none. */
static unsigned long long descendants_ticks(pid_t root)
{
    enum { MAX_PROCS = 65536 };
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    long *pids = malloc(MAX_PROCS * sizeof(*pids));
    stat_t *st = malloc(MAX_PROCS * sizeof(*st));
    unsigned char *in = calloc(MAX_PROCS, 1);
    int n = 0;
    struct dirent *e;
    while (pids != NULL && st != NULL && in != NULL && n < MAX_PROCS && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (read_stat(e->d_name, &st[n]) == 0)
            pids[n++] = atol(e->d_name);
    }
    closedir(d);
    unsigned long long sum = 0;
    if (pids != NULL && st != NULL && in != NULL) {
        /* Mark the tree level by level; a pass that adds nobody ends it. */
        for (int added = 1; added;) {
            added = 0;
            for (int i = 0; i < n; i++) {
                if (in[i] || pids[i] == (long)root)
                    continue;
                int parent_in = st[i].ppid == (long)root;
                for (int j = 0; j < n && !parent_in; j++)
                    parent_in = in[j] && pids[j] == st[i].ppid;
                if (parent_in) {
                    in[i] = 1;
                    added = 1;
                    sum += st[i].ticks;
                }
            }
        }
    }
    free(pids);
    free(st);
    free(in);
    return sum;
}

int procfs_sample(pid_t pid, proc_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    if (pid <= 0)
        return -1;
    char path[64], id[32];
    snprintf(id, sizeof(id), "%d", (int)pid);
    stat_t st;
    if (read_stat(id, &st) < 0)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    unsigned long long ticks = st.ticks + st.cticks + descendants_ticks(pid);
    s->cpu_s = (double)ticks / (double)(hz > 0 ? hz : 100);
    s->threads = (int)st.threads;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            s->rss_kib = atol(line + 6);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            s->hwm_kib = atol(line + 6);
    }
    fclose(f);
    s->ok = 1;
    return 0;
}
