/* A scenario's steps (ktstr.scenario.plan): cgroups, two-phase started workers, cpusets,
 * affinity, moves, payloads, and holds that watch the scheduler every 100 ms. Each op is
 * an argv-like list (["scn_cg_add", KEY, NAME, CPUS], ...) from the host's plan. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIR_ "/tmp/ktstr-scn"
#define MAX_CG 128
#define MAX_PIDS 512
#define MAX_PAYLOADS 32
#define AGENT "/usr/bin/ktstr-agent"

struct cg {
	char key[32];
	char name[256];
	pid_t pids[MAX_PIDS];
	int n, next;
};

struct payload {
	char id[64];
	pid_t pid;
};

static struct cg cgs[MAX_CG];
static int ncg;
static struct payload payloads[MAX_PAYLOADS];
static int npayloads;
static char root[512];
static double ready_s = 30, stop_s = 10;
static FILE *spawned;
static struct sched *sched_;
static char *stat_begin;
static size_t stat_begin_len;

static const char *arg(json_t *op, size_t i)
{
	const char *s = json_string_value(json_array_get(op, i));
	return s ? s : "";
}

static struct cg *cg_of(const char *key, const char *name)
{
	for (int i = 0; i < ncg; i++)
		if (!strcmp(cgs[i].key, key))
			return &cgs[i];
	if (ncg == MAX_CG)
		return &cgs[MAX_CG - 1];
	struct cg *c = &cgs[ncg++];
	snprintf(c->key, sizeof(c->key), "%s", key);
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

static void op_failed(const char *op, const char *cgroup, const char *error)
{
	emit_event("scn_op_failed", "op", op, "cgroup", cgroup, "error", error, NULL);
}

static void enable_controllers(const char *dir)
{
	char path[1100], err[128];
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	write_file(path, "+cpuset", err, sizeof(err));
	write_file(path, "+cpu", err, sizeof(err));
}

static void pids_text(const pid_t *p, int n, char *out, size_t len)
{
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%d", i ? " " : "", (int)p[i]);
	}
}

static void begin(const char *r, double ready, double stop)
{
	char path[1024] = "/sys/fs/cgroup", *tok, *save, copy[512];
	snprintf(root, sizeof(root), "/sys/fs/cgroup%s", r);
	ready_s = ready;
	stop_s = stop;
	mkdir(DIR_, 0755);
	mkdir(DIR_ "/reports", 0755);
	mkdir(DIR_ "/logs", 0755);
	spawned = fopen(DIR_ "/spawned", "w");
	enable_controllers(path);
	snprintf(copy, sizeof(copy), "%s", r);
	for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%s", tok);
		mkdir(path, 0755);
		enable_controllers(path);
	}
	/* per-CPU busy time over the scenario (Assert.max_imbalance_ratio), sent at the end */
	stat_begin = read_file("/proc/stat", 1 << 20, &stat_begin_len);
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", root);
	char *ctl = read_line_file(path);
	emit_event("scenario_begin", "root", r, "controllers", ctl ? ctl : "", NULL);
	free(ctl);
}

