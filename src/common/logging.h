/*
 * Server-side diagnostics. Library code (libsluice, src/log) never prints: it calls sl_msg(),
 * which goes nowhere until a program installs a sink (sluiced installs one that writes to stderr).
 */
#ifndef SL_COMMON_LOGGING_H
#define SL_COMMON_LOGGING_H

enum sl_msg_level { SL_MSG_DEBUG, SL_MSG_INFO, SL_MSG_WARN, SL_MSG_ERROR };

typedef void (*sl_msg_sink_fn)(enum sl_msg_level level, const char *msg, void *ctx);

/* Install a sink (NULL to silence). Call before threads start. */
void sl_msg_set_sink(sl_msg_sink_fn fn, void *ctx);
/* The default sink: one line on stderr with a UTC timestamp and the level. */
void sl_msg_stderr_sink(enum sl_msg_level level, const char *msg, void *ctx);
void sl_msg_set_min_level(enum sl_msg_level level);

__attribute__((format(printf, 2, 3))) void sl_msg(enum sl_msg_level level, const char *fmt, ...);

#define SL_DEBUG(...) sl_msg(SL_MSG_DEBUG, __VA_ARGS__)
#define SL_INFO(...) sl_msg(SL_MSG_INFO, __VA_ARGS__)
#define SL_WARN(...) sl_msg(SL_MSG_WARN, __VA_ARGS__)
#define SL_ERROR(...) sl_msg(SL_MSG_ERROR, __VA_ARGS__)

#endif
