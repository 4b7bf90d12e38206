/* measure: run one command and report its wall time and resource usage.
 *
 *   measure REPORT [NAME=VALUE ...] -- COMMAND [ARG ...]
 *
 * Forks, sets the NAME=VALUE variables in the child's environment (this is
 * how bench/run applies LD_PRELOAD to the workload and not to measure
 * itself), execs COMMAND (searched in PATH), waits for it with wait4() and
 * writes one line to the file REPORT:
 *
 *   wait_status=S wall_s=T maxrss_kib=M utime_s=U stime_s=Y
 *
 * S is the raw wait status, M is ru_maxrss of the command (the largest of
 * it and its waited-for descendants).  Exit status: 0 when the report was
 * written, whatever the command did; 125 when measure itself failed.
 *
 * Why this exists: Linux carries a process's peak RSS across execve, and a
 * child created by fork/vfork starts from its parent's peak, so ru_maxrss
 * of a program started directly by the Python runner could never read
 * below the runner's own ~10-25 MiB.  A child of this small program starts
 * from well under 1 MiB.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: measure REPORT [NAME=VALUE ...] -- COMMAND [ARG ...]\n");
    return 125;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    const char *report = argv[1];
    int sep = 2;
    while (sep < argc && strcmp(argv[sep], "--") != 0) {
        if (strchr(argv[sep], '=') == NULL || argv[sep][0] == '=')
            return usage();
        sep++;
    }
    if (sep + 1 >= argc)
        return usage();

    FILE *out = fopen(report, "w");
    if (out == NULL) {
        fprintf(stderr, "measure: %s: %s\n", report, strerror(errno));
        return 125;
    }

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "measure: fork: %s\n", strerror(errno));
        return 125;
    }
    if (pid == 0) {
        for (int i = 2; i < sep; i++)
            if (putenv(argv[i]) != 0)
                _exit(127);
        execvp(argv[sep + 1], &argv[sep + 1]);
        fprintf(stderr, "measure: %s: %s\n", argv[sep + 1], strerror(errno));
        _exit(127);
    }

    int status = 0;
    struct rusage ru;
    for (;;) {
        pid_t r = wait4(pid, &status, 0, &ru);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
            return 125;
        }
    }
    double wall = now() - t0;

    fprintf(out, "wait_status=%d wall_s=%.6f maxrss_kib=%ld utime_s=%.6f stime_s=%.6f\n",
            status, wall, ru.ru_maxrss,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6);
    if (fclose(out) != 0) {
        fprintf(stderr, "measure: %s: write failed\n", report);
        return 125;
    }
    return 0;
}
