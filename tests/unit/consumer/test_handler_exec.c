/*
 * Tests for src/consumer/handler_exec.c with small /bin/sh and python3 handlers written to a
 * temporary folder. SIGPIPE keeps its default disposition here on purpose: the handler must
 * survive writing to a handler that exited without the process ignoring SIGPIPE.
 * Env: SLUICE_SOURCE_DIR (for tests/plugins/handler_fail.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "common/clock.h"
#include "consumer/handler_exec.h"

static char tmp_dir[] = "/tmp/sluice-exec-test-XXXXXX";
static char fail_py[4096];
static int have_python;

static const char *script(const char *name, const char *body)
{
	static char cmd[8192];
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	assert_int_equal(fclose(f), 0);
	bool py = strstr(name, ".py") != NULL;
	snprintf(cmd, sizeof(cmd), "%s %s", py ? "python3" : "sh", path);
	return cmd;
}

/* A batch of n records; data of record i is datas[i] if given, else `size` bytes of 'x'. */
struct test_batch {
	struct sluice_handler_record *recs;
	uint8_t *blob;
	struct sluice_handler_batch b;
};

static void batch_make(struct test_batch *t, size_t n, const char *const *datas, size_t size)
{
	t->recs = calloc(n, sizeof(*t->recs));
	t->blob = malloc(size ? size : 1);
	assert_non_null(t->recs);
	assert_non_null(t->blob);
	memset(t->blob, 'x', size);
	for (size_t i = 0; i < n; i++) {
		struct sluice_handler_record *r = &t->recs[i];
		r->seq = 1000 + i * 3;
		r->ts_ms = 1700000000123;
		r->key = "k";
		r->key_len = 1;
		if (datas) {
			r->data = (const uint8_t *)datas[i];
			r->data_len = (uint32_t)strlen(datas[i]);
		} else {
			r->data = t->blob;
			r->data_len = (uint32_t)size;
		}
	}
	t->b = (struct sluice_handler_batch){
	    .consumer = "audit", .stream = "orders", .shard_id = 7, .records = t->recs, .count = n};
}

static void batch_free(struct test_batch *t)
{
	free(t->recs);
	free(t->blob);
}

static struct sl_exec_handler *make(const char *cmd)
{
	struct sl_exec_handler *h = NULL;
	assert_int_equal(sl_exec_handler_create(cmd, "audit", "orders", 7, &h), 0);
	assert_non_null(h);
	assert_int_equal(sl_exec_handler_pid(h), -1); /* started lazily */
	return h;
}

/* Whether any live (not zombie) process is in process group pgid. */
static bool group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	struct dirent *e;
	bool alive = false;
	while (!alive && (e = readdir(d))) {
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp ...; comm may hold spaces, so start after ')'. */
		char *p = strrchr(buf, ')');
		char state;
		int ppid, pgrp;
		if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			alive = true;
	}
	closedir(d);
	return alive;
}

static void assert_gone(pid_t pid)
{
	assert_true(pid > 0);
	/* The child itself is killed and reaped before invoke/destroy return. */
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	/* Grandchildren got SIGKILL too; init reaps them, dying takes a moment. */
	for (int i = 0; i < 100 && group_alive(pid); i++)
		usleep(10 * 1000);
	assert_false(group_alive(pid));
}

/* After every test: no child of ours left, running or zombie. */
static int no_children(void **state)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	return 0;
}

static void need_python(void)
{
	if (!have_python)
		skip();
}

static const char ok_sh[] = "while IFS= read -r line; do echo '{}'; done\n";

static void exec_ok(void **state)
{
	struct sl_exec_handler *h = make(script("ok.sh", ok_sh));
	struct test_batch t;
	batch_make(&t, 3, NULL, 10);
	struct sluice_handler_result res;
	pid_t first = -1;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), 0);
		assert_int_equal(res.status, SLUICE_HANDLER_OK);
		if (i == 0)
			first = sl_exec_handler_pid(h);
		assert_int_equal(sl_exec_handler_pid(h), first); /* long-lived */
	}
	assert_int_equal(sl_exec_handler_starts(h), 1);
	int64_t t0 = sl_mono_ms();
	sl_exec_handler_destroy(h); /* exits on EOF: no need to wait for the grace period */
	assert_true(sl_mono_ms() - t0 < 800);
	assert_gone(first);
	batch_free(&t);
}

