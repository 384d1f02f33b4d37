/* The default workloads (spin, stress-ng, hackbench) and a payload run to its end, each
 * watched with the scheduler every 100 ms and stopped at once when the scheduler goes. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WL 1024
#define WL_LOG "/tmp/ktstr-workload.log"
#define SNG_YAML "/tmp/ktstr-stress-ng.yaml"
#define P_OUT "/tmp/ktstr-payload.out"
#define P_ERR "/tmp/ktstr-payload.err"
#define P_YAML "/tmp/ktstr-payload.yaml"

static pid_t pids[MAX_WL];
static int npids;

static pid_t spin_child(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct sched_param sp = { 0 };
		sched_setscheduler(0, SCHED_OTHER, &sp);
		signal(SIGTERM, SIG_DFL);
		for (volatile unsigned long x = 0;; x++)
			;
	}
	return pid;
}

/* live (not zombie) processes of process group pgid, up to max of them in pids */
static int pgrp_members(pid_t pgid, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], *st, *rp;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		st = read_file(path, 4096, NULL);
		if (!st)
			continue;
		rp = strrchr(st, ')'); /* comm may hold spaces: fields follow the last ')' */
		if (rp) {
			char state = 0;
			int ppid = 0, pg = 0;
			if (sscanf(rp + 1, " %c %d %d", &state, &ppid, &pg) == 3 && pg == pgid &&
			    state != 'Z') {
				if (n < max)
					pids[n] = (pid_t)atoi(e->d_name);
				n++;
			}
		}
		free(st);
	}
	closedir(d);
	return n;
}

/* SIGKILL process group pgid and wait, up to timeout_s in all, for each member to end
 * (woken by its pidfd: a signal is delivered asynchronously, so a member counted right
 * after kill() may still be running); returns how many are still alive */
static int pgrp_kill_wait(pid_t pgid, double timeout_s)
{
	pid_t pids[256];
	double end = uptime_s() + timeout_s;
	kill(-pgid, SIGKILL);
	int n = pgrp_members(pgid, pids, 256);
	for (int i = 0; i < n && i < 256; i++) {
		int pfd = (int)syscall(SYS_pidfd_open, pids[i], 0);
		if (pfd < 0)
			continue; /* already gone */
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		double left = end - uptime_s();
		int r;
		do
			r = poll(&p, 1, left > 0 ? (int)(left * 1000) : 0);
		while (r < 0 && errno == EINTR);
		close(pfd);
	}
	return pgrp_members(pgid, pids, 0);
}

static int watch(struct sched *s, double seconds, pid_t until_exit, int *status, int *exited)
{
	double end = uptime_s() + seconds;
	*exited = 0;
	for (;;) {
		if (sched_check(s))
			return 1;
		if (until_exit > 0 && waitpid(until_exit, status, WNOHANG) == until_exit) {
			*exited = 1;
			return sched_check(s);
		}
		double left = end - uptime_s();
		if (left <= 0)
			return 0;
		/* every 100 ms, and the last sleep ends on time, not up to 100 ms late */
		msleep(left < 0.1 ? (int)(left * 1000) + 1 : 100);
	}
}