static int cg_cpus(struct cg *c, const char *cpus)
{
	char path[1024], err[256], line[4096];
	snprintf(path, sizeof(path), "%s/%s/cpuset.cpus", root, c->name);
	snprintf(line, sizeof(line), "%s\n", cpus);
	if (write_file(path, line, err, sizeof(err))) {
		char why[4400];
		snprintf(why, sizeof(why), "writing '%s': %s", cpus, err);
		op_failed("cpuset", c->name, why);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s/cpuset.cpus.effective", root, c->name);
	char *eff = read_line_file(path);
	emit_event("scn_cpuset", "cgroup", c->name, "cpus", cpus, "effective", eff ? eff : "",
		   NULL);
	free(eff);
	return 0;
}

static int cg_add(const char *key, const char *name, const char *cpus)
{
	char dir[1024], parent[1024];
	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = 0;
	enable_controllers(parent);
	if (mkdir(dir, 0755) && errno != EEXIST) {
		op_failed("add_cgroup", name, strerror(errno));
		return 1;
	}
	struct cg *c = cg_of(key, name);
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->n = 0;
	if (*cpus)
		cg_cpus(c, cpus);
	emit_event("scn_cgroup_added", "cgroup", name, "key", key, NULL);
	return 0;
}

static int alive(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *st = read_file(path, 4096, NULL);
	if (!st)
		return 0;
	char *rp = strrchr(st, ')');
	int ok = rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
	free(st);
	return ok;
}

/* wait for each (one bound for all), then SIGKILL the rest */
static void reap(const pid_t *p, int n)
{
	double end = uptime_s() + stop_s;
	for (int i = 0; i < n; i++) {
		int status;
		double left = end - uptime_s();
		if (!wait_pid(p[i], left > 0 ? left : 0, &status)) {
			char pid[16];
			snprintf(pid, sizeof(pid), "%d", (int)p[i]);
			kill(p[i], SIGKILL);
			emit_event("scn_kill_needed", "pid", pid, NULL);
			waitpid(p[i], &status, 0);
		}
	}
}

static int spawn_workers(json_t *op)
{
	struct cg *c = cg_of(arg(op, 1), arg(op, 2));
	int count = atoi(arg(op, 3)), first = c->next;
	pid_t fresh[MAX_PIDS];
	int nf = 0;
	char cgdir[1024];
	snprintf(cgdir, sizeof(cgdir), "%s/%s", root, c->name);
	for (int i = 0; i < count && nf < MAX_PIDS; i++) {
		char idx[16], ready[300], report[300], log[300];
		int n = first + i;
		snprintf(idx, sizeof(idx), "%d", n);
		snprintf(ready, sizeof(ready), DIR_ "/ready.%s.%d", c->key, n);
		snprintf(report, sizeof(report), DIR_ "/reports/%s.%d.json", c->key, n);
		snprintf(log, sizeof(log), DIR_ "/logs/%s.%d.log", c->key, n);
		char *argv[] = { AGENT, "worker", "run", "--name", c->name, "--index", idx,
				 "--cgroup", cgdir, "--type", (char *)arg(op, 4), "--policy",
				 (char *)arg(op, 5), "--priority", (char *)arg(op, 6), "--nice",
				 (char *)arg(op, 7), "--cpus", (char *)arg(op, 8), "--ready", ready,
				 "--report", report, NULL };
		pid_t pid = spawn(argv, log, log, 1, 0);
		fresh[nf++] = pid;
		if (spawned)
			fprintf(spawned, "%s %d %d %s\n", c->key, n, (int)pid, c->name);
	}
	if (spawned)
		fflush(spawned);
	c->next = first + count;
	/* phase 2: all ready (bounded), then SIGUSR1 starts them together */
	double end = uptime_s() + ready_s;
	for (int i = 0; i < nf; i++) {
		char ready[300];
		snprintf(ready, sizeof(ready), DIR_ "/ready.%s.%d", c->key, first + i);
		while (!path_is_file(ready)) {
			if (uptime_s() >= end) {
				char why[128];
				snprintf(why, sizeof(why), "worker %d not ready after %.0f s", first + i,
					 ready_s);
				op_failed("spawn", c->name, why);
				i = nf;
				break;
			}
			msleep(20);
		}
	}
	for (int i = 0; i < nf; i++) {
		kill(fresh[i], SIGUSR1);
		if (c->n < MAX_PIDS)
			c->pids[c->n++] = fresh[i];
	}
	char pids[4096];
	pids_text(fresh, nf, pids, sizeof(pids));
	emit_event("scn_spawned", "cgroup", c->name, "count", arg(op, 3), "type", arg(op, 4),
		   "policy", arg(op, 5), "pids", pids, NULL);
	return 0;
}

static void stop_cg(struct cg *c)
{
	char pids[4096];
	if (!c->n)
		return;
	for (int i = 0; i < c->n; i++)
		kill(c->pids[i], SIGTERM);
	reap(c->pids, c->n);
	pids_text(c->pids, c->n, pids, sizeof(pids));
	c->n = 0;
	emit_event("scn_stopped", "cgroup", c->name, "pids", pids, NULL);
}

static int cg_remove(struct cg *c)
{
	char dir[1024];
	stop_cg(c);
	snprintf(dir, sizeof(dir), "%s/%s", root, c->name);
	double end = uptime_s() + stop_s;
	while (rmdir(dir)) {
		if (uptime_s() >= end) {
			op_failed("remove_cgroup", c->name, strerror(errno));
			return 1;
		}
		msleep(50); /* the kernel frees a cgroup after its last task is gone */
	}
	emit_event("scn_cgroup_removed", "cgroup", c->name, NULL);
	return 0;
}

static int parse_cpulist(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (end == s)
			return -1;
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET(c, set);
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return 0;
}

static int affinity(struct cg *c, const char *cpus)
{
	cpu_set_t set;
	if (!c->n)
		return 0;
	if (parse_cpulist(cpus, &set)) {
		op_failed("set_affinity", c->name, "bad cpu list");
		return 1;
	}
	for (int i = 0; i < c->n; i++)
		if (sched_setaffinity(c->pids[i], sizeof(set), &set) && errno != ESRCH) {
			char why[128];
			snprintf(why, sizeof(why), "pid %d: %s", (int)c->pids[i], strerror(errno));
			op_failed("set_affinity", c->name, why);
			return 1;
		}
	emit_event("scn_affinity", "cgroup", c->name, "cpus", cpus, NULL);
	return 0;
}

static void move_all(struct cg *src, struct cg *dst)
{
	char path[1024], to[1024], err[256];
	snprintf(path, sizeof(path), "%s/%s/cgroup.procs", root, src->name);
	snprintf(to, sizeof(to), "%s/%s/cgroup.procs", root, dst->name);
	char *procs = read_file(path, 1 << 20, NULL);
	for (char *save, *p = procs ? strtok_r(procs, "\n", &save) : NULL; p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (write_file(to, p, err, sizeof(err))) {
			char why[400];
			snprintf(why, sizeof(why), "pid %s: %s", p, err);
			op_failed("move_all_tasks", src->name, why);
		}
	}
	free(procs);
	for (int i = 0; i < src->n && dst->n < MAX_PIDS; i++)
		dst->pids[dst->n++] = src->pids[i];
	src->n = 0;
	emit_event("scn_moved", "src", src->name, "dst", dst->name, NULL);
}

static struct payload *payload_of(const char *id)
{
	for (int i = 0; i < npayloads; i++)
		if (!strcmp(payloads[i].id, id))
			return &payloads[i];
	return NULL;
}

static void payload_run(json_t *op)
{
	const char *id = arg(op, 1), *cgname = arg(op, 2);
	size_t n = json_array_size(op);
	char log[300], procs[1024], pidtext[16];
	snprintf(log, sizeof(log), DIR_ "/payload.%s.log", id);
	snprintf(procs, sizeof(procs), "%s/%s/cgroup.procs", root, cgname);
	pid_t pid = fork();
	if (pid == 0) {
		char err[128], me[16];
		struct sched_param sp = { 0 };
		sched_setscheduler(0, SCHED_OTHER, &sp);
		if (*cgname) {
			snprintf(me, sizeof(me), "%d", (int)getpid());
			if (write_file(procs, me, err, sizeof(err)))
				_exit(126);
		}
		char **argv = calloc(n, sizeof(char *));
		for (size_t i = 3; i < n; i++)
			argv[i - 3] = (char *)arg(op, i);
		int o = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644), in = open("/dev/null", O_RDONLY);
		dup2(in, 0);
		dup2(o, 1);
		dup2(o, 2);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (npayloads < MAX_PAYLOADS) {
		snprintf(payloads[npayloads].id, sizeof(payloads[0].id), "%s", id);
		payloads[npayloads++].pid = pid;
	}
	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	emit_event("scn_payload_started", "id", id, "pid", pidtext, "cgroup", cgname, NULL);
}

/* the payload's exit event and its output, once it has been reaped with status */
static void payload_report(struct payload *p, int status, const char *how)
{
	char code[16], name[96], log[300];
	p->pid = 0;
	snprintf(code, sizeof(code), "%d", exit_code(status));
	emit_event("scn_payload_exit", "id", p->id, "status", code, "how", how, NULL);
	snprintf(name, sizeof(name), "payload_%s", p->id);
	snprintf(log, sizeof(log), DIR_ "/payload.%s.log", p->id);
	emit_blob_file(name, log, 16 << 20);
}

static void payload_end(struct payload *p, const char *how)
{
	int status = 0;
	if (!wait_pid(p->pid, stop_s, &status)) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &status, 0);
	}
	payload_report(p, status, how);
}

