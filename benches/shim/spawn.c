/* Start-up timer for benches/shim.sh: runs each variant (a program with its own environment) N times, variants
 * interleaved round by round so that background load hits all of them alike, and prints the median and p10 of the
 * wall time (posix_spawn to wait4) and the median CPU time of the child, each also as the difference from the first
 * variant, in microseconds.
 *
 * usage: spawn N NAME ENV PROGRAM [NAME ENV PROGRAM ...]   (ENV: space-separated K=V pairs, or "-") */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

struct variant {
    const char *name;
    char *env[32];
    char *argv[2];
    double *samples;
    double *cpu;
};

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc < 5 || (argc - 2) % 3 != 0) {
        fprintf(stderr, "usage: spawn N NAME ENV PROGRAM [NAME ENV PROGRAM ...]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    int count = (argc - 2) / 3;
    struct variant *variants = calloc(count, sizeof *variants);
    for (int v = 0; v < count; v++) {
        struct variant *var = &variants[v];
        var->name = argv[2 + 3 * v];
        int e = 0;
        var->env[e++] = "PATH=/usr/bin:/bin";
        if (strcmp(argv[3 + 3 * v], "-") != 0) {
            char *spec = strdup(argv[3 + 3 * v]);
            for (char *tok = strtok(spec, " "); tok && e < 31; tok = strtok(NULL, " ")) var->env[e++] = tok;
        }
        var->env[e] = NULL;
        var->argv[0] = argv[4 + 3 * v];
        var->argv[1] = NULL;
        var->samples = calloc(n, sizeof(double));
        var->cpu = calloc(n, sizeof(double));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    int warmup = n / 10 + 5;
    for (int round = -warmup; round < n; round++) {
        for (int k = 0; k < count; k++) {
            struct variant *var = &variants[(k + (round < 0 ? 0 : round)) % count];
            pid_t pid;
            double start = now_us();
            if (posix_spawn(&pid, var->argv[0], &actions, NULL, var->argv, var->env) != 0) {
                perror(var->argv[0]);
                return 1;
            }
            int status;
            struct rusage usage;
            wait4(pid, &status, 0, &usage);
            double elapsed = now_us() - start;
            double cpu = usage.ru_utime.tv_sec * 1e6 + usage.ru_utime.tv_usec + usage.ru_stime.tv_sec * 1e6 +
                         usage.ru_stime.tv_usec;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "%s failed (status %d)\n", var->name, status);
                return 1;
            }
            if (round >= 0) {
                var->samples[round] = elapsed;
                var->cpu[round] = cpu;
            }
        }
    }
    double base = 0, base_p10 = 0, base_cpu = 0;
    printf("%-36s %10s %10s %10s %10s %10s\n", "variant (wall and CPU, us)", "median", "added", "p10", "added", "cpu added");
    for (int v = 0; v < count; v++) {
        qsort(variants[v].samples, n, sizeof(double), cmp);
        qsort(variants[v].cpu, n, sizeof(double), cmp);
        double median = variants[v].samples[n / 2], p10 = variants[v].samples[n / 10], cpu = variants[v].cpu[n / 2];
        if (v == 0) {
            base = median;
            base_p10 = p10;
            base_cpu = cpu;
        }
        printf("%-36s %10.1f %+10.1f %10.1f %+10.1f %+10.1f\n", variants[v].name, median, median - base, p10,
               p10 - base_p10, cpu - base_cpu);
    }
    return 0;
}
