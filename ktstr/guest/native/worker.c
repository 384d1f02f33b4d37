/*
 * ktstr-worker: one cgroup worker of a ktstr scenario (runs inside the guest).
 *
 *   ktstr-worker run --name CG --index N --type TYPE --ready FILE --report FILE
 *                    [--cgroup DIR] [--policy normal|batch|idle|fifo|rr] [--priority P]
 *                    [--nice N] [--cpus LIST]
 *   ktstr-worker affinity LIST PID...
 *
 * Two-phase start: the worker blocks SIGUSR1/SIGTERM, moves itself into DIR
 * (cgroup.procs), applies policy and nice, writes FILE (--ready) and waits. SIGUSR1
 * starts the work: it applies the affinity (so a worker pinned to a busy CPU still
 * becomes ready), then works; SIGTERM stops it (before or after the start). At the end it
 * writes one JSON line to --report: kernel counters (schedstat, status, sched) as deltas
 * over the working window, work units, the CPUs seen, the longest gap between units and
 * wake-up latency percentiles for work types that sleep or wait.
 *
 * Built by ktstr with `gcc -O2 -static` (ktstr/guest/native/__init__.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPIN_ITERS 20000
#define MAX_SAMPLES 65536
#define MAX_CPUS 1024

enum work {
	W_CPU_SPIN, W_YIELD_HEAVY, W_MIXED, W_IO_SYNC, W_BURSTY, W_PIPE_IO,
	W_FUTEX_PING_PONG, W_FORK_EXIT, W_NICE_SWEEP, W_COUNT
};
static const char *const work_names[W_COUNT] = {
	"cpu_spin", "yield_heavy", "mixed", "io_sync", "bursty", "pipe_io",
	"futex_ping_pong", "fork_exit", "nice_sweep",
};

struct kstats {
	uint64_t run_ns, wait_ns, slices, vol, invol;
	int64_t migrations; /* -1 when /proc/self/sched is missing */
};

static volatile sig_atomic_t stop_flag;
static uint64_t samples[MAX_SAMPLES];
static uint64_t nsamples; /* total taken; the ring keeps the last MAX_SAMPLES */
static uint64_t cpu_mask[MAX_CPUS / 64];
static volatile uint64_t spin_sink;

static void on_term(int sig) { (void)sig; stop_flag = 1; }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "ktstr-worker: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void spin(unsigned iters)
{
	uint64_t x = spin_sink;
	for (unsigned i = 0; i < iters; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	spin_sink = x;
}

static void sample(uint64_t ns)
{
	samples[nsamples % MAX_SAMPLES] = ns;
	nsamples++;
}

/* sleep `ns`; the overshoot past the deadline is a wake-up latency sample */
static void sleep_sample(uint64_t ns)
{
	uint64_t want = now_ns() + ns;
	struct timespec ts = { .tv_sec = (time_t)(want / 1000000000ull),
			       .tv_nsec = (long)(want % 1000000000ull) };
	if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == 0) {
		uint64_t t = now_ns();
		sample(t > want ? t - want : 0);
	}
}

static int parse_cpus(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b;
		if (end == s || a < 0 || a >= CPU_SETSIZE)
			return -1;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s || b < a || b >= CPU_SETSIZE)
				return -1;
		}
		for (long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return 0;
}

static void read_kstats(struct kstats *k)
{
	char line[256];
	FILE *f;
	memset(k, 0, sizeof(*k));
	k->migrations = -1;
	f = fopen("/proc/self/schedstat", "r");
	if (f) {
		unsigned long long r, w, s;
		if (fscanf(f, "%llu %llu %llu", &r, &w, &s) == 3) {
			k->run_ns = r;
			k->wait_ns = w;
			k->slices = s;
		}
		fclose(f);
	}
	f = fopen("/proc/self/status", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;
			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
				k->vol = v;
			else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				k->invol = v;
		}
		fclose(f);
	}
	f = fopen("/proc/self/sched", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			long long v;
			if (sscanf(line, "se.nr_migrations : %lld", &v) == 1)
				k->migrations = v;
		}
		fclose(f);
	}
}

