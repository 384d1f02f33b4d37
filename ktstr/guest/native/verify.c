/* A verifier cell (ktstr.sweep): veristat on the scheduler's BPF object, then the
 * scheduler loaded for real with the run's setup and attach proof, its programs'
 * verified instruction counts while it runs, and the full verifier log on failure.
 * The sections go to the host in one "verify" message (ktstr.sweep.guestout). */
#include "agent.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/wait.h>
#include <unistd.h>

static json_t *sections;

static void section_file(const char *name, const char *path, size_t cap, int tail)
{
	size_t len = 0;
	char *data = read_file(path, tail ? 64 << 20 : cap, &len);
	if (!data) {
		json_object_set_new(sections, name, json_string(""));
		return;
	}
	const char *from = data;
	if (tail && len > cap) {
		from = data + (len - cap);
		len = cap;
	}
	json_object_set_new(sections, name, text_value(from, len));
	free(data);
}

static void section_text(const char *name, const char *text)
{
	json_object_set_new(sections, name, text_value(text, strlen(text)));
}

static void dmesg_section(void)
{
	int len = klogctl(10, NULL, 0);
	if (len <= 0)
		return;
	char *buf = malloc((size_t)len + 1);
	int n = klogctl(3, buf, len);
	char **lines = NULL;
	size_t count = 0;
	if (n > 0) {
		buf[n] = 0;
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
			if (!strstr(l, "sched_ext") && !strstr(l, "scx_") && !strstr(l, "BPF") &&
			    !strstr(l, "bpf"))
				continue;
			if (l[0] == '<' && strchr(l, '>'))
				l = strchr(l, '>') + 1;
			lines = realloc(lines, (count + 1) * sizeof(char *));
			lines[count++] = l;
		}
	}
	size_t from = count > 200 ? count - 200 : 0, total = 0;
	for (size_t i = from; i < count; i++)
		total += strlen(lines[i]) + 1;
	char *out = malloc(total + 1), *p = out;
	for (size_t i = from; i < count; i++) {
		size_t l = strlen(lines[i]);
		memcpy(p, lines[i], l);
		p += l;
		*p++ = '\n';
	}
	*p = 0;
	section_text("dmesg", out);
	free(out);
	free(lines);
	free(buf);
}

int verify_run(json_t *plan)
{
	json_t *v = json_object_get(plan, "verify");
	const char *obj = json_string_value(json_object_get(v, "object"));
	size_t log_cap = (size_t)json_integer_value(json_object_get(v, "log_cap"));
	int failed = 0;
	char num[64];
	sections = json_object();
	if (obj && *obj) {
		char *argv[] = { "veristat", "-o", "csv", "-e",
				 "file,prog,verdict,duration,insns,states,peak_states,stack_depth,"
				 "max_stack_depth", (char *)obj, NULL };
		int rc = run_capture(argv, "/tmp/v.csv", "/tmp/v.err", 600);
		section_file("veristat_csv", "/tmp/v.csv", 16 << 20, 0);
		snprintf(num, sizeof(num), "%d", rc);
		section_text("veristat_rc", num);
		section_file("veristat_err", "/tmp/v.err", 65536, 0);
		char *csv = read_file("/tmp/v.csv", 16 << 20, NULL);
		if (rc != 0 || (csv && strstr(csv, ",failure,")))
			failed = 1;
		free(csv);
	}
	int setup_failed = setup_all(plan);
	section_text("setup_failed", setup_failed ? "1" : "0");
	if (setup_failed) {
		section_text("end", "");
		emit_json(json_pack("{s:s, s:i, s:o}", "t", "verify", "status", 3, "sections",
				    sections));
		return 3;
	}
	{
		char *argv[] = { "ktstr-proginfo", NULL };
		run_capture(argv, "/tmp/p0", "/dev/null", 60);
		section_file("progs_before", "/tmp/p0", 16 << 20, 0);
	}
	json_t *spec = json_object_get(plan, "scheduler");
	struct sched s = {
		.kind = json_string_value(json_object_get(spec, "kind")),
		.attach_s = json_number_value(json_object_get(spec, "attach_timeout_s")),
		.stop_s = json_number_value(json_object_get(spec, "stop_timeout_s")),
		.require_alive = 1,
		.spec = spec,
	};
	double start = uptime_s();
	int attach_failed = sched_start(&s);
	char *state = read_line_file("/sys/kernel/sched_ext/state");
	section_text("state", state ? state : "none");
	snprintf(num, sizeof(num), "%.2f %.2f", start, uptime_s());
	section_text("attach_window", num);
	char *ops = read_line_file("/sys/kernel/sched_ext/root/ops");
	section_text("ops", ops ? ops : "");
	free(ops);
	{
		char *argv[] = { "ktstr-proginfo", NULL };
		run_capture(argv, "/tmp/p1", "/dev/null", 60);
		section_file("progs_loaded", "/tmp/p1", 16 << 20, 0);
		char *bargv[] = { "bpftool", "-j", "prog", "show", NULL };
		run_capture(bargv, "/tmp/bpftool.json", "/dev/null", 60);
		section_file("bpftool_json", "/tmp/bpftool.json", 64 << 20, 0);
	}
	if (attach_failed || !state || strcmp(state, "enabled"))
		failed = 1;
	free(state);
	int status = 0;
	if (s.pid > 0) {
		kill(s.pid, SIGINT);
		if (!wait_pid(s.pid, s.stop_s, &status)) {
			kill(s.pid, SIGKILL);
			waitpid(s.pid, &status, 0);
		}
		snprintf(num, sizeof(num), "%d", exit_code(status));
	} else {
		/* it exited during the attach wait: sched_start reaped it */
		snprintf(num, sizeof(num), "%d", s.code);
	}
	section_text("sched_rc", num);
	section_file("sched_log", SCHED_LOG, 65536, 1);
	if (obj && *obj && failed) {
		char *argv[] = { "veristat", "-v", (char *)obj, NULL };
		run_capture(argv, "/tmp/v.log", "/tmp/v.log", 600);
		section_file("verifier_log", "/tmp/v.log", log_cap ? log_cap : 4 << 20, 0);
	}
	dmesg_section();
	section_text("end", "");
	emit_json(json_pack("{s:s, s:i, s:o}", "t", "verify", "status", failed, "sections",
			    sections));
	return failed;
}
