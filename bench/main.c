/* SPDX-License-Identifier: MIT */
/*
 * vsbench: run the cases, print the table, write the JSON.
 *
 *   vsbench [--smoke] [--tap] [--vserial PATH] [--json PATH]
 *           [--uml PATH | --no-uml] [--uml-script PATH] [--secs S] [--reps N]
 *           [--rtt N] [--only GROUP,...] [--case ID,...] [--keep]
 *
 * Groups: setup, throughput, rtt, ports, notify, uml. --smoke runs every
 * case briefly (numbers only, no targets judged); --tap prints the table as
 * TAP comments and one test point: did every case produce numbers.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef VSBENCH_VSERIAL
#define VSBENCH_VSERIAL "vserial"
#endif
#ifndef VSBENCH_UML_SCRIPT
#define VSBENCH_UML_SCRIPT "bench/uml_guest.sh"
#endif

struct bench_opts opt = {
        .secs = 1.0,
        .warm = 0.25,
        .reps = 5,
        .rtt = 100000,
        .spawns = 5,
        .uml_bytes = 256ull * MIB,
        .vserial = VSBENCH_VSERIAL,
        .uml = "linux.uml",
        .uml_script = VSBENCH_UML_SCRIPT,
};

static struct row *rows;
static unsigned nrows, cap_rows;
static unsigned failures;
static char notes[4096];
static FILE *out;       /* the table: stdout, or stdout as TAP comments */
static char load0[64], load1[64];      /* load average at start and end */

/* ---- results ---------------------------------------------------------------- */

struct row *row_add(const char *group, const char *name, double value,
                    const char *unit, const char *base_name, double base)
{
        struct row *r;

        if (nrows == cap_rows) {
                unsigned ncap = cap_rows ? 2 * cap_rows : 64;
                struct row *n = realloc(rows, ncap * sizeof(*n));

                if (!n) {
                        fprintf(stderr, "vsbench: out of memory\n");
                        exit(1);
                }
                rows = n;
                cap_rows = ncap;
        }
        r = &rows[nrows++];
        memset(r, 0, sizeof(*r));
        snprintf(r->group, sizeof(r->group), "%s", group);
        snprintf(r->name, sizeof(r->name), "%s", name);
        snprintf(r->unit, sizeof(r->unit), "%s", unit);
        snprintf(r->base_name, sizeof(r->base_name), "%s", base_name);
        r->value = value;
        r->base = base;
        r->ratio = base > 0 && isfinite(value) ? value / base : NAN;
        return r;
}

void row_target(struct row *r, enum target_kind kind, double t)
{
        r->tkind = kind;
        r->target = t;
}

void row_extra(struct row *r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->extra, sizeof(r->extra), fmt, ap);
        va_end(ap);
}

void note(const char *fmt, ...)
{
        char line[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        fprintf(stderr, "vsbench: %s\n", line);
        if (strlen(notes) + strlen(line) + 3 < sizeof(notes)) {
                if (notes[0])
                        strcat(notes, "; ");
                strcat(notes, line);
        }
}

void case_failed(const char *group, const char *name, const char *fmt, ...)
{
        struct row *r = row_add(group, name, NAN, "", "", 0);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->extra, sizeof(r->extra), fmt, ap);
        va_end(ap);
        failures++;
        note("FAILED %s / %s: %s", group, name, r->extra);
}

static bool in_list(const char *list, const char *word)
{
        size_t n = strlen(word);

        for (const char *p = list; p && *p;) {
                size_t k = strcspn(p, ",");

                if (k == n && strncmp(p, word, n) == 0)
                        return true;
                p += k + (p[k] == ',');
        }
        return !list;
}

bool group_wanted(const char *group)
{
        return in_list(opt.only, group);
}

bool case_wanted(const char *id)
{
        return in_list(opt.cases, id);
}

/* ---- output ------------------------------------------------------------------------ */