/* hold for cs centiseconds on absolute 100 ms ticks, checking the scheduler each tick */
static int hold(long cs)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	double end = uptime_s() + cs / 100.0;
	for (;;) {
		if (sched_check(sched_))
			return 1;
		double left = end - uptime_s();
		if (left <= 0)
			return sched_check(sched_);
		long step = left < 0.1 ? (long)(left * 1e9) : 100000000L;
		t.tv_nsec += step;
		while (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
			;
	}
}

static int payload_wait(struct payload *p, double timeout)
{
	double end = uptime_s() + timeout;
	int rc = 0;
	while (alive(p->pid) && uptime_s() < end) {
		if (sched_check(sched_)) {
			rc = 1;
			break;
		}
		int status;
		if (wait_pid(p->pid, 0.1, &status)) { /* reaped here */
			payload_report(p, status, "exited");
			return rc;
		}
	}
	const char *how = "exited";
	if (alive(p->pid)) {
		kill(p->pid, SIGTERM);
		how = "timeout";
	}
	payload_end(p, how);
	return rc;
}

static int run_op(json_t *op)
{
	const char *name = arg(op, 0);
	if (!strcmp(name, "scn_cg_add"))
		return cg_add(arg(op, 1), arg(op, 2), arg(op, 3));
	if (!strcmp(name, "scn_cg_cpus"))
		return cg_cpus(cg_of(arg(op, 1), arg(op, 2)), arg(op, 3));
	if (!strcmp(name, "scn_spawn"))
		return spawn_workers(op);
	if (!strcmp(name, "scn_stop")) {
		stop_cg(cg_of(arg(op, 1), arg(op, 2)));
		return 0;
	}
	if (!strcmp(name, "scn_cg_remove"))
		return cg_remove(cg_of(arg(op, 1), arg(op, 2)));
	if (!strcmp(name, "scn_affinity"))
		return affinity(cg_of(arg(op, 1), arg(op, 2)), arg(op, 3));
	if (!strcmp(name, "scn_move")) {
		move_all(cg_of(arg(op, 1), arg(op, 2)), cg_of(arg(op, 3), arg(op, 4)));
		return 0;
	}
	if (!strcmp(name, "scn_payload_run")) {
		payload_run(op);
		return 0;
	}
	if (!strcmp(name, "scn_payload_wait") || !strcmp(name, "scn_payload_kill")) {
		struct payload *p = payload_of(arg(op, 1));
		if (!p || !p->pid)
			return 0;
		if (name[12] == 'w')
			return payload_wait(p, atof(arg(op, 2))) ? -1 : 0;
		kill(p->pid, SIGTERM);
		payload_end(p, "killed");
		return 0;
	}
	emit_log("unknown scenario op %s", name);
	return 0;
}