static void exec_env_and_error(void **state)
{
	struct sl_exec_handler *h = make(
	    script("env.sh", "while IFS= read -r line; do printf '{\"error\":\"%s %s %s %s\"}\\n' "
			     "\"$SLUICE_CONSUMER\" \"$SLUICE_STREAM\" \"$SLUICE_SHARD\" "
			     "\"$SLUICE_TIMEOUT_MS\"; done\n"));
	struct test_batch t;
	batch_make(&t, 1, NULL, 1);
	struct sluice_handler_result res;
	/* An {"error":...} is an answer: 0, ERROR, and the process stays. */
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 4321, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "audit orders 7 4321");
	pid_t pid = sl_exec_handler_pid(h);
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 4321, &res), 0);
	assert_int_equal(sl_exec_handler_pid(h), pid);
	assert_int_equal(sl_exec_handler_starts(h), 1);
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_partial_failure(void **state)
{
	need_python();
	char log[4200], cmd[8300];
	snprintf(log, sizeof(log), "%s/seen.jsonl", tmp_dir);
	unlink(log);
	setenv("SLUICE_TEST_LOG", log, 1);
	snprintf(cmd, sizeof(cmd), "python3 %s", fail_py);
	struct sl_exec_handler *h = make(cmd);
	static const char *const datas[] = {"a", "FAIL-1", "b", "FAIL-2"};
	struct test_batch t;
	batch_make(&t, 4, datas, 0);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 10000, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 1);
	sl_exec_handler_destroy(h);
	unsetenv("SLUICE_TEST_LOG");

	FILE *f = fopen(log, "r");
	assert_non_null(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		char want[128];
		snprintf(want, sizeof(want),
			 "{\"shard\": 7, \"seq\": \"%" PRIu64
			 "\", \"key\": \"k\", \"data\": \"%s\"}",
			 t.recs[n].seq, datas[n]);
		assert_non_null(strstr(line, want));
		n++;
	}
	fclose(f);
	assert_int_equal(n, 4);
	batch_free(&t);
}

static void exec_crash_then_restart(void **state)
{
	need_python();
	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "python3 %s", fail_py);
	struct sl_exec_handler *h = make(cmd);
	static const char *const crash[] = {"a", "CRASH"};
	static const char *const fine[] = {"a", "b"};
	struct test_batch tc, tf;
	batch_make(&tc, 2, crash, 0);
	batch_make(&tf, 2, fine, 0);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &tf.b, 10000, &res), 0);
	pid_t pid = sl_exec_handler_pid(h);
	assert_int_equal(sl_exec_handler_invoke(h, &tc.b, 10000, &res), SLUICE_ERR_INTERNAL);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "handler exited with status 3");
	assert_int_equal(sl_exec_handler_pid(h), -1);
	assert_gone(pid);
	/* The next invoke starts a fresh process. */
	assert_int_equal(sl_exec_handler_invoke(h, &tf.b, 10000, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_OK);
	assert_int_equal(sl_exec_handler_starts(h), 2);
	sl_exec_handler_destroy(h);
	batch_free(&tc);
	batch_free(&tf);
}