static void read_cgroup(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	buf[0] = 0;
	if (!f)
		return;
	if (fgets(buf, (int)len, f)) {
		char *nl = strchr(buf, '\n');
		if (nl)
			*nl = 0;
		/* "0::/path" on a pure cgroup v2 system */
		if (strncmp(buf, "0::", 3) == 0)
			memmove(buf, buf + 3, strlen(buf + 3) + 1);
	}
	fclose(f);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static long futex(atomic_uint *addr, int op, unsigned val)
{
	return syscall(SYS_futex, (unsigned *)addr, op, val, NULL, NULL, 0);
}

struct shared {
	atomic_uint turn; /* 1: partner's turn, 0: worker's turn */
	uint64_t stamp;	  /* when the partner woke the worker */
};

static pid_t partner = -1;
static int to_partner = -1, from_partner = -1;
static struct shared *shm;

static void start_partner(enum work w)
{
	if (w == W_PIPE_IO) {
		int a[2], b[2];
		if (pipe(a) || pipe(b))
			die("pipe");
		partner = fork();
		if (partner < 0)
			die("fork");
		if (partner == 0) {
			uint64_t v;
			close(a[1]);
			close(b[0]);
			while (read(a[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
				v = now_ns();
				if (write(b[1], &v, sizeof(v)) != (ssize_t)sizeof(v))
					break;
			}
			_exit(0);
		}
		close(a[0]);
		close(b[1]);
		to_partner = a[1];
		from_partner = b[0];
	} else if (w == W_FUTEX_PING_PONG) {
		shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			die("mmap");
		atomic_store(&shm->turn, 0);
		partner = fork();
		if (partner < 0)
			die("fork");
		if (partner == 0) {
			for (;;) {
				while (atomic_load(&shm->turn) != 1)
					futex(&shm->turn, FUTEX_WAIT, 0);
				shm->stamp = now_ns();
				atomic_store(&shm->turn, 0);
				futex(&shm->turn, FUTEX_WAKE, 1);
			}
		}
	}
}

static void stop_partner(void)
{
	if (partner > 0) {
		kill(partner, SIGKILL);
		waitpid(partner, NULL, 0);
	}
}

static const int nice_steps[] = { 0, 5, 10, 15, 19, 15, 10, 5, 0, -5, -10, -5 };

/* one work unit; returns the nanoseconds the unit meant to sleep (not a gap) */
static uint64_t work_unit(enum work w, uint64_t unit, int base_nice, int io_fd)
{
	static char buf[4096];
	switch (w) {
	case W_CPU_SPIN:
		spin(SPIN_ITERS);
		return 0;
	case W_YIELD_HEAVY:
		spin(SPIN_ITERS / 10);
		sched_yield();
		return 0;
	case W_MIXED:
		spin(SPIN_ITERS);
		if (unit % 10 == 9) {
			sleep_sample(500000);
			return 500000;
		}
		return 0;
	case W_IO_SYNC:
		memset(buf, (int)(unit & 0xff), sizeof(buf));
		if (pwrite(io_fd, buf, sizeof(buf), (off_t)((unit % 256) * sizeof(buf))) < 0)
			die("pwrite");
		fdatasync(io_fd);
		sleep_sample(100000);
		return 100000;
	case W_BURSTY:
		spin(SPIN_ITERS);
		if (unit % 50 == 49) {
			sleep_sample(5000000);
			return 5000000;
		}
		return 0;
	case W_PIPE_IO: {
		uint64_t v = unit;
		if (write(to_partner, &v, sizeof(v)) != (ssize_t)sizeof(v))
			return 0;
		if (read(from_partner, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
			uint64_t t = now_ns();
			sample(t > v ? t - v : 0);
		}
		return 0;
	}
	case W_FUTEX_PING_PONG:
		atomic_store(&shm->turn, 1);
		futex(&shm->turn, FUTEX_WAKE, 1);
		while (atomic_load(&shm->turn) != 0 && !stop_flag)
			futex(&shm->turn, FUTEX_WAIT, 1);
		if (!stop_flag) {
			uint64_t t = now_ns();
			sample(t > shm->stamp ? t - shm->stamp : 0);
		}
		return 0;
	case W_FORK_EXIT: {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p > 0)
			waitpid(p, NULL, 0);
		return 0;
	}
	case W_NICE_SWEEP:
		spin(SPIN_ITERS);
		if (unit % 200 == 0) {
			int n = base_nice + nice_steps[(unit / 200) % (sizeof(nice_steps) /
								       sizeof(nice_steps[0]))];
			setpriority(PRIO_PROCESS, 0, n < -20 ? -20 : n > 19 ? 19 : n);
		}
		return 0;
	default:
		return 0;
	}
}

struct opts {
	const char *name, *cgroup, *type, *policy, *cpus, *ready, *report;
	int index, priority, nice;
};

static int policy_of(const char *p)
{
	static const struct { const char *n; int v; } tab[] = {
		{ "normal", SCHED_OTHER }, { "batch", SCHED_BATCH }, { "idle", SCHED_IDLE },
		{ "fifo", SCHED_FIFO }, { "rr", SCHED_RR },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(p, tab[i].n) == 0)
			return tab[i].v;
	return -1;
}

static void json_str(FILE *f, const char *key, const char *v)
{
	fprintf(f, "\"%s\":\"", key);
	for (; *v; v++)
		if (*v == '"' || *v == '\\')
			fprintf(f, "\\%c", *v);
		else if ((unsigned char)*v >= 0x20)
			fputc(*v, f);
	fputs("\",", f);
}

static void write_report(const struct opts *o, const char *error, int started,
			 const struct kstats *k0, const struct kstats *k1, uint64_t t0,
			 uint64_t t1, uint64_t units, uint64_t max_gap, uint64_t max_gap_at,
			 const char *cg_start, const char *cg_stop)
{
	char tmp[4200];
	uint64_t n = nsamples < MAX_SAMPLES ? nsamples : MAX_SAMPLES;
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.tmp", o->report);
	f = fopen(tmp, "w");
	if (!f)
		die("open report");
	fputc('{', f);
	json_str(f, "cgroup", o->name);
	fprintf(f, "\"index\":%d,\"pid\":%d,", o->index, (int)getpid());
	json_str(f, "work_type", o->type);
	json_str(f, "policy", o->policy);
	fprintf(f, "\"priority\":%d,\"nice\":%d,", o->priority, o->nice);
	json_str(f, "affinity", o->cpus ? o->cpus : "");
	json_str(f, "cgroup_at_start", cg_start);
	json_str(f, "cgroup_at_stop", cg_stop);
	json_str(f, "error", error);
	fprintf(f, "\"started\":%s,\"wall_ns\":%llu,\"run_ns\":%llu,\"wait_ns\":%llu,"
		   "\"timeslices\":%llu,\"voluntary_switches\":%llu,"
		   "\"involuntary_switches\":%llu,",
		started ? "true" : "false", (unsigned long long)(t1 - t0),
		(unsigned long long)(k1->run_ns - k0->run_ns),
		(unsigned long long)(k1->wait_ns - k0->wait_ns),
		(unsigned long long)(k1->slices - k0->slices),
		(unsigned long long)(k1->vol - k0->vol),
		(unsigned long long)(k1->invol - k0->invol));
	if (k0->migrations >= 0 && k1->migrations >= 0)
		fprintf(f, "\"migrations\":%lld,", (long long)(k1->migrations - k0->migrations));
	else
		fputs("\"migrations\":null,", f);
	fputs("\"cpus\":[", f);
	for (int c = 0, first = 1; c < MAX_CPUS; c++)
		if (cpu_mask[c / 64] & (1ull << (c % 64))) {
			fprintf(f, "%s%d", first ? "" : ",", c);
			first = 0;
		}
	fprintf(f, "],\"work_units\":%llu,\"max_gap_ns\":%llu,\"max_gap_at_ns\":%llu,"
		   "\"wake_samples\":%llu,",
		(unsigned long long)units, (unsigned long long)max_gap,
		(unsigned long long)max_gap_at, (unsigned long long)nsamples);
	if (n) {
		qsort(samples, n, sizeof(samples[0]), cmp_u64);
		fprintf(f, "\"wake_p50_ns\":%llu,\"wake_p99_ns\":%llu,\"wake_max_ns\":%llu}\n",
			(unsigned long long)samples[(n - 1) * 50 / 100],
			(unsigned long long)samples[(n - 1) * 99 / 100],
			(unsigned long long)samples[n - 1]);
	} else {
		fputs("\"wake_p50_ns\":null,\"wake_p99_ns\":null,\"wake_max_ns\":null}\n", f);
	}
	if (fclose(f) != 0 || rename(tmp, o->report) != 0)
		die("write report");
}

static int set_affinity_cmd(int argc, char **argv)
{
	cpu_set_t set;
	int rc = 0;
	if (argc < 4 || parse_cpus(argv[2], &set)) {
		fprintf(stderr, "usage: ktstr-worker affinity CPULIST PID...\n");
		return 2;
	}
	for (int i = 3; i < argc; i++)
		if (sched_setaffinity(atoi(argv[i]), sizeof(set), &set)) {
			fprintf(stderr, "ktstr-worker: affinity %s for pid %s: %s\n", argv[2],
				argv[i], strerror(errno));
			rc = 1;
		}
	return rc;
}

static int run_cmd(int argc, char **argv)
{
	struct opts o = { .policy = "normal" };
	struct kstats k0, k1;
	char cg_start[512] = "", cg_stop[512] = "", err[1024] = "";
	enum work w = W_COUNT;
	sigset_t set;
	siginfo_t si;
	cpu_set_t cpus;
	uint64_t t0, prev, units = 0, max_gap = 0, max_gap_at = 0;
	int io_fd = -1;

	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--name")) o.name = v;
		else if (!strcmp(k, "--index")) o.index = atoi(v);
		else if (!strcmp(k, "--cgroup")) o.cgroup = v;
		else if (!strcmp(k, "--type")) o.type = v;
		else if (!strcmp(k, "--policy")) o.policy = v;
		else if (!strcmp(k, "--priority")) o.priority = atoi(v);
		else if (!strcmp(k, "--nice")) o.nice = atoi(v);
		else if (!strcmp(k, "--cpus")) o.cpus = *v ? v : NULL;
		else if (!strcmp(k, "--ready")) o.ready = v;
		else if (!strcmp(k, "--report")) o.report = v;
		else { fprintf(stderr, "ktstr-worker: unknown option %s\n", k); return 2; }
	}
	if (!o.name || !o.type || !o.ready || !o.report) {
		fprintf(stderr, "ktstr-worker run: --name, --type, --ready, --report required\n");
		return 2;
	}
	for (int i = 0; i < W_COUNT; i++)
		if (!strcmp(o.type, work_names[i]))
			w = (enum work)i;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);

	if (w == W_COUNT)
		snprintf(err, sizeof(err), "unknown work type %s", o.type);
	if (!err[0] && o.cgroup) {
		char path[600], pid[32];
		int fd;
		snprintf(path, sizeof(path), "%s/cgroup.procs", o.cgroup);
		snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, pid, strlen(pid)) < 0)
			snprintf(err, sizeof(err), "joining %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (!err[0]) {
		int pol = policy_of(o.policy);
		struct sched_param sp = { .sched_priority = o.priority };
		if (pol < 0)
			snprintf(err, sizeof(err), "unknown policy %s", o.policy);
		else if (sched_setscheduler(0, pol, &sp))
			snprintf(err, sizeof(err), "sched_setscheduler %s/%d: %s", o.policy,
				 o.priority, strerror(errno));
	}
	if (!err[0] && o.nice && setpriority(PRIO_PROCESS, 0, o.nice))
		snprintf(err, sizeof(err), "nice %d: %s", o.nice, strerror(errno));
	if (!err[0] && o.cpus && parse_cpus(o.cpus, &cpus))
		snprintf(err, sizeof(err), "bad cpu list %s", o.cpus);
	if (!err[0] && w == W_IO_SYNC) {
		char path[600];
		snprintf(path, sizeof(path), "%s.io", o.report);
		io_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (io_fd < 0)
			snprintf(err, sizeof(err), "open %s: %s", path, strerror(errno));
	}
	read_cgroup(cg_start, sizeof(cg_start));
	{
		FILE *f = fopen(o.ready, "w");
		if (!f)
			die("write ready file");
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	read_kstats(&k0);
	t0 = now_ns();
	if (err[0] || sigwaitinfo(&set, &si) != SIGUSR1) {
		read_kstats(&k1);
		read_cgroup(cg_stop, sizeof(cg_stop));
		write_report(&o, err, 0, &k0, &k1, t0, now_ns(), 0, 0, 0, cg_start, cg_stop);
		return err[0] ? 1 : 0;
	}
	/* the window starts at the start signal: waiting for a pinned CPU counts */
	t0 = prev = now_ns();
	read_kstats(&k0);
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_term;
		sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: blocked waits return EINTR */
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
	/* affinity last: a worker pinned to a busy CPU still becomes ready in time */
	if (o.cpus && sched_setaffinity(0, sizeof(cpus), &cpus)) {
		snprintf(err, sizeof(err), "affinity %s: %s", o.cpus, strerror(errno));
		read_kstats(&k1);
		write_report(&o, err, 0, &k0, &k1, t0, now_ns(), 0, 0, 0, cg_start, cg_start);
		return 1;
	}
	read_cgroup(cg_start, sizeof(cg_start));
	start_partner(w);
	prev = t0; /* a worker that cannot run after the start signal has a gap */
	while (!stop_flag) {
		uint64_t slept = work_unit(w, units, o.nice, io_fd), t, gap;
		int cpu = sched_getcpu();
		t = now_ns();
		if (cpu >= 0 && cpu < MAX_CPUS)
			cpu_mask[cpu / 64] |= 1ull << (cpu % 64);
		units++;
		gap = t - prev > slept ? t - prev - slept : 0;
		if (gap > max_gap) {
			max_gap = gap;
			max_gap_at = t - t0;
		}
		prev = t;
	}
	read_kstats(&k1);
	{
		uint64_t t1 = now_ns();

		if (t1 - prev > max_gap) { /* the stretch since the last unit counts too */
			max_gap = t1 - prev;
			max_gap_at = t1 - t0;
		}

		stop_partner();
		read_cgroup(cg_stop, sizeof(cg_stop));
		write_report(&o, "", 1, &k0, &k1, t0, t1, units, max_gap, max_gap_at, cg_start,
			     cg_stop);
	}
	return 0;
}

int worker_main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return run_cmd(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "affinity"))
		return set_affinity_cmd(argc, argv);
	fprintf(stderr, "usage: ktstr-worker run ... | ktstr-worker affinity CPULIST PID...\n");
	return 2;
}

#ifndef KTSTR_AGENT
/* built alone (ktstr-worker) rather than into ktstr-agent */
int main(int argc, char **argv)
{
	return worker_main(argc, argv);
}
#endif
