/* SPDX-License-Identifier: MIT */
/* The command line and --port SPEC parser: accepted forms and every
 * rejection with its one-line reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "options.h"

static struct options opt;
static char err[512];

static int parse(int argc, char **argv)
{
        err[0] = '\0';
        return options_parse(argc, argv, &opt, err, sizeof(err));
}

#define PARSE(...) ({ char *av[] = { "vserial", __VA_ARGS__ }; \
                      parse(sizeof(av) / sizeof(av[0]), av); })

static void test_minimal(void **state)
{
        (void)state;
        assert_int_equal(PARSE("--socket", "/tmp/x.sock"), 0);
        assert_string_equal(opt.socket_path, "/tmp/x.sock");
        assert_int_equal(opt.max_ports, VS_DEFAULT_MAX_PORTS);
        assert_int_equal(opt.nports, 0);
}

static void test_ports(void **state)
{
        (void)state;
        assert_int_equal(PARSE("-s", "/s", "--max-ports", "127",
                               "--port", "console,backend=stdio",
                               "--port", "id=5,name=org.qemu.guest_agent.0,backend=unix,path=/tmp/qga"), 0);
        assert_int_equal(opt.max_ports, 127);
        assert_int_equal(opt.nports, 2);
        assert_true(opt.ports[0].console);
        assert_int_equal(opt.ports[0].id, -1);
        assert_int_equal(opt.ports[0].backend, BACKEND_STDIO);
        assert_int_equal(opt.ports[1].id, 5);
        assert_string_equal(opt.ports[1].name, "org.qemu.guest_agent.0");
        assert_string_equal(opt.ports[1].path, "/tmp/qga");
}

/* Each bad input is refused with a reason naming the problem. */
static void expect_spec_error(const char *spec, const char *needle)
{
        struct port_spec p;

        assert_int_equal(spec_parse(spec, &p, err, sizeof(err)), -EINVAL);
        if (!strstr(err, needle))
                fail_msg("spec '%s': error '%s' lacks '%s'", spec, err, needle);
}

/*
 * Every refused SPEC and the words its one-line reason must contain (the
 * journal rows depend on libsystemd: test_host_keys has them).
 */
static const struct { const char *spec, *needle; } spec_errors[] = {
        { "name=x", "backend" },
        { "backend=tcpx", "unknown backend" },
        { "backend=unix", "path" },
        { "backend=stdio,path=/x", "path" },
        { "id=abc,backend=stdio", "id" },
        { "id=-1,backend=stdio", "id" },
        { "id=511,backend=stdio", "id" },
        { "id=0,backend=stdio", "reserved" },
        { "colour=red,backend=stdio", "unknown key 'colour'" },
        { "name=,backend=stdio", "name" },
        { "name=a b,backend=stdio", "space" },
        { "console=1,backend=stdio", "console" },
        { "name,backend=stdio", "needs a value" },
        { "backend=unix,path=/a,clients=0", "clients '0' is not a number in 1..64" },
        { "backend=unix,path=/a,clients=65", "clients '65'" },
        { "backend=unix,path=/a,clients=2x", "clients '2x'" },
        { "backend=unix,path=/a,clients=", "clients ''" },
        { "backend=unix,path=/a,clients", "needs a value" },
        { "backend=pty,clients=2", "clients= is only for backend=unix and backend=tcp" },
        { "backend=unix-connect,path=/a,clients=2", "clients= is only for" },
        { "backend=unix,path=/a,on-connect=drop",
          "on-connect 'drop': expected replay or discard" },
        { "backend=file,path=/a,on-connect=discard", "on-connect= is only for" },
        { "backend=stdio,on-connect=replay", "on-connect= is only for" },
        { "backend=pty,history=2K", "history '2K'" },
        { "backend=pty,history=65M", "history '65M'" },
        { "backend=pty,history=-1", "history" },
        { "backend=pty,logfile-timestamps=on", "needs logfile=" },
        { "backend=pty,logfile=/l,logfile-timestamps=yes", "on or off" },
        { "backend=file,path=/l,logfile=/l", "same file" },
        { "backend=pty,logfile=", "logfile" },
        { "backend=tcp-connect", "needs port=" },
        { "backend=tcp-connect,port=1,host=example.org", "numeric" },
        { "backend=unix-connect,path=/s,port=3", "host= and port=" },
        { "backend=fd", "needs fd=N, or name=" },
        { "backend=fd,fd=2", "fd '2'" },
        { "backend=fd,fd=x", "fd 'x'" },
        { "backend=pty,fd=4", "only for backend=fd" },
        { "backend=pty,journal-priority=3", "only for backend=journal" },
};

