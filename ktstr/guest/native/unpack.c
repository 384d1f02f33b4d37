/* Unpack a newc cpio archive straight from the host channel (no temporary file, no
 * fork of sh + cpio: under TCG each exec costs tens of milliseconds, and a restored
 * VM gets its run's files this way before every run).
 *
 * The archives come from ktstr.image.cpio: directories, regular files (hard-linked
 * names follow the one with the data, size 0, same inode), symlinks, character
 * devices. Existing files are replaced (cpio -u). Every byte of the archive is
 * consumed even after an error, so the channel stays in step with the host. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 110
#define MAX_LINKS 256

struct links {
	unsigned long ino[MAX_LINKS];
	char *path[MAX_LINKS];
	int n;
};

static unsigned long hex8(const char *p)
{
	char b[9];
	memcpy(b, p, 8);
	b[8] = 0;
	return strtoul(b, NULL, 16);
}

static size_t pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

static void fail(char *err, size_t errlen, const char *name, const char *what)
{
	if (*err)
		return; /* the first error is the one to report */
	snprintf(err, errlen, "%s: %s", name, what);
}

/* mkdir -p of path's parent directories */
static void parents(char *path)
{
	for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		mkdir(path, 0755);
		*s = '/';
	}
}

/* a relative name with no ".." component, or NULL */
static const char *clean_name(const char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	while (*name == '/')
		name++;
	for (const char *p = name; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return NULL;
	return name;
}

static int copy_data(read_fn rd, void *ctx, int out, size_t size, int *bad)
{
	char buf[1 << 16];
	while (size > 0) {
		size_t n = size < sizeof(buf) ? size : sizeof(buf);
		if (rd(ctx, buf, n))
			return -1;
		if (out >= 0 && !*bad && write_all(out, buf, n))
			*bad = errno ? errno : EIO;
		size -= n;
	}
	return 0;
}

int cpio_unpack(read_fn rd, void *ctx, size_t size, const char *root, char *err, size_t errlen)
{
	struct links links = { .n = 0 };
	size_t used = 0;
	int rc = 0;
	*err = 0;
	for (;;) {
		char hdr[HDR_LEN + 1];
		if (used + HDR_LEN > size) {
			rc = 2;
			fail(err, errlen, "archive", "ends inside an entry");
			break;
		}
		if (rd(ctx, hdr, HDR_LEN)) {
			rc = -1;
			break;
		}
		used += HDR_LEN;
		hdr[HDR_LEN] = 0;
		if (strncmp(hdr, "07070", 5)) {
			rc = 2;
			fail(err, errlen, "archive", "not a newc cpio header");
			break;
		}
		unsigned long ino = hex8(hdr + 6), mode = hex8(hdr + 14), nlink = hex8(hdr + 38);
		unsigned long mtime = hex8(hdr + 46), fsize = hex8(hdr + 54);
		unsigned long rmaj = hex8(hdr + 78), rmin = hex8(hdr + 86), nsize = hex8(hdr + 94);
		size_t npad = pad4(HDR_LEN + nsize), dpad = pad4(fsize), data = fsize;
		if (nsize == 0 || nsize > 4096 || used + nsize + npad + fsize + dpad > size) {
			rc = 2;
			fail(err, errlen, "archive", "entry larger than the archive");
			break;
		}
		char raw[4096 + 4];
		if (rd(ctx, raw, nsize + npad)) {
			rc = -1;
			break;
		}
		used += nsize + npad;
		raw[nsize - 1] = 0;
		if (!strcmp(raw, "TRAILER!!!"))
			break;
		const char *name = clean_name(raw);
		char path[8192];
		int bad = 0;
		if (!name || snprintf(path, sizeof(path), "%s/%s", root, name) >= (int)sizeof(path)) {
			fail(err, errlen, raw, "unsafe or too long a name");
			bad = EINVAL;
			path[0] = 0;
		}
		if (!bad && !*name) { /* the root itself */
			bad = -1;
		}
		if (!bad)
			parents(path);
		unsigned long type = mode & S_IFMT;
		if (!bad && type == S_IFDIR) {
			if (mkdir(path, mode & 07777) && errno != EEXIST)
				bad = errno;
			else
				chmod(path, mode & 07777);
		} else if (!bad && type == S_IFREG && nlink > 1 && fsize == 0) {
			const char *first = NULL;
			for (int i = 0; i < links.n; i++)
				if (links.ino[i] == ino)
					first = links.path[i];
			unlink(path);
			if (!first || link(first, path))
				bad = first ? errno : ENOENT;
		} else if (!bad && type == S_IFREG) {
			unlink(path);
			int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
			if (out < 0)
				bad = errno;
			if (copy_data(rd, ctx, out, fsize, &bad)) {
				if (out >= 0)
					close(out);
				rc = -1;
				break;
			}
			fsize = 0; /* consumed */
			if (out >= 0) {
				if (!bad && fchmod(out, mode & 07777))
					bad = errno;
				if (!bad && mtime) {
					struct timespec ts[2] = { { (time_t)mtime, 0 }, { (time_t)mtime, 0 } };
					futimens(out, ts);
				}
				close(out);
			}
			if (!bad && nlink > 1 && links.n < MAX_LINKS) {
				links.ino[links.n] = ino;
				links.path[links.n++] = strdup(path);
			}
		} else if (!bad && type == S_IFLNK) {
			char target[4096 + 1];
			if (fsize > 4096) {
				bad = ENAMETOOLONG;
			} else {
				if (rd(ctx, target, fsize)) {
					rc = -1;
					break;
				}
				target[fsize] = 0;
				fsize = 0;
				unlink(path);
				if (symlink(target, path))
					bad = errno;
			}
		} else if (!bad && type == S_IFCHR) {
			unlink(path);
			if (mknod(path, S_IFCHR | (mode & 07777), makedev(rmaj, rmin)))
				bad = errno;
		} else if (!bad) {
			bad = ENOTSUP;
		}
		if (bad > 0)
			fail(err, errlen, raw, strerror(bad));
		/* whatever of the entry's data is left, and its padding */
		if (copy_data(rd, ctx, -1, fsize + dpad, &bad)) {
			rc = -1;
			break;
		}
		used += data + dpad;
		if (bad > 0)
			rc = 1;
	}
	/* padding after the trailer, or the rest after a malformed header */
	if (rc >= 0 && used < size) {
		int ignored = 0;
		if (copy_data(rd, ctx, -1, size - used, &ignored))
			rc = -1;
	}
	for (int i = 0; i < links.n; i++)
		free(links.path[i]);
	return rc == 2 ? 1 : rc;
}
