/* The scheduler under test: start, attach proof, watch, stop, report. */
#include "agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/wait.h>
#include <unistd.h>

#define SCX "/sys/kernel/sched_ext"

static char *scx_read(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), SCX "/%s", name);
	char *v = read_line_file(path);
	return v ? v : strdup("");
}

static char *scx_state(void)
{
	char *s = scx_read("state");
	if (!*s) {
		free(s);
		return strdup("none");
	}
	return s;
}

int sched_state_is(const char *state)
{
	char *s = scx_state();
	int eq = !strcmp(s, state);
	free(s);
	return eq;
}

static long scx_seq(void)
{
	char *s = scx_read("enable_seq");
	long v = strtol(s, NULL, 10);
	free(s);
	return v;
}

static int run_shell_lines(json_t *lines, const char *log)
{
	size_t i;
	json_t *l;
	int rc = 0;
	json_array_foreach(lines, i, l) {
		const char *cmd = json_string_value(l);
		if (!cmd)
			continue;
		char *argv[] = { "sh", "-c", (char *)cmd, NULL };
		int c = run_capture(argv, log, log, 60);
		if (c)
			rc = c;
	}
	return rc;
}

static void exited(struct sched *s, int status, const char *phase)
{
	char code[16];
	s->code = exit_code(status);
	snprintf(code, sizeof(code), "%d", s->code);
	char *st = scx_state();
	s->pid = 0;
	trace_freeze("sched_exited");
	emit_event("sched_exited", "code", code, "phase", phase, "state", st, NULL);
	free(st);
}

int sched_start(struct sched *s)
{
	long seq0 = scx_seq();
	if (!strcmp(s->kind, "none")) {
		char *st = scx_state();
		emit_event("sched_none", "state", st, NULL);
		free(st);
		return 0;
	}
	if (!strcmp(s->kind, "builtin")) {
		char code[16];
		snprintf(code, sizeof(code), "%d",
			 run_shell_lines(json_object_get(s->spec, "enable"), SCHED_LOG));
		emit_event("sched_enable_cmds", "status", code, NULL);
	} else {
		json_t *args = json_object_get(s->spec, "args");
		size_t n = json_array_size(args), i;
		char **argv = calloc(n + 2, sizeof(char *));
		argv[0] = (char *)json_string_value(json_object_get(s->spec, "path"));
		for (i = 0; i < n; i++)
			argv[i + 1] = (char *)json_string_value(json_array_get(args, i));
		s->pid = spawn(argv, SCHED_LOG, SCHED_LOG, 1, 0);
		free(argv);
		char pid[16];
		snprintf(pid, sizeof(pid), "%d", (int)s->pid);
		char *st = scx_state();
		emit_event("sched_started", "pid", pid, "binary", json_string_value(
				   json_object_get(s->spec, "path")), "state", st, NULL);
		free(st);
	}
	/* attach proof: state=enabled, ops named, enable_seq moved past its value at start */
	double end = uptime_s() + s->attach_s;
	for (;;) {
		char *st = scx_state(), *ops = scx_read("root/ops");
		long seq = scx_seq();
		if (!strcmp(st, "enabled") && *ops && seq > seq0) {
			char seqs[32];
			snprintf(seqs, sizeof(seqs), "%ld", seq);
			trace_mark("sched_attached");
			emit_event("sched_attached", "ops", ops, "enable_seq", seqs, "state", "enabled",
				   NULL);
			free(st);
			free(ops);
			return 0;
		}
		int status;
		if (s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == s->pid) {
			free(st);
			free(ops);
			exited(s, status, "attach");
			return 1;
		}
		if (uptime_s() >= end) {
			char bound[32];
			snprintf(bound, sizeof(bound), "%.0f", s->attach_s);
			emit_event("sched_not_attached", "state", st, "ops", ops, "timeout_s", bound,
				   NULL);
			free(st);
			free(ops);
			return 1;
		}
		free(st);
		free(ops);
		msleep(20); /* no event says "enabled": poll (three sysfs reads) */
	}
}

static int gone(struct sched *s)
{
	s->gone = 1;
	return s->require_alive ? 1 : 0;
}

int sched_check(struct sched *s)
{
	int status;
	if (!strcmp(s->kind, "none"))
		return 0;
	if (s->gone)
		return gone(s);
	if (s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == s->pid) {
		exited(s, status, "run");
		return gone(s);
	}
	if (!sched_state_is("enabled")) {
		trace_freeze("sched_detached");
		char *st = scx_state();
		emit_event("sched_detached", "state", st, "phase", "run", NULL);
		free(st);
		/* the process usually follows (it died, or it is printing its exit) */
		if (s->pid > 0 && wait_pid(s->pid, s->stop_s, &status))
			exited(s, status, "run");
		return gone(s);
	}
	return 0;
}

void sched_stop(struct sched *s)
{
	int status = 0;
	if (!strcmp(s->kind, "none"))
		return;
	if (!strcmp(s->kind, "builtin")) {
		run_shell_lines(json_object_get(s->spec, "disable"), SCHED_LOG);
		char *st = scx_state();
		emit_event("sched_stopped", "state", st, "how", "disable_cmds", NULL);
		free(st);
		return;
	}
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGINT);
	if (!wait_pid(s->pid, s->stop_s, &status)) {
		char pid[16];
		snprintf(pid, sizeof(pid), "%d", (int)s->pid);
		kill(s->pid, SIGKILL);
		emit_event("sched_kill_needed", "pid", pid, NULL);
		waitpid(s->pid, &status, 0);
	}
	s->pid = 0;
	/* the kernel finishes disabling asynchronously: the same bound */
	double end = uptime_s() + s->stop_s;
	while (!sched_state_is("disabled") && uptime_s() < end)
		msleep(20);
	char code[16];
	snprintf(code, sizeof(code), "%d", exit_code(status));
	char *st = scx_state();
	emit_event("sched_stopped", "code", code, "state", st, "how", "sigint", NULL);
	free(st);
}

/* the kernel log lines about sched_ext (dmesg | grep -E 'sched_ext|scx_') */
static void report_dmesg(void)
{
	int len = klogctl(10, NULL, 0);
	if (len <= 0)
		return;
	char *buf = malloc((size_t)len + 1), *out = malloc((size_t)len + 1);
	size_t o = 0;
	int n = klogctl(3, buf, len);
	if (n > 0) {
		buf[n] = 0;
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			if (!strstr(line, "sched_ext") && !strstr(line, "scx_"))
				continue;
			/* klog lines start with <level>; dmesg prints without it */
			if (line[0] == '<') {
				char *gt = strchr(line, '>');
				if (gt)
					line = gt + 1;
			}
			size_t l = strlen(line);
			memcpy(out + o, line, l);
			o += l;
			out[o++] = '\n';
		}
	}
	emit_blob("dmesg_sched_ext", out, o);
	free(buf);
	free(out);
}

void sched_report(struct sched *s)
{
	(void)s;
	trace_report();
	if (path_is_file(SCHED_LOG))
		emit_blob_file("sched_log", SCHED_LOG, 8 << 20);
	report_dmesg();
}
