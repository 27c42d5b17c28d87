/* Tests of src/consumer/consumer_config.c: handler specs, every validation rule, the JSON round
 * trip, corrupt files (each with a message naming the field) and the files on disk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sluice/errors.h>

#include "consumer/consumer_config.h"

#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW_MS 1764291723000ll

/* ---- helpers ---- */

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/sl-cmeta-test-XXXXXX", base && *base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_rf(p);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof(p), "%s/consumers/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool file_exists(const char *dir, const char *name)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof(p), "%s/consumers/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* A valid exec consumer with every field away from its default. */
static void full_config(struct sl_consumer_config *c, const char *name)
{
	sl_consumer_config_defaults(c);
	snprintf(c->name, sizeof(c->name), "%s", name);
	strcpy(c->stream, "orders");
	c->handler_kind = SL_HANDLER_EXEC;
	strcpy(c->handler_target, "python3 handle.py --flag \"quoted\" \xc3\xa9");
	c->batch_size = 500;
	c->batch_window_ms = 250;
	c->start.type = SLUICE_POS_AT_TIMESTAMP;
	c->start.value = (uint64_t)NOW_MS - 1000;
	c->max_retries = 3;
	c->max_record_age_s = 3600;
	c->bisect_on_error = true;
	strcpy(c->on_failure, "orders-dlq");
	c->parallelism = 4;
	c->timeout_ms = 30000;
	c->created_ms = NOW_MS;
}

static void assert_config_equal(const struct sl_consumer_config *a,
				const struct sl_consumer_config *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->stream, b->stream);
	assert_int_equal(a->handler_kind, b->handler_kind);
	assert_string_equal(a->handler_target, b->handler_target);
	assert_int_equal(a->batch_size, b->batch_size);
	assert_int_equal(a->batch_window_ms, b->batch_window_ms);
	assert_int_equal(a->start.type, b->start.type);
	assert_int_equal(a->start.value, b->start.value);
	assert_int_equal(a->max_retries, b->max_retries);
	assert_int_equal(a->max_record_age_s, b->max_record_age_s);
	assert_int_equal(a->bisect_on_error, b->bisect_on_error);
	assert_string_equal(a->on_failure, b->on_failure);
	assert_int_equal(a->parallelism, b->parallelism);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->created_ms, b->created_ms);
}

/* ---- handler specs ---- */