static void exec_signal(void **state)
{
	struct sl_exec_handler *h =
	    make(script("segv.sh", "IFS= read -r line; kill -SEGV $$; sleep 5\n"));
	/* Under `sh -c "sh segv.sh"` the outer shell reports the death as status 128+11; with
	 * `exec` the handler is the child itself and its signal shows. */
	struct test_batch t;
	batch_make(&t, 1, NULL, 1);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_INTERNAL);
	assert_string_equal(res.message, "handler exited with status 139");
	sl_exec_handler_destroy(h);

	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "exec %s",
		 script("segv.sh", "IFS= read -r line; kill -SEGV $$\n"));
	h = make(cmd);
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_INTERNAL);
	assert_string_equal(res.message, "handler killed by signal 11");
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_hang_times_out(void **state)
{
	need_python();
	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "python3 %s", fail_py);
	struct sl_exec_handler *h = make(cmd);
	static const char *const fine[] = {"a"};
	static const char *const hang[] = {"a", "HANG"};
	struct test_batch tf, th;
	batch_make(&tf, 1, fine, 0);
	batch_make(&th, 2, hang, 0);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &tf.b, 10000, &res), 0); /* started */
	pid_t pid = sl_exec_handler_pid(h);
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sl_exec_handler_invoke(h, &th.b, 300, &res), SLUICE_ERR_TIMEOUT);
	int64_t dt = sl_mono_ms() - t0;
	print_message("hang: timed out and killed after %" PRId64 " ms (timeout 300 ms)\n", dt);
	assert_true(dt >= 300);
	assert_true(dt < 300 + 200);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "handler timed out after 300 ms");
	assert_int_equal(sl_exec_handler_pid(h), -1);
	assert_gone(pid);
	sl_exec_handler_destroy(h);
	batch_free(&tf);
	batch_free(&th);
}

static void exec_garbage(void **state)
{
	need_python();
	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "python3 %s", fail_py);
	struct sl_exec_handler *h = make(cmd);
	static const char *const garbage[] = {"GARBAGE"};
	struct test_batch t;
	batch_make(&t, 1, garbage, 0);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 10000, &res), SLUICE_ERR_PROTOCOL);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_non_null(strstr(res.message, "bad handler response: response is not valid JSON"));
	assert_int_equal(sl_exec_handler_pid(h), -1);
	sl_exec_handler_destroy(h);
	batch_free(&t);

	/* Same from sh: an unknown itemIdentifier. */
	h = make(script("unknown.sh",
			"while IFS= read -r line; do echo "
			"'{\"batchItemFailures\":[{\"itemIdentifier\":\"5\"}]}'; done\n"));
	batch_make(&t, 2, NULL, 1);
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_PROTOCOL);
	assert_non_null(strstr(res.message, "not a sequence number of this batch"));
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_never_reads(void **state)
{
	/* ~4 MiB of event into a handler that never reads: the write side blocks, the deadline
	 * must still end it. */
	struct sl_exec_handler *h = make(script("deaf.sh", "exec sleep 30\n"));
	struct test_batch t;
	batch_make(&t, 3000, NULL, 1000);
	struct sluice_handler_result res;
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 400, &res), SLUICE_ERR_TIMEOUT);
	int64_t dt = sl_mono_ms() - t0;
	assert_true(dt >= 400 && dt < 400 + 200);
	assert_int_equal(sl_exec_handler_pid(h), -1);
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_slow_reader(void **state)
{
	need_python();
	/* Starts reading late and in small pieces: the big event must still get through. */
	struct sl_exec_handler *h =
	    make(script("slow.py", "import sys, time\n"
				   "time.sleep(0.3)\n"
				   "buf = b''\n"
				   "while True:\n"
				   "    chunk = sys.stdin.buffer.raw.read(4096)\n"
				   "    if not chunk:\n"
				   "        break\n"
				   "    buf += chunk\n"
				   "    while b'\\n' in buf:\n"
				   "        line, buf = buf.split(b'\\n', 1)\n"
				   "        sys.stdout.write('{}\\n')\n"
				   "        sys.stdout.flush()\n"));
	struct test_batch t;
	batch_make(&t, 3000, NULL, 1000);
	struct sluice_handler_result res;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 20000, &res), 0);
		assert_int_equal(res.status, SLUICE_HANDLER_OK);
	}
	assert_int_equal(sl_exec_handler_starts(h), 1);
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_answers_early(void **state)
{
	struct sl_exec_handler *h = make(script("early.sh", "echo '{}'\nexec sleep 30\n"));
	struct test_batch t;
	batch_make(&t, 3000, NULL, 1000);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_PROTOCOL);
	assert_string_equal(res.message, "handler answered before reading the whole event");
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_exits_without_reading(void **state)
{
	/* EPIPE on the write: reported as an exit, and SIGPIPE does not kill the test. */
	struct sl_exec_handler *h = make(script("quit.sh", "exit 4\n"));
	struct test_batch t;
	batch_make(&t, 3000, NULL, 1000);
	struct sluice_handler_result res;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_INTERNAL);
		assert_string_equal(res.message, "handler exited with status 4");
	}
	sigset_t pending;
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_orphan_holds_stdout(void **state)
{
	/* The shell dies, a background child keeps the pipes open: the exit is still seen at
	 * once (pidfd), and the straggler dies with the group. */
	struct sl_exec_handler *h = make(script("orphan.sh", "sleep 30 &\nexit 5\n"));
	struct test_batch t;
	batch_make(&t, 1, NULL, 1);
	struct sluice_handler_result res;
	int64_t t0 = sl_mono_ms();
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 10000, &res), SLUICE_ERR_INTERNAL);
	assert_true(sl_mono_ms() - t0 < 3000);
	assert_string_equal(res.message, "handler exited with status 5");
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_one_shot_and_extra_lines(void **state)
{
	/* A handler that answers one event and exits is restarted quietly between batches. */
	struct sl_exec_handler *h = make(script("once.sh", "IFS= read -r line; echo '{}'\n"));
	struct test_batch t;
	batch_make(&t, 2, NULL, 5);
	struct sluice_handler_result res;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), 0);
		assert_int_equal(res.status, SLUICE_HANDLER_OK);
		usleep(50 * 1000);
	}
	assert_int_equal(sl_exec_handler_starts(h), 3);
	sl_exec_handler_destroy(h);

	/* Two lines per event: out of step, so the next batch gets a fresh process. */
	h = make(script("twice.sh", "while IFS= read -r line; do echo '{}'; echo '{}'; done\n"));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), 0);
		usleep(100 * 1000);
	}
	assert_int_equal(sl_exec_handler_starts(h), 2);
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_destroy_stubborn(void **state)
{
	struct sl_exec_handler *h =
	    make(script("stubborn.sh", "trap '' TERM HUP\nIFS= read -r line; echo '{}'\n"
				       "sleep 30 </dev/null\n"));
	struct test_batch t;
	batch_make(&t, 1, NULL, 1);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), 0);
	pid_t pid = sl_exec_handler_pid(h);
	int64_t t0 = sl_mono_ms();
	sl_exec_handler_destroy(h);
	int64_t dt = sl_mono_ms() - t0;
	assert_true(dt >= 900 && dt < 1500);
	assert_gone(pid);
	batch_free(&t);
}