int workload_run(json_t *plan, struct sched *s)
{
	json_t *wl = json_object_get(plan, "workload");
	const char *kind = json_string_value(json_object_get(wl, "kind"));
	int workers = (int)json_integer_value(json_object_get(wl, "workers"));
	double duration = json_number_value(json_object_get(wl, "duration_s"));
	char num[32], dur[32], pidlist[4096] = "";
	int rc = 0, status = 0, exited = 0;
	npids = 0;
	if (!kind)
		kind = "none";
	snprintf(num, sizeof(num), "%d", workers);
	snprintf(dur, sizeof(dur), "%.0fs", duration < 1 ? 1 : duration);
	if (!strcmp(kind, "spin")) {
		for (int i = 0; i < workers && npids < MAX_WL; i++)
			pids[npids++] = spin_child();
	} else if (!strcmp(kind, "stress-ng")) {
		char *argv[] = { "stress-ng", "--cpu", num, "--timeout", dur, "--metrics-brief",
				 "--yaml", SNG_YAML, NULL };
		pids[npids++] = spawn(argv, WL_LOG, WL_LOG, 1, 0);
	} else if (!strcmp(kind, "hackbench")) {
		char *argv[] = { "sh", "-c",
				 "while :; do hackbench --groups 2 --loops 50 || exit 1; done", NULL };
		pids[npids++] = spawn(argv, WL_LOG, WL_LOG, 1, 0);
	} else if (!strcmp(kind, "payload")) {
		json_t *a = json_object_get(wl, "argv");
		size_t n = json_array_size(a);
		char **argv = calloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			argv[i] = (char *)json_string_value(json_array_get(a, i));
		int own = json_is_true(json_object_get(wl, "own_pgrp"));
		pids[npids++] = spawn(argv, P_OUT, P_ERR, 1, own);
		free(argv);
	}
	for (int i = 0; i < npids; i++) {
		size_t l = strlen(pidlist);
		snprintf(pidlist + l, sizeof(pidlist) - l, "%s%d", i ? " " : "", (int)pids[i]);
	}
	emit_event("workload_started", "kind", kind, "workers", num, "pids", pidlist, NULL);

	if (!strcmp(kind, "payload")) {
		double bound = json_number_value(json_object_get(wl, "timeout_s"));
		int own = json_is_true(json_object_get(wl, "own_pgrp"));
		rc = watch(s, bound, pids[0], &status, &exited);
		if (!exited && !rc) {
			char b[32];
			snprintf(b, sizeof(b), "%.0f", bound);
			emit_event("payload_timeout", "timeout_s", b, NULL);
		}
		int alive = 0;
		if (!exited) { /* its group, when it has its own, goes below */
			kill(pids[0], SIGKILL);
			waitpid(pids[0], &status, 0);
		}
		if (own) /* what it started and left behind */
			alive = pgrp_kill_wait(pids[0], 10);
		char code[16], left[16] = "-";
		snprintf(code, sizeof(code), "%d", exit_code(status));
		if (own)
			snprintf(left, sizeof(left), "%d", alive);
		emit_event("payload_exit", "status", code, "reaped", own ? "group" : "process",
			   "left_in_group", left, NULL);
		emit_blob_file("payload_stdout", P_OUT, 64 << 20);
		emit_blob_file("payload_stderr", P_ERR, 64 << 20);
		if (path_is_file(P_YAML)) /* stress-ng --yaml (ktstr.payloads.builtin.STRESS_NG) */
			emit_blob_file("payload_yaml", P_YAML, 16 << 20);
		return rc;
	}

	rc = watch(s, duration, 0, &status, &exited);
	int wl_status = 0;
	/* stress-ng ends by itself after --timeout: a bounded wait, then a signal */
	int self_ending = !strcmp(kind, "stress-ng") && !rc;
	if (!self_ending) /* all at once, so the workers stop side by side */
		for (int i = 0; i < npids; i++)
			kill(pids[i], SIGTERM);
	for (int i = 0; i < npids; i++) {
		if (self_ending) {
			if (wait_pid(pids[i], 30, &status)) {
				wl_status = exit_code(status);
				continue;
			}
			kill(pids[i], SIGTERM);
		}
		if (!wait_pid(pids[i], 10, &status)) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &status, 0);
		}
		if (strcmp(kind, "spin"))
			wl_status = exit_code(status);
	}
	char st[16];
	snprintf(st, sizeof(st), "%d", wl_status);
	emit_event("workload_stopped", "kind", kind, "status", st, "early", rc ? "early" : "no",
		   NULL);
	if (path_is_file(WL_LOG))
		emit_blob_file("workload_log", WL_LOG, 4 << 20);
	if (path_is_file(SNG_YAML))
		emit_blob_file("stress_ng_yaml", SNG_YAML, 4 << 20);
	return rc;
}
