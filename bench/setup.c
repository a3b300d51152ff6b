/* SPDX-License-Identifier: MIT */
/*
 * Many ports: how long a daemon with 127 ports (all vhost-user can reach:
 * the daemon refuses more) takes to be ready, what the ports cost in
 * memory while idle, and how long the library takes to set up 511 ports
 * with a guest (the in-process transport, where every ring can be
 * reached).
 */
#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bench.h"

#define ALL_PORTS VS_MAX_PORTS
#define DAEMON_PORTS BENCH_VU_PORTS   /* the most the daemon takes */

struct spawn_fig {
        double ready_ms;        /* median */
        long rss, anon, file, shmem;    /* KiB, last spawn */
};

/* Spawn a --max-ports 127 daemon with @nports ports (0 is a console), its
 * sockets in @dir, until it accepts the VMM connection; RSS with the ports
 * idle. */
static int spawn_fig(const char *dir, unsigned nports, struct spawn_fig *f)
{
        struct port_req *pr = calloc(nports + 1, sizeof(*pr));
        double *ms = calloc(opt.spawns, sizeof(double));
        int r = 0;

        memset(f, 0, sizeof(*f));
        if (!pr || !ms) {
                free(pr);
                free(ms);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < nports; i++)
                pr[i] = (struct port_req){ .id = i, .console = i == 0 };
        for (unsigned s = 0; s < opt.spawns && r == 0; s++) {
                struct daemon dm;

                r = daemon_start_in(&dm, dir, nports ? "many" : "none", DAEMON_PORTS, pr,
                                    nports);
                if (r < 0)
                        break;
                ms[s] = dm.ready_ms;
                /* let it finish accepting the connection before reading */
                sleep_s(0.05);
                f->rss = proc_rss_kib(dm.pid, &f->anon, &f->file, &f->shmem);
                daemon_stop(&dm);
                if (f->rss < 0)
                        r = -EIO;
        }
        f->ready_ms = median(ms, opt.spawns);
        free(pr);
        free(ms);
        return r;
}

/* ---- in-process --------------------------------------------------------- */

struct inproc_fig {
        double ports_ms;        /* vs_device_new + the port adds */
        double probe_ms;        /* guest probe until every port is ready */
};

static int inproc_once(unsigned nports, struct inproc_fig *f)
{
        struct vs_device_config dc = { .max_ports = ALL_PORTS };
        struct fake_driver_cfg cfg = {
                .style = FAKE_STYLE_QEMU,
                .nregions = 1,
                .regions = { { .gpa = 0, .size = 256ull * MIB,
                               .uva = 0x7f3a00000000ull, .mmap_offset = 0 } },
                .queue_size = 256,
                /* one receive buffer per port: the device does not look at
                 * them at set-up, and the fake's posting is not the subject */
                .rx_fill = 1,
                .max_ports = ALL_PORTS,
        };
        struct fake_host *h = NULL;
        struct fake_driver *d = NULL;
        uint64_t t0, t1, t2;
        int r;

        t0 = now_ns();
        r = fake_host_new(&dc, &h);
        for (unsigned id = 0; id < nports && r == 0; id++) {
                char name[32];

                snprintf(name, sizeof(name), "bench.%u", id);
                if (!fake_host_add_port(h, (int32_t)id, name, id == 0, &r))
                        break;
        }
        t1 = now_ns();
        if (r == 0)
                r = fake_driver_new_inproc(h, &cfg, &d);
        if (r == 0)
                r = fake_inproc_probe(d);
        for (unsigned id = 0; id < nports && r == 0; id++)
                if (!d->port[id].added || !d->port[id].named)
                        r = -EPROTO;
        t2 = now_ns();
        if (r < 0)
                note("in-process set-up of %u ports: %s [%s]", nports, strerror(-r),
                     d ? fake_error(d) : "");
        f->ports_ms = (double)(t1 - t0) / 1e6;
        f->probe_ms = (double)(t2 - t1) / 1e6;
        fake_driver_free(d);
        fake_host_free(h);
        return r;
}

static int inproc_fig(unsigned nports, struct inproc_fig *f)
{
        double *a = calloc(opt.spawns, sizeof(double));
        double *b = calloc(opt.spawns, sizeof(double));
        int r = a && b ? 0 : -ENOMEM;

        for (unsigned s = 0; s < opt.spawns && r == 0; s++) {
                struct inproc_fig one;

                r = inproc_once(nports, &one);
                a[s] = one.ports_ms;
                b[s] = one.probe_ms;
        }
        if (r == 0) {
                f->ports_ms = median(a, opt.spawns);
                f->probe_ms = median(b, opt.spawns);
        }
        free(a);
        free(b);
        return r;
}

/* Heap the library keeps per idle port (no guest yet): 510 ports added to
 * a device, less the fake's own per-port record. */
static ssize_t lib_port_heap(void)
{
        struct vs_device_config dc = { .max_ports = ALL_PORTS };
        struct fake_host *h;
        struct mallinfo2 m0, m1;
        unsigned n = 0;
        ssize_t per;

        if (fake_host_new(&dc, &h) < 0)
                return -1;
        m0 = mallinfo2();
        for (unsigned id = 1; id < ALL_PORTS; id++, n++)
                if (!fake_host_add_port(h, (int32_t)id, NULL, false, NULL))
                        break;
        m1 = mallinfo2();
        per = n ? ((ssize_t)m1.uordblks - (ssize_t)m0.uordblks) / (ssize_t)n : -1;
        if (n)
                per -= (ssize_t)(malloc_usable_size(h->ports[1]) + sizeof(size_t));
        fake_host_free(h);
        return per;
}

