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

static void test_spec_errors(void **state)
{
        (void)state;
        expect_spec_error("name=x", "backend");
        expect_spec_error("backend=tcpx", "unknown backend");
        expect_spec_error("backend=unix", "path");
        expect_spec_error("backend=stdio,path=/x", "path");
        expect_spec_error("id=abc,backend=stdio", "id");
        expect_spec_error("id=-1,backend=stdio", "id");
        expect_spec_error("id=511,backend=stdio", "id");
        expect_spec_error("id=0,backend=stdio", "reserved");
        expect_spec_error("colour=red,backend=stdio", "unknown key 'colour'");
        expect_spec_error("name=,backend=stdio", "name");
        expect_spec_error("name=a b,backend=stdio", "space");
        expect_spec_error("console=1,backend=stdio", "console");
        expect_spec_error("name,backend=stdio", "needs a value");
}

static void expect_cmdline_error(int r, const char *needle)
{
        assert_int_equal(r, -EINVAL);
        if (!strstr(err, needle))
                fail_msg("error '%s' lacks '%s'", err, needle);
        assert_null(strchr(err, '\n'));
}

static void test_cmdline_errors(void **state)
{
        (void)state;
        expect_cmdline_error(PARSE("--max-ports", "4"), "--socket");
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "0"), "--max-ports");
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "512"), "--max-ports");
        /* 258 rings: vhost-user's 8-bit ring index would alias 256, 257
         * with 0, 1 */
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "128"), "1..127");
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "511"), "256 rings");
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "12x"), "--max-ports");
        expect_cmdline_error(PARSE("-s", "/s", "--bogus"), "--bogus");
        expect_cmdline_error(PARSE("-s", "/s", "extra"), "extra");
        expect_cmdline_error(PARSE("-s", "/s", "--log-level", "loud"), "--log-level");
        expect_cmdline_error(PARSE("-s", "/s", "--port"), "needs an argument");
        expect_cmdline_error(PARSE("-s", "/s", "--port", "id=3,backend=stdio",
                                   "--port", "id=3,backend=unix,path=/a"), "id=3");
        expect_cmdline_error(PARSE("-s", "/s", "--port", "name=a,backend=unix,path=/a",
                                   "--port", "name=a,backend=unix,path=/b"), "name=a");
        expect_cmdline_error(PARSE("-s", "/s", "--port", "backend=unix,path=/a",
                                   "--port", "backend=unix,path=/a"), "path=/a");
        expect_cmdline_error(PARSE("-s", "/s", "--port", "backend=stdio",
                                   "--port", "console,backend=stdio"), "stdio");
        expect_cmdline_error(PARSE("-s", "/s", "--max-ports", "4",
                                   "--port", "id=4,backend=stdio"), "--max-ports");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_ports),
                cmocka_unit_test(test_spec_errors),
                cmocka_unit_test(test_cmdline_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
