/* ktstr-proginfo: one line per loaded BPF program, from the bpf(2) syscall.
 *
 *   id<TAB>type<TAB>verified_insns<TAB>xlated_bytes<TAB>jited_bytes<TAB>name
 *
 * bpftool (as built from the 7.x trees) does not print bpf_prog_info.verified_insns;
 * the verifier sweep needs it for the programs the running scheduler loaded.
 * Names are the kernel's (at most 15 characters); the host joins them with
 * `bpftool -j prog show` by id for the full names.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int main(void)
{
	__u32 id = 0;

	for (;;) {
		union bpf_attr attr;
		struct bpf_prog_info info;
		int fd;

		memset(&attr, 0, sizeof(attr));
		attr.start_id = id;
		if (sys_bpf(BPF_PROG_GET_NEXT_ID, &attr)) {
			if (errno == ENOENT)
				return 0;
			perror("BPF_PROG_GET_NEXT_ID");
			return 1;
		}
		id = attr.next_id;

		memset(&attr, 0, sizeof(attr));
		attr.prog_id = id;
		fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
		if (fd < 0)
			continue; /* unloaded meanwhile */

		memset(&info, 0, sizeof(info));
		memset(&attr, 0, sizeof(attr));
		attr.info.bpf_fd = (__u32)fd;
		attr.info.info_len = sizeof(info);
		attr.info.info = (__u64)(unsigned long)&info;
		if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) == 0)
			printf("%u\t%u\t%u\t%u\t%u\t%s\n", info.id, info.type, info.verified_insns,
			       info.xlated_prog_len, info.jited_prog_len, info.name);
		close(fd);
	}
}