/* run a step's ops; -1 when the scheduler went away during a payload wait */
static int run_ops(json_t *ops)
{
	size_t i;
	json_t *op;
	json_array_foreach(ops, i, op)
		if (run_op(op) < 0)
			return -1;
	return 0;
}

static void finish(void)
{
	pid_t all[MAX_CG * 8];
	int n = 0;
	size_t stat_end_len = 0;
	char *stat_end = read_file("/proc/stat", 1 << 20, &stat_end_len);
	/* stop every worker at once: the same end for every window */
	for (int i = 0; i < ncg; i++) {
		for (int j = 0; j < cgs[i].n && n < (int)(sizeof(all) / sizeof(all[0])); j++)
			all[n++] = cgs[i].pids[j];
		cgs[i].n = 0;
	}
	for (int i = 0; i < n; i++)
		kill(all[i], SIGTERM);
	if (n) {
		char pids[8192];
		reap(all, n);
		pids_text(all, n, pids, sizeof(pids));
		emit_event("scn_stopped", "cgroup", "all", "pids", pids, NULL);
	}
	for (int i = 0; i < npayloads; i++)
		if (payloads[i].pid) {
			kill(payloads[i].pid, SIGTERM);
			payload_end(&payloads[i], "killed");
		}
	/* the reports, in one blob of JSON lines */
	DIR *d = opendir(DIR_ "/reports");
	struct dirent *e;
	char *all_reports = NULL;
	size_t total = 0;
	int nreports = 0;
	while (d && (e = readdir(d))) {
		char path[600];
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".json"))
			continue;
		snprintf(path, sizeof(path), DIR_ "/reports/%s", e->d_name);
		size_t rl;
		char *r = read_file(path, 1 << 20, &rl);
		if (!r)
			continue;
		all_reports = realloc(all_reports, total + rl + 2);
		memcpy(all_reports + total, r, rl);
		total += rl;
		if (rl && r[rl - 1] != '\n')
			all_reports[total++] = '\n';
		free(r);
		nreports++;
	}
	if (d)
		closedir(d);
	emit_blob("worker_reports", all_reports ? all_reports : "", total);
	free(all_reports);
	if (spawned)
		fclose(spawned);
	spawned = NULL;
	emit_blob_file("worker_spawned", DIR_ "/spawned", 1 << 20);
	emit_blob("cpu_stat_begin", stat_begin ? stat_begin : "", stat_begin_len);
	emit_blob("cpu_stat_end", stat_end ? stat_end : "", stat_end_len);
	free(stat_begin);
	free(stat_end);
	stat_begin = NULL;
	/* the workers' own logs, when any wrote something */
	d = opendir(DIR_ "/logs");
	char *logs = NULL;
	size_t ltotal = 0;
	while (d && (e = readdir(d))) {
		char path[600];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), DIR_ "/logs/%s", e->d_name);
		size_t rl;
		char *r = read_file(path, 1 << 20, &rl);
		if (r && rl) {
			logs = realloc(logs, ltotal + rl + 1);
			memcpy(logs + ltotal, r, rl);
			ltotal += rl;
		}
		free(r);
	}
	if (d)
		closedir(d);
	if (ltotal)
		emit_blob("worker_logs", logs, ltotal);
	free(logs);
	char count[16];
	snprintf(count, sizeof(count), "%d", nreports);
	emit_event("scenario_end", "reports", count, NULL);
}