/* ---- the group ------------------------------------------------------------ */

static bool is_tmpfs(const char *path)
{
        struct statfs st;

        return statfs(path, &st) == 0 && st.f_type == TMPFS_MAGIC;
}

static void rm_dir(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *e;

        while (d && (e = readdir(d))) {
                char p[600];

                if (e->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
                unlink(p);
        }
        if (d)
                closedir(d);
        rmdir(dir);
}

/* VmRSS per idle port before any guest, for the probed figure's baseline. */
static double unprobed_kib;

/* Spawn to ready and RSS, 0 and 127 ports, sockets in @dir. */
static void spawn_rows(const char *dir, const char *where, bool judged)
{
        struct spawn_fig none = { 0 }, many = { 0 };
        struct row *row;
        char name[64];
        int r;

        r = spawn_fig(dir, 0, &none);
        if (r == 0)
                r = spawn_fig(dir, DAEMON_PORTS, &many);
        snprintf(name, sizeof(name), "%u ports: spawn to ready, %s", DAEMON_PORTS, where);
        if (r < 0) {
                case_failed("setup", name, "%s", strerror(-r));
                return;
        }
        row = row_add("setup", name, many.ready_ms, "ms", "0 ports, same --max-ports",
                      none.ready_ms);
        if (judged)
                row_target(row, TGT_VALUE_MAX, 100);
        row_extra(row, "median of %u spawns; fork/exec to accepting the VMM socket (the "
                  "ports bind and listen first); sockets in %s", opt.spawns, dir);
        if (!judged)
                return;
        snprintf(name, sizeof(name), "%u idle ports: daemon VmRSS", DAEMON_PORTS);
        row = row_add("setup", name, (double)many.rss, "KiB", "0 ports: VmRSS",
                      (double)none.rss);
        row_extra(row, "anon %ld/%ld, file %ld/%ld, shmem %ld/%ld KiB (%u/0 ports)",
                  many.anon, none.anon, many.file, none.file, many.shmem, none.shmem,
                  DAEMON_PORTS);
        {
                double per_port = (double)(many.rss - none.rss) / DAEMON_PORTS;
                ssize_t lib = lib_port_heap();

                unprobed_kib = per_port;
                row = row_add("setup", "idle port: daemon VmRSS per port", per_port, "KiB",
                              "library heap per port", lib > 0 ? (double)lib / KIB : 0);
                row_target(row, TGT_VALUE_MAX, 16);
                row_extra(row, "(VmRSS %u ports - VmRSS 0 ports) / %u; unix backend, "
                          "no client, VMM connected but no guest", DAEMON_PORTS, DAEMON_PORTS);
        }
}

void run_setup(void)
{
        struct inproc_fig one = { 0 }, all = { 0 };
        struct vmm v1 = { 0 }, vn = { 0 };
        struct row *row;
        int r;

        if (case_wanted("spawn")) {
                char shm[64] = "/dev/shm/vsb-XXXXXX";

                if (is_tmpfs("/dev/shm") && mkdtemp(shm)) {
                        spawn_rows(shm, "sockets on tmpfs", true);
                        rm_dir(shm);
                        spawn_rows(opt.dir, "sockets on /tmp", false);
                } else {
                        spawn_rows(opt.dir, "sockets on /tmp", true);
                }
        }
        if (case_wanted("inproc")) {
                r = inproc_fig(1, &one);
                if (r == 0)
                        r = inproc_fig(ALL_PORTS, &all);
                if (r < 0) {
                        case_failed("setup", "511 ports: in-process set-up", "%s",
                                    strerror(-r));
                } else {
                        row = row_add("setup", "511 ports: in-process set-up",
                                      all.ports_ms + all.probe_ms, "ms",
                                      "1 port, same --max-ports", one.ports_ms + one.probe_ms);
                        row_target(row, TGT_VALUE_MAX, 100);
                        row_extra(row, "median of %u; device + ports %.2f ms, guest probe of "
                                  "1024 rings + control protocol %.2f ms (fake guest "
                                  "included)", opt.spawns, all.ports_ms, all.probe_ms);
                }
        }
        if (!case_wanted("probe"))
                return;
        /* the vhost-user probe as QEMU does it, and RSS with a guest */
        r = vmm_start(&v1, "probe1", 1, true);
        if (r == 0)
                r = vmm_start(&vn, "probe126", BENCH_VU_PORTS - 1, true);
        if (r < 0) {
                case_failed("setup", "126 ports: vhost-user probe", "%s", strerror(-r));
        } else {
                long a1 = 0, an = 0;

                row = row_add("setup", "126 ports: vhost-user start + probe", vn.probe_ms, "ms",
                              "1 port, same --max-ports 127", v1.probe_ms);
                row_extra(row, "QEMU sequence for 256 rings with REPLY_ACK, DEVICE_READY "
                          "until every port is named");
                sleep_s(0.05);
                proc_rss_kib(v1.dm.pid, &a1, NULL, NULL);
                proc_rss_kib(vn.dm.pid, &an, NULL, NULL);
                row = row_add("setup", "probed idle port: daemon RssAnon per port",
                              (double)(an - a1) / (BENCH_VU_PORTS - 2), "KiB",
                              "VmRSS per port before any guest", unprobed_kib);
                row_target(row, TGT_VALUE_MAX, 16);
                row_extra(row, "(RssAnon 126 ports - RssAnon 1 port) / 125 after the guest "
                          "probed them (rings started); 1-port daemon RssAnon %ld KiB", a1);
        }
        vmm_stop(&v1);
        vmm_stop(&vn);
}