static void handler_specs(void **state)
{
	(void)state;
	enum sl_handler_kind kind = SL_HANDLER_REMOTE;
	char t[SL_CONSUMER_HANDLER_LEN_MAX];
	assert_int_equal(sl_consumer_parse_handler("exec:./h.sh arg", &kind, t, sizeof(t)), 0);
	assert_int_equal(kind, SL_HANDLER_EXEC);
	assert_string_equal(t, "./h.sh arg");
	assert_int_equal(sl_consumer_parse_handler("plugin:/usr/lib/h.so", &kind, t, sizeof(t)), 0);
	assert_int_equal(kind, SL_HANDLER_PLUGIN);
	assert_string_equal(t, "/usr/lib/h.so");
	/* Relative plugin paths are accepted (resolved by the server). */
	assert_int_equal(sl_consumer_parse_handler("plugin:h.so", &kind, t, sizeof(t)), 0);
	assert_string_equal(t, "h.so");
	strcpy(t, "junk");
	assert_int_equal(sl_consumer_parse_handler("remote", &kind, t, sizeof(t)), 0);
	assert_int_equal(kind, SL_HANDLER_REMOTE);
	assert_string_equal(t, "");

	static const char *const bad[] = {
	    "",	      "exec:",	  "plugin:", "remote:", "remote:x",
	    "Exec:x", "lambda:x", "exec",    "plugin",	"exec:\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kind = SL_HANDLER_EXEC;
		strcpy(t, "keep");
		assert_int_equal(sl_consumer_parse_handler(bad[i], &kind, t, sizeof(t)),
				 SLUICE_ERR_INVALID_ARGUMENT);
		assert_string_equal(t, "keep"); /* untouched on failure */
	}
	assert_int_equal(sl_consumer_parse_handler(NULL, &kind, t, sizeof(t)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	/* Too long for the target buffer, or for the limit. */
	char small[4];
	assert_int_equal(sl_consumer_parse_handler("exec:abcd", &kind, small, sizeof(small)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	assert_int_equal(sl_consumer_parse_handler("exec:abc", &kind, small, sizeof(small)), 0);
	char *lng = malloc(SL_CONSUMER_HANDLER_LEN_MAX + 8);
	assert_non_null(lng);
	strcpy(lng, "exec:");
	memset(lng + 5, 'x', SL_CONSUMER_HANDLER_LEN_MAX);
	lng[5 + SL_CONSUMER_HANDLER_LEN_MAX] = '\0';
	assert_int_equal(sl_consumer_parse_handler(lng, &kind, t, sizeof(t)),
			 SLUICE_ERR_INVALID_ARGUMENT);
	lng[5 + SL_CONSUMER_HANDLER_LEN_MAX - 1] = '\0'; /* 4095 bytes: fits */
	assert_int_equal(sl_consumer_parse_handler(lng, &kind, t, sizeof(t)), 0);
	free(lng);
}

/* ---- validation ---- */

static void defaults(void **state)
{
	(void)state;
	struct sl_consumer_config c;
	memset(&c, 0xa5, sizeof(c));
	sl_consumer_config_defaults(&c);
	assert_int_equal(c.batch_size, SL_CONSUMER_BATCH_SIZE_DEFAULT);
	assert_int_equal(c.batch_window_ms, 0);
	assert_int_equal(c.start.type, SLUICE_POS_LATEST);
	assert_int_equal(c.max_retries, -1);
	assert_int_equal(c.max_record_age_s, -1);
	assert_false(c.bisect_on_error);
	assert_string_equal(c.on_failure, "");
	assert_int_equal(c.parallelism, 1);
	assert_int_equal(c.timeout_ms, SL_CONSUMER_TIMEOUT_MS_DEFAULT);
	/* Defaults + name + stream + remote handler is a valid registration. */
	strcpy(c.name, "c");
	strcpy(c.stream, "s");
	assert_int_equal(sl_consumer_config_check(&c, NULL, 0), 0);
}

typedef void (*mutate_fn)(struct sl_consumer_config *c);

struct rule {
	const char *what;
	mutate_fn fn;
	int err;
	const char *field; /* the message must start with it */
};

static void r_name_empty(struct sl_consumer_config *c)
{
	c->name[0] = '\0';
}
static void r_name_slash(struct sl_consumer_config *c)
{
	strcpy(c->name, "a/b");
}
static void r_name_dotdot(struct sl_consumer_config *c)
{
	strcpy(c->name, "..");
}
static void r_name_unterminated(struct sl_consumer_config *c)
{
	memset(c->name, 'a', sizeof(c->name));
}
static void r_stream(struct sl_consumer_config *c)
{
	strcpy(c->stream, "or ders");
}
static void r_kind(struct sl_consumer_config *c)
{
	c->handler_kind = (enum sl_handler_kind)7;
}
static void r_exec_empty(struct sl_consumer_config *c)
{
	c->handler_target[0] = '\0';
}
static void r_plugin_empty(struct sl_consumer_config *c)
{
	c->handler_kind = SL_HANDLER_PLUGIN;
	c->handler_target[0] = '\0';
}
static void r_remote_target(struct sl_consumer_config *c)
{
	c->handler_kind = SL_HANDLER_REMOTE;
}
static void r_target_utf8(struct sl_consumer_config *c)
{
	strcpy(c->handler_target, "run \xc0\x80");
}
static void r_target_unterminated(struct sl_consumer_config *c)
{
	memset(c->handler_target, 'x', sizeof(c->handler_target));
}
static void r_batch_zero(struct sl_consumer_config *c)
{
	c->batch_size = 0;
}
static void r_batch_big(struct sl_consumer_config *c)
{
	c->batch_size = SL_CONSUMER_BATCH_SIZE_MAX + 1;
}
static void r_window(struct sl_consumer_config *c)
{
	c->batch_window_ms = SL_CONSUMER_BATCH_WINDOW_MS_MAX + 1;
}
static void r_start_type(struct sl_consumer_config *c)
{
	c->start.type = SLUICE_POS_AT_SEQ;
}
static void r_start_value(struct sl_consumer_config *c)
{
	c->start.type = SLUICE_POS_LATEST;
	c->start.value = 5;
}
static void r_start_ts(struct sl_consumer_config *c)
{
	c->start.value = (uint64_t)INT64_MAX + 1;
}
static void r_retries_low(struct sl_consumer_config *c)
{
	c->max_retries = -2;
}
static void r_retries_high(struct sl_consumer_config *c)
{
	c->max_retries = 10001;
}
static void r_age_zero(struct sl_consumer_config *c)
{
	c->max_record_age_s = 0;
}
static void r_age_neg(struct sl_consumer_config *c)
{
	c->max_record_age_s = -2;
}
static void r_age_high(struct sl_consumer_config *c)
{
	c->max_record_age_s = 366ll * 24 * 3600;
}
static void r_on_failure_name(struct sl_consumer_config *c)
{
	strcpy(c->on_failure, "dl/q");
}
static void r_on_failure_self(struct sl_consumer_config *c)
{
	strcpy(c->on_failure, c->stream);
}
static void r_par_zero(struct sl_consumer_config *c)
{
	c->parallelism = 0;
}
static void r_par_big(struct sl_consumer_config *c)
{
	c->parallelism = SL_CONSUMER_PARALLELISM_MAX + 1;
}
static void r_timeout_zero(struct sl_consumer_config *c)
{
	c->timeout_ms = 0;
}
static void r_timeout_big(struct sl_consumer_config *c)
{
	c->timeout_ms = SL_CONSUMER_TIMEOUT_MS_MAX + 1;
}
static void r_created(struct sl_consumer_config *c)
{
	c->created_ms = -1;
}

static const struct rule rules[] = {
    {"empty name", r_name_empty, SLUICE_ERR_INVALID_NAME, "name:"},
    {"name with /", r_name_slash, SLUICE_ERR_INVALID_NAME, "name:"},
    {"name ..", r_name_dotdot, SLUICE_ERR_INVALID_NAME, "name:"},
    {"name not terminated", r_name_unterminated, SLUICE_ERR_INVALID_NAME, "name:"},
    {"stream", r_stream, SLUICE_ERR_INVALID_NAME, "stream:"},
    {"kind", r_kind, SLUICE_ERR_INVALID_ARGUMENT, "handler_kind:"},
    {"exec empty", r_exec_empty, SLUICE_ERR_INVALID_ARGUMENT, "handler_target:"},
    {"plugin empty", r_plugin_empty, SLUICE_ERR_INVALID_ARGUMENT, "handler_target:"},
    {"remote with target", r_remote_target, SLUICE_ERR_INVALID_ARGUMENT, "handler_target:"},
    {"target not utf-8", r_target_utf8, SLUICE_ERR_INVALID_ARGUMENT, "handler_target:"},
    {"target not terminated", r_target_unterminated, SLUICE_ERR_INVALID_ARGUMENT,
     "handler_target:"},
    {"batch 0", r_batch_zero, SLUICE_ERR_INVALID_ARGUMENT, "batch_size:"},
    {"batch big", r_batch_big, SLUICE_ERR_INVALID_ARGUMENT, "batch_size:"},
    {"window", r_window, SLUICE_ERR_INVALID_ARGUMENT, "batch_window_ms:"},
    {"start type", r_start_type, SLUICE_ERR_INVALID_ARGUMENT, "start:"},
    {"start value", r_start_value, SLUICE_ERR_INVALID_ARGUMENT, "start:"},
    {"start ts", r_start_ts, SLUICE_ERR_INVALID_ARGUMENT, "start:"},
    {"retries -2", r_retries_low, SLUICE_ERR_INVALID_ARGUMENT, "max_retries:"},
    {"retries big", r_retries_high, SLUICE_ERR_INVALID_ARGUMENT, "max_retries:"},
    {"age 0", r_age_zero, SLUICE_ERR_INVALID_ARGUMENT, "max_record_age_s:"},
    {"age -2", r_age_neg, SLUICE_ERR_INVALID_ARGUMENT, "max_record_age_s:"},
    {"age big", r_age_high, SLUICE_ERR_INVALID_ARGUMENT, "max_record_age_s:"},
    {"on_failure name", r_on_failure_name, SLUICE_ERR_INVALID_NAME, "on_failure:"},
    {"on_failure self", r_on_failure_self, SLUICE_ERR_INVALID_ARGUMENT, "on_failure:"},
    {"parallelism 0", r_par_zero, SLUICE_ERR_INVALID_ARGUMENT, "parallelism:"},
    {"parallelism big", r_par_big, SLUICE_ERR_INVALID_ARGUMENT, "parallelism:"},
    {"timeout 0", r_timeout_zero, SLUICE_ERR_INVALID_ARGUMENT, "timeout_ms:"},
    {"timeout big", r_timeout_big, SLUICE_ERR_INVALID_ARGUMENT, "timeout_ms:"},
    {"created", r_created, SLUICE_ERR_INVALID_ARGUMENT, "created_ms:"},
};

static void validation(void **state)
{
	(void)state;
	struct sl_consumer_config c;
	char msg[256];
	full_config(&c, "billing");
	assert_int_equal(sl_consumer_config_check(&c, msg, sizeof(msg)), 0);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		full_config(&c, "billing");
		rules[i].fn(&c);
		msg[0] = '\0';
		int r = sl_consumer_config_check(&c, msg, sizeof(msg));
		if (r != rules[i].err || strncmp(msg, rules[i].field, strlen(rules[i].field)) != 0)
			fail_msg("rule '%s': got %d '%s'", rules[i].what, r, msg);
		/* NULL message buffer is fine. */
		assert_int_equal(sl_consumer_config_check(&c, NULL, 0), rules[i].err);
		/* And to_json refuses to write it. */
		char *json = NULL;
		size_t len;
		assert_int_equal(sl_consumer_config_to_json(&c, &json, &len), rules[i].err);
		assert_null(json);
	}
	/* The boundaries are in. */
	full_config(&c, "b");
	c.batch_size = SL_CONSUMER_BATCH_SIZE_MAX;
	c.batch_window_ms = SL_CONSUMER_BATCH_WINDOW_MS_MAX;
	c.max_retries = -1;
	c.max_record_age_s = -1;
	c.parallelism = SL_CONSUMER_PARALLELISM_MAX;
	c.timeout_ms = SL_CONSUMER_TIMEOUT_MS_MAX;
	c.on_failure[0] = '\0';
	c.start.type = SLUICE_POS_TRIM_HORIZON;
	c.start.value = 0;
	assert_int_equal(sl_consumer_config_check(&c, NULL, 0), 0);
	c.max_retries = 0;
	c.max_record_age_s = 1;
	c.batch_size = 1;
	c.timeout_ms = 1;
	assert_int_equal(sl_consumer_config_check(&c, NULL, 0), 0);
	memset(c.name, 'n', SLUICE_NAME_LEN_MAX);
	c.name[SLUICE_NAME_LEN_MAX] = '\0';
	assert_int_equal(sl_consumer_config_check(&c, NULL, 0), 0);
}

/* ---- JSON ---- */

static void round_trip_one(const struct sl_consumer_config *c)
{
	char *json;
	size_t len;
	assert_int_equal(sl_consumer_config_to_json(c, &json, &len), 0);
	assert_int_equal(strlen(json), len);
	assert_int_equal(json[len - 1], '\n');
	struct sl_consumer_config back;
	char msg[256] = "";
	int r = sl_consumer_config_from_json(json, len, &back, msg, sizeof(msg));
	if (r != 0)
		fail_msg("from_json: %d %s\n%s", r, msg, json);
	assert_config_equal(c, &back);
	free(json);
}

static void json_round_trip(void **state)
{
	(void)state;
	struct sl_consumer_config c;
	full_config(&c, "billing");
	round_trip_one(&c);
	c.handler_kind = SL_HANDLER_PLUGIN;
	strcpy(c.handler_target, "/opt/h/libhandler.so");
	c.start.type = SLUICE_POS_TRIM_HORIZON;
	c.start.value = 0;
	c.bisect_on_error = false;
	c.on_failure[0] = '\0';
	round_trip_one(&c);
	c.handler_kind = SL_HANDLER_REMOTE;
	c.handler_target[0] = '\0';
	c.start.type = SLUICE_POS_LATEST;
	c.max_retries = -1;
	c.max_record_age_s = -1;
	round_trip_one(&c);
	/* A handler target with JSON's special characters and the longest length. */
	full_config(&c, "x");
	memset(c.handler_target, '"', sizeof(c.handler_target) - 1);
	c.handler_target[sizeof(c.handler_target) - 1] = '\0';
	c.handler_target[7] = '\\';
	c.handler_target[8] = '\n';
	round_trip_one(&c);
}

/* A valid document as a jansson object, for the corruption tests. */
static json_t *valid_doc(void)
{
	struct sl_consumer_config c;
	full_config(&c, "billing");
	char *json;
	size_t len;
	assert_int_equal(sl_consumer_config_to_json(&c, &json, &len), 0);
	json_t *root = json_loadb(json, len, 0, NULL);
	assert_non_null(root);
	free(json);
	return root;
}

struct corruption {
	const char *field; /* set to value; NULL value: delete the field */
	const char *value_json;
	const char *want; /* prefix of the message */
};

static const struct corruption corruptions[] = {
    {"format", NULL, "format: missing"},
    {"format", "2", "format: unsupported"},
    {"format", "\"1\"", "format: not an integer"},
    {"name", NULL, "name: missing"},
    {"name", "7", "name: not a string"},
    {"name", "\"a/b\"", "name:"},
    {"name", "\"..\"", "name:"},
    {"name", "\"a\\u0000b\"", "line"}, /* jansson refuses NUL without JSON_ALLOW_NUL */
    {"stream", "\"\"", "stream:"},
    {"stream", NULL, "stream: missing"},
    {"handler_kind", "\"lambda\"", "handler_kind: unknown value"},
    {"handler_kind", "0", "handler_kind: not a string"},
    {"handler_kind", "\"remote\"", "handler_target:"},
    {"handler_target", "\"\"", "handler_target:"},
    {"handler_target", "null", "handler_target: not a string"},
    {"batch_size", "0", "batch_size:"},
    {"batch_size", "10001", "batch_size:"},
    {"batch_size", "-1", "batch_size: out of range"},
    {"batch_size", "1.5", "batch_size: not an integer"},
    {"batch_size", "4294967296", "batch_size: out of range"},
    {"batch_window_ms", "300001", "batch_window_ms:"},
    {"start", "\"at_seq\"", "start: unknown value"},
    {"start", "\"latest\"", "start:"}, /* with a timestamp */
    {"start_timestamp_ms", "-1", "start_timestamp_ms: out of range"},
    {"max_retries", "-2", "max_retries:"},
    {"max_retries", "2147483648", "max_retries: out of range"},
    {"max_record_age_s", "0", "max_record_age_s:"},
    {"bisect_on_error", "1", "bisect_on_error: not a boolean"},
    {"bisect_on_error", NULL, "bisect_on_error: missing"},
    {"on_failure", "\"orders\"", "on_failure:"},
    {"on_failure", "\"a b\"", "on_failure:"},
    {"parallelism", "11", "parallelism:"},
    {"timeout_ms", "0", "timeout_ms:"},
    {"created_ms", "-5", "created_ms:"},
    {"created_ms", NULL, "created_ms: missing"},
};

static void json_corrupt(void **state)
{
	(void)state;
	char msg[256];
	struct sl_consumer_config out;
	for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
		const struct corruption *k = &corruptions[i];
		json_t *root = valid_doc();
		if (k->value_json) {
			json_t *v =
			    json_loads(k->value_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
			assert_non_null(v);
			assert_int_equal(json_object_set_new(root, k->field, v), 0);
		} else {
			assert_int_equal(json_object_del(root, k->field), 0);
		}
		char *text = json_dumps(root, 0);
		json_decref(root);
		assert_non_null(text);
		memset(&out, 0x5a, sizeof(out));
		struct sl_consumer_config before = out;
		msg[0] = '\0';
		int r = sl_consumer_config_from_json(text, strlen(text), &out, msg, sizeof(msg));
		if (r != SLUICE_ERR_CORRUPT || strncmp(msg, k->want, strlen(k->want)) != 0)
			fail_msg("%s=%s: got %d '%s'", k->field, k->value_json, r, msg);
		assert_memory_equal(&out, &before, sizeof(out)); /* untouched on failure */
		free(text);
	}
	/* Not JSON, not an object, duplicate keys, truncated. */
	static const char *const docs[] = {"",	  "{", "[]", "42", "{\"format\":1,\"format\":1}",
					   "\xff"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(
		    sl_consumer_config_from_json(docs[i], strlen(docs[i]), &out, msg, sizeof(msg)),
		    SLUICE_ERR_CORRUPT);
		assert_true(msg[0] != '\0');
	}
	/* Unknown fields are ignored (a newer minor version). */
	json_t *root = valid_doc();
	json_object_set_new(root, "future_field", json_string("x"));
	char *text = json_dumps(root, 0);
	json_decref(root);
	assert_int_equal(sl_consumer_config_from_json(text, strlen(text), &out, NULL, 0), 0);
	free(text);
}

/* ---- files ---- */

struct load_ctx {
	char names[8][SLUICE_NAME_LEN_MAX + 1];
	int nloaded;
	char bad[8][64];
	int nbad;
	int stop_after; /* 0: never */
};

static int on_loaded(void *ctx, const struct sl_consumer_config *cfg)
{
	struct load_ctx *lc = ctx;
	assert_true(lc->nloaded < 8);
	strcpy(lc->names[lc->nloaded++], cfg->name);
	if (lc->stop_after && lc->nloaded == lc->stop_after)
		return -ECANCELED;
	return 0;
}

static void on_corrupt(void *ctx, const char *file, int err, const char *msg)
{
	struct load_ctx *lc = ctx;
	assert_int_equal(err, SLUICE_ERR_CORRUPT);
	assert_true(msg[0] != '\0');
	assert_true(lc->nbad < 8);
	snprintf(lc->bad[lc->nbad++], sizeof(lc->bad[0]), "%s", file);
}

static void files(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char meta[PATH_MAX];
	snprintf(meta, sizeof(meta), "%s/meta", dir); /* created by save */
	struct load_ctx lc = {0};

	/* Nothing saved yet: an empty load, remove finds nothing. */
	assert_int_equal(sl_consumer_config_load_all(meta, on_loaded, on_corrupt, &lc), 0);
	assert_int_equal(sl_consumer_config_remove(meta, "billing"), -ENOENT);

	struct sl_consumer_config a, b;
	full_config(&a, "billing");
	full_config(&b, "audit");
	b.handler_kind = SL_HANDLER_REMOTE;
	b.handler_target[0] = '\0';
	assert_int_equal(sl_consumer_config_save(meta, &a), 0);
	assert_int_equal(sl_consumer_config_save(meta, &b), 0);
	assert_true(file_exists(meta, "billing.json"));
	assert_false(file_exists(meta, "billing.json.tmp"));
	/* Overwrite. */
	a.batch_size = 7;
	assert_int_equal(sl_consumer_config_save(meta, &a), 0);

	/* An invalid config is refused and writes nothing. */
	struct sl_consumer_config bad;
	full_config(&bad, "bad");
	bad.parallelism = 0;
	assert_int_equal(sl_consumer_config_save(meta, &bad), SLUICE_ERR_INVALID_ARGUMENT);
	assert_false(file_exists(meta, "bad.json"));
	full_config(&bad, "../escape");
	assert_int_equal(sl_consumer_config_save(meta, &bad), SLUICE_ERR_INVALID_NAME);
	char esc[PATH_MAX + 32];
	snprintf(esc, sizeof(esc), "%s/escape.json", meta);
	assert_int_not_equal(access(esc, F_OK), 0);

	/* Leftover temp file, a corrupt file, a file whose name differs from its content,
	 * a file with a bad name, and a non-JSON file: only the two good ones load. */
	write_file(meta, "zzz.json.tmp", "{");
	write_file(meta, "broken.json", "{\"format\":1");
	write_file(meta, "README", "not a consumer");
	char *json;
	size_t len;
	assert_int_equal(sl_consumer_config_to_json(&b, &json, &len), 0);
	write_file(meta, "other.json", json);
	write_file(meta, "bad name.json", json);
	free(json);

	assert_int_equal(sl_consumer_config_load_all(meta, on_loaded, on_corrupt, &lc), 2);
	assert_int_equal(lc.nloaded, 2);
	assert_string_equal(lc.names[0], "audit"); /* name order */
	assert_string_equal(lc.names[1], "billing");
	assert_int_equal(lc.nbad, 3);
	assert_string_equal(lc.bad[0], "bad name.json");
	assert_string_equal(lc.bad[1], "broken.json");
	assert_string_equal(lc.bad[2], "other.json");

	/* corrupt may be NULL; loaded can stop the load with its error. */
	memset(&lc, 0, sizeof(lc));
	lc.stop_after = 1;
	assert_int_equal(sl_consumer_config_load_all(meta, on_loaded, NULL, &lc), -ECANCELED);
	assert_int_equal(lc.nloaded, 1);

	/* Remove. */
	assert_int_equal(sl_consumer_config_remove(meta, "billing"), 0);
	assert_false(file_exists(meta, "billing.json"));
	assert_int_equal(sl_consumer_config_remove(meta, "billing"), -ENOENT);
	assert_int_equal(sl_consumer_config_remove(meta, ".."), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_consumer_config_remove(meta, "a/b"), SLUICE_ERR_INVALID_NAME);
	assert_int_equal(sl_consumer_config_remove(meta, ""), SLUICE_ERR_INVALID_NAME);

	/* A file too large to be a registration is corrupt, not read into memory. */
	char big_path[PATH_MAX + 32];
	snprintf(big_path, sizeof(big_path), "%s/consumers/huge.json", meta);
	FILE *f = fopen(big_path, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
	fclose(f);
	memset(&lc, 0, sizeof(lc));
	assert_int_equal(sl_consumer_config_load_all(meta, on_loaded, on_corrupt, &lc), 1);
	assert_int_equal(lc.nbad, 4);
	assert_string_equal(lc.bad[2], "huge.json");

	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(handler_specs), cmocka_unit_test(defaults),
	    cmocka_unit_test(validation),    cmocka_unit_test(json_round_trip),
	    cmocka_unit_test(json_corrupt),  cmocka_unit_test(files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
