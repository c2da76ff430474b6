/*
 * provision.c — `tern-bench provision`: create the benchmark's accounts.
 *
 * Owns running the server's own admin tool once per account: `ternctl
 * [-c CONF] adduser USER@DOMAIN --password-stdin` for Tern,
 * `prosodyctl [--config CONF] register USER DOMAIN PASSWORD` for Prosody,
 * `ejabberdctl register USER DOMAIN PASSWORD` for ejabberd, with
 * --processes tools running at once.  An account that exists already is
 * counted, not an error, so provisioning can be run again.  Rosters are
 * not made here: the presence scenario makes them over XMPP (works on
 * any server).
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { R_CREATED, R_EXISTED, R_FAILED, R_COUNT };

/* Run the admin tool for user idx; returns R_*. */
static int add_one(const bench_opts_t *o, int idx, int *shown)
{
    char user[BENCH_NAME_MAX], pw[BENCH_NAME_MAX], jid[BENCH_NAME_MAX * 2];
    bench_user_name(o, idx, user, sizeof(user));
    bench_user_password(o, idx, pw, sizeof(pw));
    snprintf(jid, sizeof(jid), "%s@%s", user, o->domain);
    const char *argv[12];
    int n = 0, tern = strcmp(o->server_type, "tern") == 0;
    if (tern) {
        argv[n++] = o->ctl != NULL ? o->ctl : "ternctl";
        if (o->ctl_config != NULL) {
            argv[n++] = "-c";
            argv[n++] = o->ctl_config;
        }
        argv[n++] = "adduser";
        argv[n++] = jid;
        argv[n++] = "--password-stdin";
    } else {
        int prosody = strcmp(o->server_type, "prosody") == 0;
        argv[n++] = o->ctl != NULL ? o->ctl : prosody ? "prosodyctl" : "ejabberdctl";
        if (o->ctl_config != NULL && prosody) {
            argv[n++] = "--config";
            argv[n++] = o->ctl_config;
        }
        argv[n++] = "register";
        argv[n++] = user;
        argv[n++] = o->domain;
        argv[n++] = pw;
    }
    argv[n] = NULL;

    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0)
        return R_FAILED;
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return R_FAILED;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (tern) {
        char line[BENCH_NAME_MAX + 2];
        int len = snprintf(line, sizeof(line), "%s\n", pw);
        if (write(in[1], line, (size_t)len) != len) {
            /* the tool failed early; its output says why */
        }
    }
    close(in[1]);
    char text[2048];
    size_t got = 0;
    ssize_t r;
    while ((r = read(out[0], text + got, sizeof(text) - 1 - got)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            got += (size_t)r;
    text[got] = '\0';
    close(out[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return R_CREATED;
    if (strstr(text, "exists") != NULL || strstr(text, "already") != NULL)
        return R_EXISTED;
    if ((*shown)++ < 3)
        fprintf(stderr, "tern-bench provision: %s: %s", jid,
                got > 0 ? text : "the admin tool failed\n");
    return R_FAILED;
}

int provision_main(const bench_opts_t *o)
{
    if (o->ctl_config != NULL && strcmp(o->server_type, "ejabberd") == 0) {
        fprintf(stderr, "tern-bench provision: --ctl-config is for tern and prosody\n");
        return 2;
    }
    int lanes = o->processes < o->users ? o->processes : o->users;
    int fds[BENCH_MAX_PROCS];
    pid_t pids[BENCH_MAX_PROCS];
    signal(SIGPIPE, SIG_IGN);
    for (int l = 0; l < lanes; l++) {
        int p[2];
        if (pipe(p) < 0) {
            perror("tern-bench provision: pipe");
            return 1;
        }
        fflush(NULL);
        pids[l] = fork();
        if (pids[l] < 0) {
            perror("tern-bench provision: fork");
            return 1;
        }
        if (pids[l] == 0) {
            close(p[0]);
            long counts[R_COUNT] = {0, 0, 0};
            int shown = 0;
            for (int i = l; i < o->users; i += lanes)
                counts[add_one(o, i, &shown)]++;
            if (write(p[1], counts, sizeof(counts)) != (ssize_t)sizeof(counts))
                _exit(1);
            _exit(0);
        }
        close(p[1]);
        fds[l] = p[0];
    }
    long total[R_COUNT] = {0, 0, 0};
    int rc = 0;
    for (int l = 0; l < lanes; l++) {
        long counts[R_COUNT];
        if (read(fds[l], counts, sizeof(counts)) == (ssize_t)sizeof(counts)) {
            for (int k = 0; k < R_COUNT; k++)
                total[k] += counts[k];
        } else {
            rc = 1;
        }
        close(fds[l]);
        int st;
        waitpid(pids[l], &st, 0);
    }
    printf("provision: %ld created, %ld existed, %ld failed (%s, %d users from ", total[R_CREATED],
           total[R_EXISTED], total[R_FAILED], o->server_type, o->users);
    char first[BENCH_NAME_MAX];
    bench_user_name(o, 0, first, sizeof(first));
    printf("%s@%s)\n", first, o->domain);
    return rc != 0 || total[R_FAILED] > 0 ? 1 : 0;
}