static void test_spec_errors(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(spec_errors) / sizeof(spec_errors[0]); i++)
                expect_spec_error(spec_errors[i].spec, spec_errors[i].needle);
}

/* Host connections: clients= and on-connect= (issues 13 and 15). */
static void test_spec_conn(void **state)
{
        struct port_spec p;

        (void)state;
        assert_int_equal(spec_parse("backend=unix,path=/a", &p, err, sizeof(err)), 0);
        assert_int_equal(p.clients, 1);
        assert_int_equal(p.on_connect, ON_CONNECT_REPLAY);
        assert_int_equal(spec_parse("backend=tcp,port=9,clients=64,on-connect=discard", &p, err,
                                    sizeof(err)), 0);
        assert_int_equal(p.clients, 64);
        assert_int_equal(p.on_connect, ON_CONNECT_DISCARD);
        assert_int_equal(spec_parse("backend=unix-connect,path=/a,on-connect=replay", &p, err,
                                    sizeof(err)), 0);
        assert_int_equal(p.on_connect, ON_CONNECT_REPLAY);
}

static void expect_cmdline_error(int r, const char *needle)
{
        assert_int_equal(r, -EINVAL);
        if (!strstr(err, needle))
                fail_msg("error '%s' lacks '%s'", err, needle);
        assert_null(strchr(err, '\n'));
}

/* Every refused command line (after argv[0]) and the words of its reason. */
static const struct { const char *argv[8], *needle; } cmdline_errors[] = {
        { { "--max-ports", "4" }, "--socket" },
        { { "-s", "/s", "--max-ports", "0" }, "--max-ports" },
        { { "-s", "/s", "--max-ports", "512" }, "--max-ports" },
        /* 258 rings: vhost-user's 8-bit ring index would alias 256, 257
         * with 0, 1 */
        { { "-s", "/s", "--max-ports", "128" }, "1..127" },
        { { "-s", "/s", "--max-ports", "511" }, "256 rings" },
        { { "-s", "/s", "--max-ports", "12x" }, "--max-ports" },
        { { "-s", "/s", "--bogus" }, "--bogus" },
        { { "-s", "/s", "extra" }, "extra" },
        { { "-s", "/s", "--log-level", "loud" }, "--log-level" },
        { { "-s", "/s", "--port" }, "needs an argument" },
        { { "-s", "/s", "--port", "id=3,backend=stdio", "--port", "id=3,backend=unix,path=/a" },
          "id=3" },
        { { "-s", "/s", "--port", "name=a,backend=unix,path=/a",
            "--port", "name=a,backend=unix,path=/b" },
          "name=a" },
        { { "-s", "/s", "--port", "backend=unix,path=/a", "--port", "backend=unix,path=/a" },
          "path=/a" },
        { { "-s", "/s", "--port", "backend=stdio", "--port", "console,backend=stdio" },
          "stdio" },
        { { "-s", "/s", "--max-ports", "4", "--port", "id=4,backend=stdio" }, "--max-ports" },
        { { "-s", "/s", "--port", "backend=unix,path=/a,clients=99" },
          "--port 'backend=unix,path=/a,clients=99': clients '99'" },
        { { "-s", "/s", "--instance", "a b" }, "--instance" },
        { { "-s", "/s", "--instance", "" }, "--instance" },
        { { "-s", "/s", "--port", "name=a,backend=null,logfile=/l",
            "--port", "name=b,backend=null,logfile=/l" },
          "logfile=/l" },
        { { "-s", "/s", "--port", "name=a,backend=file,path=/l",
            "--port", "name=b,backend=null,logfile=/l" },
          "logfile=/l" },
        { { "-s", "/s", "--port", "name=a,backend=fd,fd=5",
            "--port", "name=b,backend=fd,fd=5" },
          "fd=5" },
        { { "--socket-fd", "5", "--port", "name=a,backend=fd,fd=5" }, "--socket-fd" },
};