static void exec_lambda_shim(void **state)
{
	/* tools/lambda-shim.py running examples/audit.py, an unchanged Lambda handler. */
	need_python();
	const char *src = getenv("SLUICE_SOURCE_DIR");
	char audit[4200], cmd[8300];
	snprintf(audit, sizeof(audit), "%s/audit.jsonl", tmp_dir);
	setenv("AUDIT_FILE", audit, 1);
	snprintf(cmd, sizeof(cmd), "python3 %s/tools/lambda-shim.py %s/examples/audit.py", src,
		 src);
	struct sl_exec_handler *h = make(cmd);
	static const char *const datas[] = {"{\"order_id\":1}", "{\"order_id\":2}", "not json",
					    "{\"order_id\":4}"};
	struct test_batch t;
	batch_make(&t, 4, datas, 0);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 20000, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_FAILED_FROM);
	assert_int_equal(res.failed_from, 2);
	t.b.records += 3;
	t.b.count = 1;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 20000, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_OK);
	sl_exec_handler_destroy(h);
	unsetenv("AUDIT_FILE");

	FILE *f = fopen(audit, "r");
	assert_non_null(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		static const char *const want[] = {"\"order_id\": 1,", "\"order_id\": 2,",
						   "\"order_id\": 4,"};
		assert_true(n < 3);
		assert_non_null(strstr(line, want[n]));
		n++;
	}
	fclose(f);
	assert_int_equal(n, 3);
	batch_free(&t);
}

/*
 * sl_exec_handler_kill is final: a kill that lands while no child runs (before the first batch,
 * or between batches, as when a consumer reset abandons a runner that has just been handed a
 * batch) keeps invoke from starting a process, so the batch never reaches a handler.
 */
