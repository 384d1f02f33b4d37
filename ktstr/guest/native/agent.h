/*
 * ktstr-agent: the one program that runs a test inside the guest.
 *
 * The guest's /init (a few lines of shell) mounts the file systems, finds the
 * virtio-serial port and runs `ktstr-agent agent PORT`. The agent says hello, reads the
 * host's run plan (one JSON object on one line, ktstr.guest.wire.RunPlan), does what it
 * says and answers with typed messages (ktstr.guest.wire.GuestMessage), one JSON object
 * per line, built and escaped by jansson. `ktstr-agent worker ...` is a scenario worker
 * (worker.c). Built by ktstr with `gcc -O2 -static ... -ljansson`.
 */
#ifndef KTSTR_AGENT_H
#define KTSTR_AGENT_H

#define _GNU_SOURCE
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* emit.c: messages to the host */
void emit_open(int fd);
void emit_json(json_t *msg);            /* steals msg */
void emit_event(const char *name, ...); /* key, value, ..., NULL (values are strings) */
void emit_eventj(const char *name, json_t *fields); /* steals fields */
void emit_blob(const char *name, const char *data, size_t len);
void emit_blob_file(const char *name, const char *path, size_t cap);
void emit_log(const char *fmt, ...);
json_t *text_value(const char *data, size_t len); /* a string, or {"b64": ...} */
double uptime_s(void);

/* util.c */
char *read_file(const char *path, size_t cap, size_t *len); /* NUL-terminated, or NULL */
int write_file(const char *path, const char *data, char *err, size_t errlen);
int write_all(int fd, const char *p, size_t n); /* 0 when all of it was written */
char *read_line_file(const char *path); /* first line without newline, or NULL */
int path_is_file(const char *path);
pid_t spawn(char *const argv[], const char *out, const char *err, int normal, int setsid_);
int wait_pid(pid_t pid, double timeout_s, int *status); /* 1 exited, 0 timed out */
int exit_code(int status);
void msleep(unsigned ms);
/* unpack.c: a newc cpio archive of `size` bytes read through rd (exactly n bytes into
 * dst, 0 when they came) over root; 0 ok, 1 some entry failed (err says the first),
 * -1 the channel broke. Consumes exactly `size` bytes unless the channel broke. */
typedef int (*read_fn)(void *ctx, char *dst, size_t n);
int cpio_unpack(read_fn rd, void *ctx, size_t size, const char *root, char *err, size_t errlen);
int run_capture(char *const argv[], const char *out, const char *err, double timeout_s);

/* setup.c */
extern int harness_rt;
void setup_kconfig(const char *release);
void setup_harness_rt(void);
int setup_all(json_t *plan); /* 0 ok, else the number of failures (reported) */

/* sched.c */
struct sched {
	const char *kind; /* none, binary, builtin */
	pid_t pid;
	int gone;
	int require_alive;
	int code; /* its exit code once it exited */
	double attach_s, stop_s;
	json_t *spec;
};
int sched_start(struct sched *s);
int sched_check(struct sched *s); /* 0 while attached (or gone but allowed) */
void sched_stop(struct sched *s);
void sched_report(struct sched *s);
int sched_state_is(const char *state);

/* workload.c */
int workload_run(json_t *plan, struct sched *s);

/* scenario.c */
int scenario_run(json_t *scenario, struct sched *s);

/* topology.c */
void report_topology(void);

/* verify.c */
int verify_run(json_t *plan);

/* trace.c: the repro run's scheduling trace (tracefs), when the plan has one */
void trace_begin(json_t *plan);
void trace_mark(const char *text);
void trace_freeze(const char *why); /* stop recording: the scheduler is gone */
void trace_report(void);            /* the trace as the blob "trace" */

/* worker.c */
int worker_main(int argc, char **argv);

#define SCHED_LOG "/tmp/ktstr-sched.log"

#endif
