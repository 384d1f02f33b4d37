/* A scheduling trace through tracefs for a repro run (the plan's "trace"): the events
 * the kernel has of those asked for, a bounded per-CPU ring buffer, frozen the moment
 * the scheduler is seen to go (so what follows under EEVDF does not overwrite the last
 * seconds before the failure), read back as one bounded blob at the end. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRACEFS "/sys/kernel/tracing"

static int active, frozen;
static size_t cap_bytes;

static int tfs_write(const char *name, const char *value)
{
	char path[512], err[256];
	snprintf(path, sizeof(path), TRACEFS "/%s", name);
	return write_file(path, value, err, sizeof(err));
}

static int dir_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* append word to a space-separated list of at most cap bytes */
static void add_word(char *list, size_t cap, const char *word)
{
	size_t l = strlen(list);
	snprintf(list + l, cap - l, "%s%s", l ? " " : "", word);
}

static void enable_one(const char *sys, const char *ev, char *on, char *off, size_t cap)
{
	char rel[300], name[256];
	snprintf(name, sizeof(name), "%s/%s", sys, ev);
	snprintf(rel, sizeof(rel), "events/%s/%s/enable", sys, ev);
	char path[400];
	snprintf(path, sizeof(path), TRACEFS "/%s", rel);
	if (!path_is_file(path) || tfs_write(rel, "1"))
		add_word(off, cap, name);
	else
		add_word(on, cap, name);
}

/* "SYS/EVENT", or "SYS/ *" for every event of SYS this kernel has */
static void enable_spec(const char *spec, char *on, char *off, size_t cap)
{
	char sys[128];
	const char *slash = strchr(spec, '/');
	if (!slash || (size_t)(slash - spec) >= sizeof(sys)) {
		add_word(off, cap, spec);
		return;
	}
	memcpy(sys, spec, (size_t)(slash - spec));
	sys[slash - spec] = 0;
	if (strcmp(slash + 1, "*")) {
		enable_one(sys, slash + 1, on, off, cap);
		return;
	}
	char dir[300];
	snprintf(dir, sizeof(dir), TRACEFS "/events/%s", sys);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d) {
		add_word(off, cap, spec);
		return;
	}
	while ((e = readdir(d))) {
		char sub[600];
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (e->d_name[0] != '.' && dir_exists(sub))
			enable_one(sys, e->d_name, on, off, cap);
	}
	closedir(d);
}

void trace_begin(json_t *plan)
{
	json_t *t = json_object_get(plan, "trace");
	char on[4096] = "", off[4096] = "", kb[32], clock[16] = "";
	active = frozen = 0;
	if (!json_is_object(t))
		return;
	if (!path_is_file(TRACEFS "/trace") &&
	    mount("tracefs", TRACEFS, "tracefs", 0, NULL) && !path_is_file(TRACEFS "/trace")) {
		emit_event("trace_unavailable", "error", strerror(errno), NULL);
		return;
	}
	cap_bytes = (size_t)json_integer_value(json_object_get(t, "cap_bytes"));
	snprintf(kb, sizeof(kb), "%lld",
		 (long long)json_integer_value(json_object_get(t, "buffer_kb")));
	tfs_write("tracing_on", "0");
	tfs_write("current_tracer", "nop");
	tfs_write("events/enable", "0");
	tfs_write("buffer_size_kb", kb);
	tfs_write("saved_cmdlines_size", "4096");
	/* the clock of /proc/uptime, so the agent's events and the trace share a time line */
	const char *clocks[] = { "boot", "mono", "global" };
	for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]) && !*clock; i++)
		if (!tfs_write("trace_clock", clocks[i]))
			snprintf(clock, sizeof(clock), "%s", clocks[i]);
	int fd = open(TRACEFS "/trace", O_WRONLY | O_TRUNC | O_CLOEXEC); /* clear */
	if (fd >= 0)
		close(fd);
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(t, "events"), i, ev)
		if (json_string_value(ev))
			enable_spec(json_string_value(ev), on, off, sizeof(on));
	if (!*on) {
		emit_event("trace_unavailable", "error", "none of the events exists", "missing",
			   off, NULL);
		return;
	}
	/* what the kernel gave (a large buffer may not fit the guest's memory) */
	char *got = read_line_file(TRACEFS "/buffer_size_kb");
	if (got) {
		snprintf(kb, sizeof(kb), "%ld", strtol(got, NULL, 10));
		free(got);
	}
	tfs_write("tracing_on", "1");
	active = 1;
	emit_event("trace_started", "enabled", on, "missing", off, "clock", clock, "buffer_kb",
		   kb, NULL);
}

void trace_mark(const char *text)
{
	if (!active || frozen)
		return;
	char line[512];
	snprintf(line, sizeof(line), "ktstr: %s\n", text);
	tfs_write("trace_marker", line);
}

void trace_freeze(const char *why)
{
	if (!active || frozen)
		return;
	trace_mark(why);
	tfs_write("tracing_on", "0");
	frozen = 1;
	emit_event("trace_frozen", "why", why, NULL);
}

void trace_report(void)
{
	if (!active)
		return;
	trace_freeze("end of run");
	/* the newest lines are the ones that matter: keep the tail, from a line start */
	size_t len = 0;
	char *text = read_file(TRACEFS "/trace", 512u << 20, &len);
	if (!text)
		return;
	size_t from = 0;
	if (cap_bytes && len > cap_bytes) {
		from = len - cap_bytes;
		char *nl = memchr(text + from, '\n', len - from);
		from = nl ? (size_t)(nl - text) + 1 : len;
	}
	char total[32], sent[32];
	snprintf(total, sizeof(total), "%zu", len);
	snprintf(sent, sizeof(sent), "%zu", len - from);
	emit_event("trace_read", "bytes", total, "sent", sent, NULL);
	emit_blob("trace", text + from, len - from);
	free(text);
	tfs_write("events/enable", "0");
	active = 0;
}