static void exec_killed_starts_nothing(void **state)
{
	char marker[4200], body[8400];
	snprintf(marker, sizeof(marker), "%s/saw-a-batch", tmp_dir);
	unlink(marker);
	snprintf(body, sizeof(body), "while IFS= read -r line; do : > '%s'; echo '{}'; done\n",
		 marker);
	struct test_batch t;
	batch_make(&t, 2, NULL, 4);
	struct sluice_handler_result res;

	struct sl_exec_handler *h = make(script("marker.sh", body));
	sl_exec_handler_kill(h); /* before the first batch: no child yet */
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), -ECANCELED);
	assert_int_equal(res.status, SLUICE_HANDLER_ERROR);
	assert_string_equal(res.message, "handler stopped (sl_exec_handler_kill)");
	assert_int_equal(sl_exec_handler_pid(h), -1);
	assert_int_equal(sl_exec_handler_starts(h), 0);
	assert_int_equal(access(marker, F_OK), -1);
	sl_exec_handler_destroy(h);

	h = make(script("marker.sh", body));
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), 0);
	assert_int_equal(res.status, SLUICE_HANDLER_OK);
	assert_int_equal(unlink(marker), 0);
	pid_t first = sl_exec_handler_pid(h);
	sl_exec_handler_kill(h); /* between batches: the child dies and is not replaced */
	for (int i = 0; i < 2; i++)
		assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), -ECANCELED);
	assert_gone(first);
	assert_int_equal(sl_exec_handler_pid(h), -1);
	assert_int_equal(sl_exec_handler_starts(h), 1);
	assert_int_equal(access(marker, F_OK), -1);
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

static void exec_bad_command(void **state)
{
	struct sl_exec_handler *h = NULL;
	assert_int_equal(sl_exec_handler_create("", "a", "s", 0, &h), SLUICE_ERR_INVALID_ARGUMENT);
	sl_exec_handler_destroy(NULL);
	h = make("/nonexistent/handler --flag");
	struct test_batch t;
	batch_make(&t, 1, NULL, 1);
	struct sluice_handler_result res;
	assert_int_equal(sl_exec_handler_invoke(h, &t.b, 5000, &res), SLUICE_ERR_INTERNAL);
	assert_string_equal(res.message, "handler exited with status 127");
	sl_exec_handler_destroy(h);
	batch_free(&t);
}

int main(void)
{
	const char *src = getenv("SLUICE_SOURCE_DIR");
	snprintf(fail_py, sizeof(fail_py), "%s/tests/plugins/handler_fail.py", src ? src : ".");
	have_python = access(fail_py, R_OK) == 0 && system("python3 -c '' 2>/dev/null") == 0;
	if (!mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(exec_ok, no_children),
	    cmocka_unit_test_teardown(exec_env_and_error, no_children),
	    cmocka_unit_test_teardown(exec_partial_failure, no_children),
	    cmocka_unit_test_teardown(exec_crash_then_restart, no_children),
	    cmocka_unit_test_teardown(exec_signal, no_children),
	    cmocka_unit_test_teardown(exec_hang_times_out, no_children),
	    cmocka_unit_test_teardown(exec_garbage, no_children),
	    cmocka_unit_test_teardown(exec_never_reads, no_children),
	    cmocka_unit_test_teardown(exec_slow_reader, no_children),
	    cmocka_unit_test_teardown(exec_answers_early, no_children),
	    cmocka_unit_test_teardown(exec_exits_without_reading, no_children),
	    cmocka_unit_test_teardown(exec_orphan_holds_stdout, no_children),
	    cmocka_unit_test_teardown(exec_one_shot_and_extra_lines, no_children),
	    cmocka_unit_test_teardown(exec_destroy_stubborn, no_children),
	    cmocka_unit_test_teardown(exec_lambda_shim, no_children),
	    cmocka_unit_test_teardown(exec_bad_command, no_children),
	    cmocka_unit_test_teardown(exec_killed_starts_nothing, no_children),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp_dir);
	return r;
}