int scenario_run(json_t *sc, struct sched *s)
{
	size_t i;
	json_t *step;
	int rc = 0;
	sched_ = s;
	begin(json_string_value(json_object_get(sc, "root")),
	      json_number_value(json_object_get(sc, "ready_s")),
	      json_number_value(json_object_get(sc, "stop_s")));
	json_array_foreach(json_object_get(sc, "steps"), i, step) {
		json_t *ops = json_object_get(step, "ops");
		long hold_cs = (long)json_integer_value(json_object_get(step, "hold_cs"));
		long loop_cs = (long)json_integer_value(json_object_get(step, "loop_cs"));
		char idx[24];
		snprintf(idx, sizeof(idx), "%zu", i + 1);
		emit_event("scn_step", "step", idx, "hold",
			   json_string_value(json_object_get(step, "describe")), NULL);
		if (run_ops(ops) < 0) {
			rc = 1;
			break;
		}
		if (!loop_cs) {
			if (hold(hold_cs)) {
				rc = 1;
				break;
			}
			continue;
		}
		/* a loop: hold, run the ops again, until the step's whole hold is over */
		double end = uptime_s() + hold_cs / 100.0;
		int stop = 0;
		for (;;) {
			double left = end - uptime_s();
			if (left <= 0)
				break;
			long chunk = (long)(left * 100) > loop_cs ? loop_cs : (long)(left * 100);
			if (hold(chunk > 0 ? chunk : 1)) {
				stop = 1;
				break;
			}
			if (uptime_s() >= end)
				break;
			if (run_ops(ops) < 0) {
				stop = 1;
				break;
			}
		}
		if (stop) {
			rc = 1;
			break;
		}
	}
	finish();
	return rc;
}
