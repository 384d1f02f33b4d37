/* ktstr-agent main: hello, read the plan, run it, done (see agent.h). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* forks since boot (/proc/stat "processes"), to count what the guest side costs */
static long processes(void)
{
	char *st = read_file("/proc/stat", 1 << 20, NULL), *p = st ? strstr(st, "\nprocesses ") : NULL;
	long n = p ? strtol(p + strlen("\nprocesses "), NULL, 10) : -1;
	free(st);
	return n;
}

/* the channel from the host: JSON lines, and raw file archives framed by a header line */
static char rbuf[1 << 16];
static size_t rlen, rpos;

static int rfill(int fd)
{
	if (rpos < rlen)
		return 0;
	ssize_t r;
	do
		r = read(fd, rbuf, sizeof(rbuf));
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	rpos = 0;
	rlen = (size_t)r;
	return 0;
}

/* one line without its newline (malloc'd), or NULL at the end of the channel */
static char *read_line(int fd)
{
	size_t cap = 1 << 12, len = 0;
	char *buf = malloc(cap);
	int got = 0;
	while (!rfill(fd)) {
		char *nl = memchr(rbuf + rpos, '\n', rlen - rpos);
		size_t n = nl ? (size_t)(nl - (rbuf + rpos)) : rlen - rpos;
		if (len + n + 1 > cap) {
			while (len + n + 1 > cap)
				cap *= 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + len, rbuf + rpos, n);
		len += n;
		rpos += n + (nl ? 1 : 0);
		got = 1;
		if (nl)
			break;
	}
	if (!got) {
		free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

/* exactly n bytes of the channel into dst; 0 when they came */
static int chan_read(void *ctx, char *dst, size_t n)
{
	int fd = *(int *)ctx;
	while (n > 0) {
		if (rfill(fd))
			return -1;
		size_t k = rlen - rpos < n ? rlen - rpos : n;
		memcpy(dst, rbuf + rpos, k);
		rpos += k;
		dst += k;
		n -= k;
	}
	return 0;
}

/* per-run files sent after a restored (or fresh) boot: a cpio archive unpacked over /
 * as it arrives */
static void receive_files(int fd, json_t *header)
{
	size_t size = (size_t)json_integer_value(json_object_get(header, "size"));
	double t0 = uptime_s();
	char bytes[32], secs[32], err[512];
	/* over / in the guest; KTSTR_AGENT_ROOT elsewhere when tests run the agent on a host */
	const char *root = getenv("KTSTR_AGENT_ROOT");
	int rc = cpio_unpack(chan_read, &fd, size, root && *root ? root : "", err, sizeof(err));
	if (rc < 0) {
		emit_event("setup_failed", "what", "files", "key", "channel", "value", "",
			   "error", "the per-run files did not arrive whole", NULL);
		return;
	}
	if (rc > 0)
		emit_event("setup_failed", "what", "files", "key", "archive", "value", "",
			   "error", err, NULL);
	snprintf(bytes, sizeof(bytes), "%zu", size);
	snprintf(secs, sizeof(secs), "%.3f", uptime_s() - t0);
	emit_event("files_received", "bytes", bytes, "seconds", secs, NULL);
}

/* what must differ between two VMs restored from one snapshot: the wall clock, entropy */
static void apply_host_facts(json_t *plan)
{
	json_t *ns = json_object_get(plan, "clock_unix_ns");
	if (json_is_integer(ns)) {
		json_int_t v = json_integer_value(ns);
		struct timespec ts = { .tv_sec = (time_t)(v / 1000000000), .tv_nsec = (long)(v % 1000000000) };
		if (clock_settime(CLOCK_REALTIME, &ts))
			emit_log("cannot set the clock: %s", strerror(errno));
	}
	const char *hex = json_string_value(json_object_get(plan, "entropy_hex"));
	if (hex && *hex) {
		unsigned char raw[256];
		size_t n = 0;
		for (; n < sizeof(raw) && hex[2 * n] && hex[2 * n + 1]; n++) {
			unsigned int b;
			if (sscanf(hex + 2 * n, "%2x", &b) != 1)
				break;
			raw[n] = (unsigned char)b;
		}
		int u = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
		if (u >= 0) { /* mixed into the pool (not credited: the kernel is seeded already) */
			write_all(u, (const char *)raw, n);
			close(u);
		}
	}
}

/* the run plan, after any per-run files the host sends first */
static json_t *read_plan(int fd)
{
	for (;;) {
		char *line = read_line(fd);
		if (!line)
			return NULL;
		json_error_t err;
		json_t *msg = json_loads(line, 0, &err);
		if (!msg) {
			emit_log("bad run plan at line %d column %d: %s", err.line, err.column, err.text);
			free(line);
			return NULL;
		}
		free(line);
		const char *t = json_string_value(json_object_get(msg, "t"));
		if (t && !strcmp(t, "files")) {
			receive_files(fd, msg);
			json_decref(msg);
			continue;
		}
		apply_host_facts(msg);
		return msg;
	}
}

static int run_exec(json_t *plan)
{
	const char *cmd = json_string_value(json_object_get(plan, "command"));
	char *argv[] = { "sh", "-c", (char *)(cmd ? cmd : "true"), NULL };
	int status = run_capture(argv, "/tmp/ktstr-stdout", "/tmp/ktstr-stderr", -1);
	size_t ol = 0, el = 0;
	char *out = read_file("/tmp/ktstr-stdout", 64 << 20, &ol);
	char *err = read_file("/tmp/ktstr-stderr", 64 << 20, &el);
	emit_json(json_pack("{s:s, s:i, s:o, s:o}", "t", "exec", "status", status, "stdout",
			    text_value(out, ol), "stderr", text_value(err, el)));
	free(out);
	free(err);
	return status;
}

static int run_test(json_t *plan)
{
	json_t *spec = json_object_get(plan, "scheduler");
	struct sched s = {
		.kind = json_string_value(json_object_get(spec, "kind")),
		.attach_s = json_number_value(json_object_get(spec, "attach_timeout_s")),
		.stop_s = json_number_value(json_object_get(spec, "stop_timeout_s")),
		.require_alive = !json_is_false(json_object_get(spec, "require_alive")),
		.spec = spec,
	};
	if (!s.kind)
		s.kind = "none";
	if (setup_all(plan)) {
		/* a broken setup: the scheduler is not started (the host reports ERROR) */
		sched_report(&s);
		return 3;
	}
	trace_begin(plan);
	if (sched_start(&s)) {
		sched_report(&s);
		return 1;
	}
	json_t *scenario = json_object_get(plan, "scenario");
	int rc = json_is_object(scenario) ? scenario_run(scenario, &s) : workload_run(plan, &s);
	sched_stop(&s);
	sched_report(&s);
	return rc ? 1 : 0;
}

static int agent(const char *port)
{
	/* PORT "-": the plan on stdin, the messages on stdout (tests on the host) */
	int fd = strcmp(port, "-") ? open(port, O_RDWR | O_CLOEXEC) : 0;
	struct utsname u;
	if (fd < 0) {
		fprintf(stderr, "ktstr-agent: cannot open %s: %s\n", port, strerror(errno));
		return 2;
	}
	emit_open(strcmp(port, "-") ? fd : dup(1));
	if (!strcmp(port, "-"))
		dup2(2, 1); /* what the agent's children print must not mix into the messages */
	uname(&u);
	setup_kconfig(u.release);
	emit_json(json_pack("{s:s, s:f, s:s, s:I}", "t", "hello", "uptime_s", uptime_s(),
			    "release", u.release, "processes", (json_int_t)processes()));
	json_t *plan = read_plan(fd);
	int status = 2;
	const char *mode = plan ? json_string_value(json_object_get(plan, "mode")) : NULL;
	if (plan && json_is_true(json_object_get(plan, "report_topology")))
		report_topology();
	if (plan && json_is_true(json_object_get(plan, "harness_rt")))
		setup_harness_rt();
	if (!mode)
		emit_log("the run plan has no mode");
	else if (!strcmp(mode, "exec"))
		status = run_exec(plan);
	else if (!strcmp(mode, "run"))
		status = run_test(plan);
	else if (!strcmp(mode, "verify"))
		status = verify_run(plan);
	else if (!strcmp(mode, "shell"))
		status = 100; /* the init hands the console to a shell */
	else
		emit_log("unknown mode %s", mode);
	emit_json(json_pack("{s:s, s:i, s:f, s:I}", "t", "done", "status", status == 100 ? 0 : status,
			    "uptime_s", uptime_s(), "processes", (json_int_t)processes()));
	json_decref(plan);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "worker"))
		return worker_main(argc - 1, argv + 1);
	if (argc >= 3 && !strcmp(argv[1], "agent"))
		return agent(argv[2]);
	fprintf(stderr, "usage: ktstr-agent agent PORT | ktstr-agent worker run|affinity ...\n");
	return 2;
}
