/* The test's setup: kernel config, the harness's own policy, files, kernel arguments,
 * sysctls, the cgroup parent. A failure is a setup_failed event (the host: ERROR). */
#include "agent.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <unistd.h>

int harness_rt;

void setup_kconfig(const char *release)
{
	/* libbpf reads __kconfig values from /boot/config-$(uname -r) */
	char path[256];
	if (!path_is_file("/boot/ktstr.config"))
		return;
	snprintf(path, sizeof(path), "/boot/config-%s", release);
	unlink(path);
	if (symlink("ktstr.config", path))
		emit_log("linking the kernel config to %s: %s", path, strerror(errno));
}

void setup_harness_rt(void)
{
	/* the agent and what it forks for itself run SCHED_FIFO 1, outside sched_ext, so a
	 * stall test never stalls the harness; what is tested is started SCHED_OTHER */
	struct sched_param sp = { .sched_priority = 1 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0) {
		harness_rt = 1;
		emit_event("harness_rt", "policy", "fifo", "priority", "1", NULL);
	}
}

static int failures;

static void failed(const char *what, const char *key, const char *value, const char *error)
{
	failures++;
	emit_event("setup_failed", "what", what, "key", key, "value", value, "error", error,
		   NULL);
}

static void check_karg(void)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	if (len <= 0)
		return;
	char *buf = malloc((size_t)len + 1);
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	if (n > 0) {
		buf[n] = 0;
		const char *tag = "Unknown kernel command line parameters \"";
		char *p = strstr(buf, tag);
		if (p) {
			p += strlen(tag);
			char *q = strchr(p, '"');
			if (q)
				*q = 0;
			failed("karg", "", p,
			       "Unknown kernel command line parameters (dmesg); they were passed to "
			       "user space");
		}
	}
	free(buf);
}

static void apply_sysctls(json_t *sysctls)
{
	size_t i;
	json_t *s;
	json_array_foreach(sysctls, i, s) {
		const char *key = json_string_value(json_object_get(s, "key"));
		const char *path = json_string_value(json_object_get(s, "path"));
		const char *value = json_string_value(json_object_get(s, "value"));
		char line[4096], err[256], why[512];
		if (!key || !path || !value)
			continue;
		if (access(path, F_OK)) {
			snprintf(why, sizeof(why), "no such sysctl (%s does not exist)", path);
			failed("sysctl", key, value, why);
			continue;
		}
		snprintf(line, sizeof(line), "%s\n", value);
		if (write_file(path, line, err, sizeof(err))) {
			snprintf(why, sizeof(why), "error writing '%s': %s", path, err);
			failed("sysctl", key, value, why);
			continue;
		}
		emit_event("sysctl", "key", key, "value", value, NULL);
	}
}

static void make_cgroup_parent(const char *parent)
{
	char path[1024], err[256];
	if (!parent || !*parent)
		return;
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+cpu +cpuset", err, sizeof(err));
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s", parent);
	/* mkdir -p */
	for (char *p = path + strlen("/sys/fs/cgroup/"); ; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (mkdir(path, 0755) && errno != EEXIST) {
				char why[1400];
				snprintf(why, sizeof(why), "mkdir %s: %s", path, strerror(errno));
				failed("cgroup_parent", parent, "", why);
				return;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	char procs[1100];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	if (!path_is_file(procs)) {
		failed("cgroup_parent", parent, "", "not a cgroup directory under /sys/fs/cgroup");
		return;
	}
	char ctl[1100];
	snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", path);
	char *controllers = read_line_file(ctl);
	emit_event("cgroup_parent", "path", parent, "controllers", controllers ? controllers : "",
		   NULL);
	free(controllers);
}

int setup_all(json_t *plan)
{
	json_t *setup = json_object_get(plan, "setup");
	size_t i;
	json_t *f;
	failures = 0;
	if (!setup)
		return 0;
	json_array_foreach(json_object_get(setup, "expect_files"), i, f) {
		const char *path = json_string_value(f);
		if (path && !path_is_file(path))
			failed("include_file", path, "", "not a regular file in the guest");
	}
	check_karg();
	apply_sysctls(json_object_get(setup, "sysctls"));
	make_cgroup_parent(json_string_value(json_object_get(setup, "cgroup_parent")));
	return failures;
}
