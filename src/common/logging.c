#include "common/logging.h"

#include "common/clock.h"
#include "common/units.h"

#include <stdarg.h>
#include <stdio.h>

static sl_msg_sink_fn sink_fn;
static void *sink_ctx;
static enum sl_msg_level min_level = SL_MSG_INFO;

void sl_msg_set_sink(sl_msg_sink_fn fn, void *ctx)
{
	sink_fn = fn;
	sink_ctx = ctx;
}

void sl_msg_set_min_level(enum sl_msg_level level)
{
	min_level = level;
}

void sl_msg_stderr_sink(enum sl_msg_level level, const char *msg, void *ctx)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char ts[40];
	sl_format_timestamp(sl_wall_ms(), ts, sizeof(ts));
	/* One fprintf per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s %s %s\n", ts, names[level], msg);
}

void sl_msg(enum sl_msg_level level, const char *fmt, ...)
{
	if (!sink_fn || level < min_level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sink_fn(level, line, sink_ctx);
}
