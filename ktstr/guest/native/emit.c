/* Messages to the host: one compact JSON object per line on the port (jansson escapes). */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int port_fd = -1;

void emit_open(int fd) { port_fd = fd; }

double uptime_s(void)
{
	char buf[64] = "";
	FILE *f = fopen("/proc/uptime", "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtod(buf, NULL);
}

void emit_json(json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(msg);
	if (!text || port_fd < 0) {
		free(text);
		return;
	}
	size_t n = strlen(text);
	text = realloc(text, n + 2);
	text[n] = '\n';
	write_all(port_fd, text, n + 1);
	free(text);
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1), *p = out;
	size_t i;
	for (i = 0; i + 2 < len; i += 3) {
		*p++ = b64chars[in[i] >> 2];
		*p++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*p++ = b64chars[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*p++ = b64chars[in[i + 2] & 63];
	}
	if (i < len) {
		*p++ = b64chars[in[i] >> 2];
		if (i + 1 < len) {
			*p++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*p++ = b64chars[(in[i + 1] & 15) << 2];
		} else {
			*p++ = b64chars[(in[i] & 3) << 4];
			*p++ = '=';
		}
		*p++ = '=';
	}
	*p = 0;
	return out;
}

json_t *text_value(const char *data, size_t len)
{
	/* text travels as a JSON string when it is UTF-8, else byte for byte as base64 */
	json_t *s = json_stringn(data ? data : "", data ? len : 0);
	if (s)
		return s;
	char *enc = b64((const unsigned char *)data, len);
	json_t *o = json_pack("{s:s}", "b64", enc);
	free(enc);
	return o;
}

void emit_eventj(const char *name, json_t *fields)
{
	emit_json(json_pack("{s:s, s:s, s:f, s:o}", "t", "event", "name", name, "uptime_s",
			    uptime_s(), "fields", fields ? fields : json_object()));
}

void emit_event(const char *name, ...)
{
	json_t *fields = json_object();
	va_list ap;
	va_start(ap, name);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		json_object_set_new(fields, k, text_value(v ? v : "", v ? strlen(v) : 0));
	}
	va_end(ap);
	emit_eventj(name, fields);
}

void emit_blob(const char *name, const char *data, size_t len)
{
	emit_json(json_pack("{s:s, s:s, s:o}", "t", "blob", "name", name, "text",
			    text_value(data, len)));
}

void emit_blob_file(const char *name, const char *path, size_t cap)
{
	size_t len = 0;
	char *data = read_file(path, cap, &len);
	if (!data)
		return;
	emit_blob(name, data, len);
	free(data);
}

void emit_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit_json(json_pack("{s:s, s:o}", "t", "log", "msg", text_value(buf, strlen(buf))));
}