/* 1 met, 0 missed, -1 no target (or smoke: none is judged) */
static int verdict(const struct row *r)
{
        if (opt.smoke || r->tkind == TGT_NONE || !isfinite(r->value))
                return -1;
        switch (r->tkind) {
        case TGT_RATIO_MIN:
                return isfinite(r->ratio) && r->ratio >= r->target;
        case TGT_RATIO_MAX:
                return isfinite(r->ratio) && r->ratio <= r->target;
        case TGT_VALUE_MAX:
                return r->value <= r->target;
        default:
                return -1;
        }
}

static void target_text(const struct row *r, char *buf, size_t len)
{
        switch (r->tkind) {
        case TGT_RATIO_MIN:
                snprintf(buf, len, ">=%.1fx", r->target);
                break;
        case TGT_RATIO_MAX:
                snprintf(buf, len, "<=%.1fx", r->target);
                break;
        case TGT_VALUE_MAX:
                snprintf(buf, len, "<=%g %s", r->target, r->unit);
                break;
        default:
                snprintf(buf, len, "-");
        }
}

static void fmt_num(char *buf, size_t len, double v)
{
        if (!isfinite(v))
                snprintf(buf, len, "-");
        else if (fabs(v) >= 100)
                snprintf(buf, len, "%.0f", v);
        else if (fabs(v) >= 10)
                snprintf(buf, len, "%.1f", v);
        else
                snprintf(buf, len, "%.2f", v);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line (or lines) of the report; TAP comments in --tap mode. */
static void say(const char *fmt, ...)
{
        static bool midline;
        char buf[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        for (const char *p = buf; *p;) {
                size_t n = strcspn(p, "\n");

                if (opt.tap && !midline)
                        fputs(n ? "# " : "#", out);
                fwrite(p, 1, n, out);
                midline = p[n] != '\n';
                if (p[n] == '\n')
                        fputc('\n', out);
                p += n + (p[n] == '\n');
        }
}

static void machine(char *cpu, size_t cpulen, char *date, size_t datelen,
                    struct utsname *u)
{
        time_t t = time(NULL);
        struct tm tm;

        cpu_model(cpu, cpulen);
        gmtime_r(&t, &tm);
        strftime(date, datelen, "%Y-%m-%dT%H:%M:%SZ", &tm);
        uname(u);
}

static void print_table(void)
{
        const char *last = "";

        say("%-7s %-44s %9s %-5s  %-32s %9s %7s  %-10s %s\n", "group", "case", "value",
            "unit", "baseline (same run)", "baseline", "ratio", "target", "verdict");
        for (unsigned i = 0; i < nrows; i++) {
                const struct row *r = &rows[i];
                char v[32], b[32], ra[32], t[32];
                int ok = verdict(r);

                if (strcmp(last, r->group))
                        say("\n");
                last = r->group;
                fmt_num(v, sizeof(v), r->value);
                fmt_num(b, sizeof(b), r->base > 0 ? r->base : NAN);
                if (isfinite(r->ratio))
                        snprintf(ra, sizeof(ra), "%.2fx", r->ratio);
                else
                        snprintf(ra, sizeof(ra), "-");
                target_text(r, t, sizeof(t));
                say("%-7s %-44s %9s %-5s  %-32s %9s %7s  %-10s %s\n", r->group, r->name, v,
                    r->unit, r->base_name[0] ? r->base_name : "-", b, ra, t,
                    !isfinite(r->value) ? "FAILED" : ok < 0 ? (r->tkind && opt.smoke ?
                    "(smoke)" : "") : ok ? "met" : "MISSED");
                if (r->extra[0])
                        say("%-7s   %s\n", "", r->extra);
        }
}

static void json_str(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fprintf(f, "\\%c", *s);
                else if ((unsigned char)*s < 0x20)
                        fprintf(f, "\\u%04x", *s);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void json_num(FILE *f, double v)
{
        if (isfinite(v))
                fprintf(f, "%.6g", v);
        else
                fputs("null", f);
}

static int write_json(const char *path, const char *cpu, const char *date,
                      const struct utsname *u, double wall)
{
        FILE *f = fopen(path, "w");

        if (!f)
                return -errno;
        fprintf(f, "{\n  \"machine\": {\"cpu\": ");
        json_str(f, cpu);
        fprintf(f, ", \"cpus\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
        json_str(f, u->release);
        fprintf(f, ", \"date\": ");
        json_str(f, date);
        fprintf(f, ", \"loadavg_start\": ");
        json_str(f, load0);
        fprintf(f, ", \"loadavg_end\": ");
        json_str(f, load1);
        fprintf(f, "},\n  \"mode\": \"%s\",\n", opt.smoke ? "smoke" : "full");
        fprintf(f, "  \"params\": {\"secs\": %g, \"warm\": %g, \"reps\": %u, \"rtt\": %u, "
                "\"spawns\": %u, \"uml_bytes\": %llu, \"read_size\": %u},\n",
                opt.secs, opt.warm, opt.reps, opt.rtt, opt.spawns,
                (unsigned long long)opt.uml_bytes, BENCH_READ_SIZE);
        fprintf(f, "  \"wall_s\": %.1f,\n  \"notes\": ", wall);
        json_str(f, notes);
        fprintf(f, ",\n  \"results\": [\n");
        for (unsigned i = 0; i < nrows; i++) {
                const struct row *r = &rows[i];
                char t[32];
                int ok = verdict(r);

                target_text(r, t, sizeof(t));
                fprintf(f, "    {\"group\": ");
                json_str(f, r->group);
                fprintf(f, ", \"case\": ");
                json_str(f, r->name);
                fprintf(f, ", \"value\": ");
                json_num(f, r->value);
                fprintf(f, ", \"unit\": ");
                json_str(f, r->unit);
                fprintf(f, ", \"baseline\": {\"case\": ");
                json_str(f, r->base_name);
                fprintf(f, ", \"value\": ");
                json_num(f, r->base > 0 ? r->base : NAN);
                fprintf(f, "}, \"ratio\": ");
                json_num(f, r->ratio);
                fprintf(f, ", \"target\": ");
                if (r->tkind)
                        json_str(f, t);
                else
                        fputs("null", f);
                fprintf(f, ", \"met\": %s, \"detail\": ",
                        ok < 0 ? "null" : ok ? "true" : "false");
                json_str(f, r->extra);
                fprintf(f, "}%s\n", i + 1 < nrows ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        return fclose(f) == 0 ? 0 : -errno;
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: vsbench [--smoke] [--tap] [--vserial PATH] [--json PATH]\n"
                "               [--uml PATH | --no-uml] [--uml-script PATH] [--secs S]\n"
                "               [--reps N] [--rtt N] [--only GROUP,...] [--case ID,...]\n"
                "               [--keep]\n"
                "Measure the vserial daemon against the raw limit (see docs/performance.md).\n"
                "Groups: setup, throughput, rtt, ports, notify, uml.\n"
                "Cases (--case): g2h4 h2g4 g2h32 h2g32 g2h64 h2g64 h2g64l (throughput),\n"
                "g2hp1 g2hp8 g2hp64 h2gp1 h2gp8 h2gp64 (ports), spawn inproc probe (setup).\n");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

int main(int argc, char **argv)
{
        static const struct option lo[] = {
                { "smoke", no_argument, NULL, 'S' },
                { "tap", no_argument, NULL, 'T' },
                { "vserial", required_argument, NULL, 'v' },
                { "json", required_argument, NULL, 'j' },
                { "uml", required_argument, NULL, 'u' },
                { "no-uml", no_argument, NULL, 'n' },
                { "uml-script", required_argument, NULL, 'g' },
                { "secs", required_argument, NULL, 's' },
                { "reps", required_argument, NULL, 'r' },
                { "rtt", required_argument, NULL, 'R' },
                { "only", required_argument, NULL, 'o' },
                { "keep", no_argument, NULL, 'k' },
                { "case", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool keep = false, smoke_set = false;
        double secs = 0, t0 = now_s();
        unsigned reps = 0, rtt = 0;
        char cpu[128], date[32];
        struct utsname u;
        int c, produced;

        while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
                switch (c) {
                case 'S': smoke_set = true; break;
                case 'T': opt.tap = true; break;
                case 'v': opt.vserial = optarg; break;
                case 'j': opt.json = optarg; break;
                case 'u': opt.uml = optarg; break;
                case 'n': opt.uml = NULL; break;
                case 'g': opt.uml_script = optarg; break;
                case 's': secs = strtod(optarg, NULL); break;
                case 'r': reps = (unsigned)strtoul(optarg, NULL, 10); break;
                case 'R': rtt = (unsigned)strtoul(optarg, NULL, 10); break;
                case 'o': opt.only = optarg; break;
                case 'k': keep = true; break;
                case 'c': opt.cases = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (smoke_set) {
                opt.smoke = true;
                opt.secs = 0.2;
                opt.warm = 0.05;
                opt.reps = 1;
                opt.rtt = 3000;
                opt.spawns = 1;
                opt.uml_bytes = 8ull * MIB;
        }
        if (secs > 0)
                opt.secs = secs;
        if (reps)
                opt.reps = reps;
        if (rtt >= 10)
                opt.rtt = rtt;
        out = stdout;
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        raise_nofile();
        snprintf(opt.dir, sizeof(opt.dir), "/tmp/vsb-XXXXXX");
        if (!mkdtemp(opt.dir)) {
                perror("vsbench: mkdtemp");
                return 1;
        }
        if (access(opt.vserial, X_OK) < 0) {
                fprintf(stderr, "vsbench: %s: %s\n", opt.vserial, strerror(errno));
                return 1;
        }
        machine(cpu, sizeof(cpu), date, sizeof(date), &u);
        if (opt.tap)
                printf("1..1\n");
        say("vsbench: vserial against the raw limit (%s mode)\n", opt.smoke ? "smoke" : "full");
        loadavg(load0, sizeof(load0));
        say("machine: %s, %ld cpus, Linux %s, %s, load average %s\n", cpu,
            sysconf(_SC_NPROCESSORS_ONLN), u.release, date, load0);
        say("daemon: %s; scratch: %s\n", opt.vserial, opt.dir);
        say("throughput: %.2f s window after %.2f s warm-up, median of %u runs; ratio = median "
            "of per-run ratios to the baseline run just before; %u round trips\n",
            opt.secs, opt.warm, opt.reps, opt.rtt);

        if (group_wanted("setup"))
                run_setup();
        if (group_wanted("throughput") || group_wanted("rtt") || group_wanted("ports") ||
            group_wanted("notify")) {
                struct vmm v;
                int r = vmm_start(&v, "main", BENCH_VU_PORTS - 1, true);

                if (r < 0) {
                        case_failed("vmm", "daemon + guest set-up", "%s", strerror(-r));
                } else {
                        if (group_wanted("throughput"))
                                run_throughput(&v);
                        if (group_wanted("rtt"))
                                run_latency(&v);
                        if (group_wanted("ports"))
                                run_multiport(&v);
                        if (group_wanted("notify"))
                                run_notify(&v);
                }
                vmm_stop(&v);
        }
        if (group_wanted("uml"))
                run_uml();

        say("\n");
        print_table();
        loadavg(load1, sizeof(load1));
        say("\nwall time %.1f s; load average %s at the end%s%s\n", now_s() - t0, load1,
            notes[0] ? "; notes: " : "", notes);
        if (opt.json) {
                int r = write_json(opt.json, cpu, date, &u, now_s() - t0);

                if (r < 0)
                        note("cannot write %s: %s", opt.json, strerror(-r));
                else
                        say("results: %s\n", opt.json);
        }
        produced = nrows > 0 && !failures;
        for (unsigned i = 0; i < nrows; i++)
                if (!isfinite(rows[i].value))
                        produced = 0;
        if (opt.tap)
                printf("%sok 1 - bench smoke: every case produced numbers\n",
                       produced ? "" : "not ");
        if (!keep && produced)
                nftw(opt.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        else
                say("logs kept in %s\n", opt.dir);
        free(rows);
        return opt.tap ? 0 : produced ? 0 : 1;
}
