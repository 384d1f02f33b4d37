/* What the guest sees: one line per CPU and per NUMA node (parsed by
 * ktstr.guest.topology.parse_topology_report). */
#include "agent.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *sysfs(const char *fmt, int n, const char *fallback)
{
	char path[256];
	snprintf(path, sizeof(path), fmt, n);
	char *v = read_line_file(path);
	return v ? v : strdup(fallback);
}

static int numeric_suffix_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int list_ids(const char *dir, const char *prefix, int *ids, int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	size_t pl = strlen(prefix);
	while (d && (e = readdir(d)) && n < max) {
		if (strncmp(e->d_name, prefix, pl) || e->d_name[pl] < '0' || e->d_name[pl] > '9')
			continue;
		char *end;
		long v = strtol(e->d_name + pl, &end, 10);
		if (!*end)
			ids[n++] = (int)v;
	}
	if (d)
		closedir(d);
	qsort(ids, (size_t)n, sizeof(int), numeric_suffix_cmp);
	return n;
}

void report_topology(void)
{
	static int ids[4096];
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	char *online = read_line_file("/sys/devices/system/cpu/online");
#define ADD(...)                                                              \
	do {                                                                  \
		int w_ = snprintf(out + len, cap - len, __VA_ARGS__);         \
		if (w_ > 0 && (size_t)w_ < cap - len)                         \
			len += (size_t)w_;                                    \
	} while (0)
	ADD("online %s\n", online ? online : "-");
	free(online);
	int n = list_ids("/sys/devices/system/cpu", "cpu", ids, 4096);
	for (int i = 0; i < n; i++) {
		int c = ids[i];
		char *pkg = sysfs("/sys/devices/system/cpu/cpu%d/topology/physical_package_id", c, "");
		if (!*pkg) { /* an offline CPU has no topology */
			free(pkg);
			continue;
		}
		char *die = sysfs("/sys/devices/system/cpu/cpu%d/topology/die_id", c, "0");
		char *core = sysfs("/sys/devices/system/cpu/cpu%d/topology/core_id", c, "-");
		char *sib = sysfs("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c,
				  "-");
		char *l3 = sysfs("/sys/devices/system/cpu/cpu%d/cache/index3/shared_cpu_list", c,
				 "-");
		ADD("cpu %d package=%s die=%s core=%s siblings=%s l3=%s\n", c, pkg, die, core, sib,
		    l3);
		free(pkg);
		free(die);
		free(core);
		free(sib);
		free(l3);
	}
	n = list_ids("/sys/devices/system/node", "node", ids, 4096);
	for (int i = 0; i < n; i++) {
		int nd = ids[i];
		char path[128];
		long memkb = 0;
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", nd);
		char *mi = read_file(path, 1 << 16, NULL), *p = mi ? strstr(mi, "MemTotal:") : NULL;
		if (p)
			memkb = strtol(p + strlen("MemTotal:"), NULL, 10);
		free(mi);
		char *cl = sysfs("/sys/devices/system/node/node%d/cpulist", nd, "");
		char *dist = sysfs("/sys/devices/system/node/node%d/distance", nd, "");
		for (char *q = dist; *q; q++)
			if (*q == ' ')
				*q = ',';
		ADD("node %d cpulist=%s memkb=%ld distance=%s\n", nd, cl, memkb, dist);
		free(cl);
		free(dist);
	}
#undef ADD
	emit_json(json_pack("{s:s, s:o}", "t", "topology", "text", text_value(out, len)));
	free(out);
}
