/* Files and processes for the agent. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *read_file(const char *path, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, size = 4096;
	char *buf;
	if (fd < 0)
		return NULL;
	buf = malloc(size + 1);
	for (;;) {
		if (n == size) {
			if (size >= cap)
				break;
			size = size * 2 > cap ? cap : size * 2;
			buf = realloc(buf, size + 1);
		}
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

char *read_line_file(const char *path)
{
	char *s = read_file(path, 65536, NULL);
	if (s)
		s[strcspn(s, "\n")] = 0;
	return s;
}

int path_is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int write_file(const char *path, const char *data, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	size_t n = strlen(data);
	ssize_t w = write(fd, data, n);
	int saved = errno;
	close(fd);
	if (w < 0 || (size_t)w != n) {
		snprintf(err, errlen, "%s", w < 0 ? strerror(saved) : "short write");
		return -1;
	}
	return 0;
}

void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* fork + exec argv, stdout/stderr to files (NULL: /dev/null), stdin /dev/null.
 * normal: SCHED_OTHER (the harness may be SCHED_FIFO); setsid_: own session and group */
pid_t spawn(char *const argv[], const char *out, const char *err, int normal, int setsid_)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (setsid_)
		setsid();
	if (normal) {
		struct sched_param sp = { 0 };
		sched_setscheduler(0, SCHED_OTHER, &sp);
	}
	int in = open("/dev/null", O_RDONLY);
	int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int e = err && out && !strcmp(err, out) ? o
		: open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(in, 0);
	dup2(o, 1);
	dup2(e, 2);
	for (int fd = 3; fd < 64; fd++)
		close(fd);
	execvp(argv[0], argv);
	fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

/* wait for pid up to timeout_s (< 0: forever), woken by its exit (pidfd) rather than by
 * polling; 1 when it ended (status set) */
int wait_pid(pid_t pid, double timeout_s, int *status)
{
	pid_t r = waitpid(pid, status, WNOHANG);
	if (r == pid)
		return 1;
	if (r < 0) {
		*status = 0;
		return 1;
	}
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		*status = 0;
		return 1;
	}
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	int ms = timeout_s < 0 ? -1 : (int)(timeout_s * 1000);
	int n;
	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	close(pfd);
	if (n > 0) {
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
		return 1;
	}
	return 0;
}

int run_capture(char *const argv[], const char *out, const char *err, double timeout_s)
{
	int status = 0;
	pid_t pid = spawn(argv, out, err, harness_rt, 0);
	if (pid < 0)
		return -1;
	if (!wait_pid(pid, timeout_s, &status)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	return exit_code(status);
}