static void test_cmdline_errors(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(cmdline_errors) / sizeof(cmdline_errors[0]); i++) {
                char *av[9] = { "vserial" };
                int argc = 1;

                /* a copy: getopt permutes argv */
                for (; argc < 9 && cmdline_errors[i].argv[argc - 1]; argc++)
                        av[argc] = (char *)cmdline_errors[i].argv[argc - 1];
                expect_cmdline_error(parse(argc, av), cmdline_errors[i].needle);
        }
}

/* history=, logfile=, the new backends, --instance (issue 13). */
static void test_host_keys(void **state)
{
        struct port_spec p;

        (void)state;
        assert_int_equal(spec_parse("console,backend=pty", &p, err, sizeof(err)), 0);
        assert_int_equal(p.history, 64 * 1024);
        assert_int_equal(spec_parse("name=x,backend=pty", &p, err, sizeof(err)), 0);
        assert_int_equal(p.history, 0);
        assert_int_equal(spec_parse("console,history=0,backend=pty", &p, err, sizeof(err)), 0);
        assert_int_equal(p.history, 0);
        assert_int_equal(spec_parse("name=x,history=1M,backend=null,logfile=/l,"
                                    "logfile-timestamps=on", &p, err, sizeof(err)), 0);
        assert_int_equal(p.history, 1 << 20);
        assert_string_equal(p.logfile, "/l");
        assert_true(p.logfile_timestamps);
        assert_int_equal(spec_parse("name=x,backend=tcp-connect,port=22", &p, err, sizeof(err)), 0);
        assert_int_equal(p.backend, BACKEND_TCP_CONNECT);
        assert_string_equal(p.host, "127.0.0.1");
        assert_int_equal(spec_parse("name=x,backend=tcp-connect,host=::1,port=22", &p, err,
                                    sizeof(err)), 0);
        assert_int_equal(spec_parse("name=x,backend=fd,fd=7", &p, err, sizeof(err)), 0);
        assert_int_equal(p.fd, 7);
        assert_int_equal(spec_parse("name=x,backend=fd", &p, err, sizeof(err)), 0);
        assert_int_equal(p.fd, -1);
        if (backend_journal_available()) {
                assert_int_equal(spec_parse("name=x,backend=journal,journal-priority=warning", &p,
                                            err, sizeof(err)), 0);
                assert_int_equal(p.journal_priority, 4);
                assert_int_equal(spec_parse("name=x,backend=journal", &p, err, sizeof(err)), 0);
                assert_int_equal(p.journal_priority, 6);
        } else {
                expect_spec_error("name=x,backend=journal", "without libsystemd");
        }
        expect_spec_error("backend=journal,journal-priority=8", backend_journal_available() ?
                          "journal-priority '8'" : "without libsystemd");
}

static void test_host_cmdline(void **state)
{
        (void)state;
        assert_int_equal(PARSE("-s", "/run/vm7.sock"), 0);
        assert_string_equal(opt.instance, "vm7");
        assert_int_equal(PARSE("-s", "/s", "--instance", "vm@1.a-b_c:d"), 0);
        assert_string_equal(opt.instance, "vm@1.a-b_c:d");
        /* Two ports may connect to one server. */
        assert_int_equal(PARSE("-s", "/s", "--port", "name=a,backend=tcp-connect,port=9",
                               "--port", "name=b,backend=tcp-connect,port=9"), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_ports),
                cmocka_unit_test(test_spec_errors),
                cmocka_unit_test(test_spec_conn),
                cmocka_unit_test(test_cmdline_errors),
                cmocka_unit_test(test_host_keys),
                cmocka_unit_test(test_host_cmdline),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
