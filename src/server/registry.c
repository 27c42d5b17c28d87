#include "server/registry.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Streams a server holds: bounds the registry and the per-loop tables. */
#define STREAMS_MAX 10000

struct sl_registry {
	pthread_mutex_t mu;
	_Atomic uint64_t generation;
	char data_dir[4096];
	char meta_dir[4096 + 8];
	unsigned loops;
	struct sl_shard_log_config log_template;
	struct sl_stream **streams; /* sorted by name */
	size_t count, cap;
	char (*deleting)[SLUICE_NAME_LEN_MAX + 1];
	size_t deleting_count, deleting_cap;
	/* deleted streams whose files a reaper thread is removing (under mu; reaped signalled
	 * when one is done: sl_registry_close waits for them) */
	size_t reaping;
	pthread_cond_t reaped;
	/* replaced views waiting until no reader can use them (see registry.h) */
	_Atomic uint64_t view_epoch;
	_Atomic uint64_t *reader_epoch; /* loops + 1; UINT64_MAX: offline */
	unsigned readers;
	pthread_mutex_t retired_mu;
	struct retired_view *retired;
	atomic_bool have_retired;
};

struct retired_view {
	struct sl_stream_view *view;
	uint64_t epoch;
	struct retired_view *next;
};

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

uint64_t sl_registry_generation(const struct sl_registry *reg)
{
	return atomic_load_explicit(&reg->generation, memory_order_acquire);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void view_free(struct sl_stream_view *v)
{
	if (!v)
		return;
	free(v->shards);
	sl_shard_map_destroy(v->map);
	sl_stream_meta_destroy(v->meta);
	free(v);
}

static void shard_free(struct sl_shard *sh)
{
	pthread_mutex_destroy(&sh->log_mu);
	free(sh);
}

static void stream_free(struct sl_stream *s)
{
	if (!s)
		return;
	struct sl_stream_view *v = atomic_load(&s->view);
	/* The current view lists every shard (closed ones stay for their lineage). */
	for (uint32_t i = 0; v && i < v->nshards; i++) {
		if (!v->shards[i])
			continue;
		sl_shard_log_close(v->shards[i]->log);
		shard_free(v->shards[i]);
	}
	view_free(v); /* views it replaced are freed by reclamation (they own no shard) */
	free(s);
}

/* A new shard of s for m (not yet in any view), its log opened. On failure nothing is left. */
static int shard_create(struct sl_registry *reg, struct sl_stream *s,
			const struct sl_stream_meta *meta, const struct sl_shard_meta *m,
			bool fresh, struct sl_shard **ret)
{
	struct sl_shard *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	int r = pthread_mutex_init(&sh->log_mu, &ma);
	pthread_mutexattr_destroy(&ma);
	if (r != 0) {
		free(sh);
		return -r;
	}
	sh->stream = s;
	sh->id = m->shard_id;
	sh->owner = (fnv1a(s->name, s->name_len) + m->shard_id) % reg->loops;
	atomic_init(&sh->closed, m->state == SL_SHARD_CLOSED);
	atomic_init(&sh->end_seq, m->state == SL_SHARD_CLOSED ? m->end_seq : 0);
	sh->sealed = m->state == SL_SHARD_CLOSED;
	char dir[4096 + 512];
	r = sl_stream_shard_dir(reg->data_dir, s->name, m->shard_id, dir, sizeof(dir));
	if (r < 0) {
		shard_free(sh);
		return r;
	}
	/* A child's folder may be left from a reshard that crashed before its metadata was
	 * saved: nothing was ever routed there, so start it afresh. */
	if (fresh)
		remove_tree(dir);
	struct sl_shard_log_config lc = reg->log_template;
	lc.dir = dir;
	lc.first_seq = m->start_seq;
	lc.retention_ms = meta->retention_ms;
	r = sl_shard_log_open(&lc, &sh->log);
	if (r < 0) {
		SL_ERROR("stream %s shard %u: cannot open log in %s: %s", s->name, sh->id, dir,
			 sluice_strerror(r));
		shard_free(sh);
		return r;
	}
	struct sl_shard_log_stats st;
	sl_shard_log_stats(sh->log, &st);
	atomic_init(&sh->next_seq, st.next_seq);
	atomic_init(&sh->first_seq, st.first_seq);
	*ret = sh;
	return 0;
}

/* Build the in-memory stream for meta (taking ownership of it) and open its shard logs. */
static int stream_build(struct sl_registry *reg, struct sl_stream_meta *meta,
			struct sl_stream **ret)
{
	struct sl_stream *s = calloc(1, sizeof(*s));
	struct sl_stream_view *v = calloc(1, sizeof(*v));
	if (!s || !v) {
		free(s);
		free(v);
		sl_stream_meta_destroy(meta);
		return -ENOMEM;
	}
	v->meta = meta;
	s->registry = reg;
	snprintf(s->name, sizeof(s->name), "%s", meta->name);
	s->name_len = strlen(s->name);
	atomic_init(&s->refs, 1);
	atomic_init(&s->deleted, false);
	atomic_init(&s->resharding, false);
	atomic_init(&s->view, v);
	int r = sl_stream_meta_shard_map(meta, &v->map);
	if (r < 0)
		goto fail;
	v->shards = calloc(meta->shard_count ? meta->shard_count : 1, sizeof(*v->shards));
	if (!v->shards) {
		r = -ENOMEM;
		goto fail;
	}
	v->nshards = (uint32_t)meta->shard_count;
	for (uint32_t i = 0; i < v->nshards; i++) {
		r = shard_create(reg, s, meta, &meta->shards[i], false, &v->shards[i]);
		if (r < 0)
			goto fail;
		atomic_fetch_add(&s->refs, 1); /* the open log's reference */
	}
	*ret = s;
	return 0;
fail:
	stream_free(s);
	return r;
}

/* ---- reclamation of replaced views ---- */

unsigned sl_registry_reader_other(const struct sl_registry *reg)
{
	return reg->readers - 1;
}

/* After the new view is published: nobody loads old from now on. */
static void retire(struct sl_registry *reg, struct sl_stream_view *old)
{
	struct retired_view *r = malloc(sizeof(*r));
	if (!r) {
		/* Keep it rather than risk a reader: a small leak, logged. */
		SL_WARN("out of memory retiring a stream view; it is kept");
		return;
	}
	r->view = old;
	r->epoch = atomic_fetch_add(&reg->view_epoch, 1) + 1;
	pthread_mutex_lock(&reg->retired_mu);
	r->next = reg->retired;
	reg->retired = r;
	atomic_store(&reg->have_retired, true);
	pthread_mutex_unlock(&reg->retired_mu);
}

static void reclaim(struct sl_registry *reg)
{
	uint64_t min = UINT64_MAX;
	for (unsigned i = 0; i < reg->readers; i++) {
		uint64_t e = atomic_load(&reg->reader_epoch[i]);
		if (e < min)
			min = e;
	}
	pthread_mutex_lock(&reg->retired_mu);
	struct retired_view **pp = &reg->retired;
	while (*pp) {
		struct retired_view *r = *pp;
		if (r->epoch <= min) {
			*pp = r->next;
			view_free(r->view);
			free(r);
		} else {
			pp = &r->next;
		}
	}
	atomic_store(&reg->have_retired, reg->retired != NULL);
	pthread_mutex_unlock(&reg->retired_mu);
}

void sl_registry_quiescent(struct sl_registry *reg, unsigned reader)
{
	atomic_store(&reg->reader_epoch[reader], atomic_load(&reg->view_epoch));
	if (reader == 0 && atomic_load_explicit(&reg->have_retired, memory_order_relaxed))
		reclaim(reg);
}

void sl_registry_online(struct sl_registry *reg, unsigned reader)
{
	atomic_store(&reg->reader_epoch[reader], atomic_load(&reg->view_epoch));
	/* A reclaimer that missed the store above retired its view before this point, so the
	 * view loads below must see the newer view: no load may move above the store. */
	atomic_thread_fence(memory_order_seq_cst);
}

size_t sl_registry_views_retired(struct sl_registry *reg)
{
	size_t n = 0;
	pthread_mutex_lock(&reg->retired_mu);
	for (struct retired_view *r = reg->retired; r; r = r->next)
		n++;
	pthread_mutex_unlock(&reg->retired_mu);
	return n;
}

void sl_registry_offline(struct sl_registry *reg, unsigned reader)
{
	atomic_store(&reg->reader_epoch[reader], UINT64_MAX);
}

int sl_registry_reshard_begin(struct sl_stream *s)
{
	bool expected = false;
	if (!atomic_compare_exchange_strong(&s->resharding, &expected, true))
		return SLUICE_ERR_RESOURCE_IN_USE;
	if (atomic_load(&s->deleted)) {
		atomic_store(&s->resharding, false);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	return 0;
}

void sl_registry_reshard_end(struct sl_stream *s)
{
	atomic_store(&s->resharding, false);
}

int sl_registry_reshard_commit(struct sl_registry *reg, struct sl_stream *s,
			       struct sl_stream_meta *meta, char *err_msg, size_t err_msg_len)
{
	struct sl_stream_view *old = sl_stream_view(s);
	struct sl_stream_view *v = calloc(1, sizeof(*v));
	int r = v ? 0 : -ENOMEM;
	if (v) {
		v->meta = meta;
		v->nshards = (uint32_t)meta->shard_count;
		v->shards = calloc(v->nshards ? v->nshards : 1, sizeof(*v->shards));
		r = v->shards ? sl_stream_meta_shard_map(meta, &v->map) : -ENOMEM;
	} else {
		sl_stream_meta_destroy(meta);
	}
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot build the new shard map: %s",
			 sluice_strerror(r));
		view_free(v);
		return r;
	}
	/* Every shard of the old view stays (same object); the new ones get their logs now,
	 * before the metadata naming them is saved. */
	uint32_t created = 0;
	for (uint32_t i = 0; i < v->nshards; i++) {
		const struct sl_shard_meta *m = &meta->shards[i];
		struct sl_shard *sh = sl_view_shard(old, m->shard_id, NULL);
		if (!sh) {
			r = shard_create(reg, s, meta, m, true, &sh);
			if (r < 0) {
				snprintf(err_msg, err_msg_len,
					 "cannot create the log of shard %u: %s", m->shard_id,
					 sluice_strerror(r));
				goto fail;
			}
			created++;
		}
		v->shards[i] = sh;
	}
	r = sl_stream_meta_save(reg->meta_dir, meta);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot save stream metadata: %s",
			 sluice_strerror(r));
		goto fail;
	}
	atomic_fetch_add(&s->refs, (int)created); /* the new logs' references */
	atomic_store(&s->view, v);
	retire(reg, old);
	/* After the publication: an owner that sees a shard closed sends the records back to be
	 * routed again, and the view their origin then loads must be this one. */
	for (uint32_t i = 0; i < v->nshards; i++) {
		const struct sl_shard_meta *m = &meta->shards[i];
		if (m->state != SL_SHARD_CLOSED || atomic_load(&v->shards[i]->closed))
			continue;
		atomic_store(&v->shards[i]->end_seq, m->end_seq);
		atomic_store(&v->shards[i]->closed, true);
	}
	atomic_fetch_add_explicit(&reg->generation, 1, memory_order_release);
	return 0;
fail:
	for (uint32_t i = 0; i < v->nshards; i++) {
		struct sl_shard *sh = v->shards[i];
		if (!sh || sl_view_shard(old, sh->id, NULL))
			continue;
		sl_shard_log_close(sh->log);
		char dir[4096 + 512];
		if (sl_stream_shard_dir(reg->data_dir, s->name, sh->id, dir, sizeof(dir)) > 0)
			remove_tree(dir);
		shard_free(sh);
	}
	view_free(v);
	return r;
}

static int insert_sorted(struct sl_registry *reg, struct sl_stream *s)
{
	if (reg->count == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 16;
		struct sl_stream **n = realloc(reg->streams, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		reg->streams = n;
		reg->cap = cap;
	}
	size_t i = 0;
	while (i < reg->count && strcmp(reg->streams[i]->name, s->name) < 0)
		i++;
	memmove(&reg->streams[i + 1], &reg->streams[i], (reg->count - i) * sizeof(*reg->streams));
	reg->streams[i] = s;
	reg->count++;
	return 0;
}

static ssize_t find_index(const struct sl_registry *reg, const char *name)
{
	size_t lo = 0, hi = reg->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(reg->streams[mid]->name, name);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int load_one(void *ctx, struct sl_stream_meta *meta)
{
	struct sl_registry *reg = ctx;
	struct sl_stream *s;
	char name[SLUICE_NAME_LEN_MAX + 1];
	snprintf(name, sizeof(name), "%s", meta->name);
	int r = stream_build(reg, meta, &s);
	if (r < 0) {
		SL_ERROR("stream %s: not loaded: %s", name, sluice_strerror(r));
		return r;
	}
	r = insert_sorted(reg, s);
	if (r < 0)
		stream_free(s);
	return r;
}

static void load_corrupt(void *ctx, const char *file, int err, const char *msg)
{
	SL_ERROR("metadata file %s is unreadable (%s): %s; the stream is not served until it is "
		 "fixed or removed",
		 file, sluice_strerror(err), msg);
}

static void set_aside_orphans(struct sl_registry *reg);

int sl_registry_open(const struct sl_registry_config *cfg, struct sl_registry **ret)
{
	struct sl_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	pthread_mutex_init(&reg->mu, NULL);
	pthread_cond_init(&reg->reaped, NULL);
	snprintf(reg->data_dir, sizeof(reg->data_dir), "%s", cfg->data_dir);
	snprintf(reg->meta_dir, sizeof(reg->meta_dir), "%s/meta", cfg->data_dir);
	reg->loops = cfg->loops ? cfg->loops : 1;
	reg->log_template = cfg->log;
	atomic_init(&reg->generation, 1);
	pthread_mutex_init(&reg->retired_mu, NULL);
	atomic_init(&reg->view_epoch, 0);
	atomic_init(&reg->have_retired, false);
	reg->readers = reg->loops + 1;
	reg->reader_epoch = calloc(reg->readers, sizeof(*reg->reader_epoch));
	if (!reg->reader_epoch) {
		pthread_mutex_destroy(&reg->retired_mu);
		pthread_cond_destroy(&reg->reaped);
		pthread_mutex_destroy(&reg->mu);
		free(reg);
		return -ENOMEM;
	}
	/* Workers start at epoch 0 (nothing retired yet); the other reader starts offline. */
	for (unsigned i = 0; i < reg->readers; i++)
		atomic_init(&reg->reader_epoch[i], i + 1 == reg->readers ? UINT64_MAX : 0);
	if (mkdir(reg->data_dir, 0755) < 0 && errno != EEXIST) {
		int r = -errno;
		SL_ERROR("cannot create data folder %s: %s", reg->data_dir, strerror(errno));
		sl_registry_close(reg);
		return r;
	}
	const struct sl_stream_meta_load_ops ops = {.loaded = load_one, .corrupt = load_corrupt};
	int r = sl_stream_meta_load_all(reg->meta_dir, &ops, reg);
	if (r < 0) {
		sl_registry_close(reg);
		return r;
	}
	set_aside_orphans(reg);
	*ret = reg;
	return 0;
}

void sl_registry_close(struct sl_registry *reg)
{
	if (!reg)
		return;
	/* Deleted streams' files still being removed: their reapers use the registry. */
	pthread_mutex_lock(&reg->mu);
	while (reg->reaping)
		pthread_cond_wait(&reg->reaped, &reg->mu);
	pthread_mutex_unlock(&reg->mu);
	for (size_t i = 0; i < reg->count; i++)
		stream_free(reg->streams[i]);
	while (reg->retired) { /* the loops have stopped: nobody reads views any more */
		struct retired_view *r = reg->retired;
		reg->retired = r->next;
		view_free(r->view);
		free(r);
	}
	free(reg->reader_epoch);
	pthread_mutex_destroy(&reg->retired_mu);
	free(reg->streams);
	free(reg->deleting);
	pthread_cond_destroy(&reg->reaped);
	pthread_mutex_destroy(&reg->mu);
	free(reg);
}

static bool is_deleting(const struct sl_registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->deleting_count; i++)
		if (strcmp(reg->deleting[i], name) == 0)
			return true;
	return false;
}

/*
 * A shard folder of a name no stream has (a delete cut short by a crash, or metadata that failed
 * to load) would make a new stream's logs start at its old tip with its old records. It is moved
 * to DATA/orphaned/NAME-MS rather than deleted: it may be all that is left of a stream whose
 * metadata was lost (docs/operations.md). 0 or -errno.
 */
static int set_aside_orphan(struct sl_registry *reg, const char *name)
{
	char dir[4096 + 256], aside[4096 + 300];
	snprintf(dir, sizeof(dir), "%s/streams/%s", reg->data_dir, name);
	struct stat st;
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	snprintf(aside, sizeof(aside), "%s/orphaned", reg->data_dir);
	if (mkdir(aside, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(aside, sizeof(aside), "%s/orphaned/%s-%lld", reg->data_dir, name,
		 (long long)sl_wall_ms());
	if (rename(dir, aside) < 0)
		return -errno;
	SL_WARN("stream %s: an old shard folder without metadata was moved to %s", name, aside);
	return 0;
}

/*
 * At startup: a stream folder whose name has no loaded stream. With an unreadable metadata file
 * it is kept as it is (the stream comes back once the file is fixed); with none (a delete cut
 * short by a crash, or a lost metadata file: the two look the same) it is set aside, not
 * deleted.
 */
static void set_aside_orphans(struct sl_registry *reg)
{
	char dir[4096 + 16];
	snprintf(dir, sizeof(dir), "%s/streams", reg->data_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || e->d_name[1] == '.'))
			continue;
		if (find_index(reg, e->d_name) >= 0)
			continue;
		char meta[4096 + 512];
		snprintf(meta, sizeof(meta), "%s/streams/%s.json", reg->meta_dir, e->d_name);
		if (access(meta, F_OK) == 0) {
			SL_WARN("keeping %s/%s: its metadata file is unreadable", dir, e->d_name);
			continue;
		}
		int r = set_aside_orphan(reg, e->d_name);
		if (r < 0)
			SL_ERROR("cannot move %s/%s aside: %s", dir, e->d_name, sluice_strerror(r));
	}
	closedir(d);
}

/*
 * Publish a new stream described by meta (validated; ownership taken in every case): refused if
 * the name exists or is still being deleted, or at STREAMS_MAX. The metadata is saved before the
 * logs exist, so a crash in between leaves a stream with empty shards, never shard folders
 * without their stream. A leftover folder of the name is set aside first (set_aside_orphan).
 */
static int register_stream(struct sl_registry *reg, struct sl_stream_meta *meta, char *err_msg,
			   size_t err_msg_len)
{
	char name[SLUICE_NAME_LEN_MAX + 1];
	snprintf(name, sizeof(name), "%s", meta->name);
	pthread_mutex_lock(&reg->mu);
	int r;
	if (find_index(reg, name) >= 0 || is_deleting(reg, name)) {
		snprintf(err_msg, err_msg_len, "stream %s %s", name,
			 is_deleting(reg, name) ? "is still being deleted" : "already exists");
		r = SLUICE_ERR_STREAM_EXISTS;
		goto out_meta;
	}
	if (reg->count >= STREAMS_MAX) {
		snprintf(err_msg, err_msg_len, "at most %d streams", STREAMS_MAX);
		r = SLUICE_ERR_LIMIT_EXCEEDED;
		goto out_meta;
	}
	r = set_aside_orphan(reg, name);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot move the old folder of %s aside: %s", name,
			 sluice_strerror(r));
		goto out_meta;
	}
	r = sl_stream_meta_save(reg->meta_dir, meta);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot save stream metadata: %s",
			 sluice_strerror(r));
		goto out_meta;
	}
	struct sl_stream *s;
	r = stream_build(reg, meta, &s); /* owns meta from here */
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot open shard logs: %s", sluice_strerror(r));
		sl_stream_meta_remove(reg->meta_dir, name);
		goto out;
	}
	r = insert_sorted(reg, s);
	if (r < 0) {
		stream_free(s);
		sl_stream_meta_remove(reg->meta_dir, name);
		goto out;
	}
	atomic_fetch_add_explicit(&reg->generation, 1, memory_order_release);
	goto out;
out_meta:
	sl_stream_meta_destroy(meta);
out:
	pthread_mutex_unlock(&reg->mu);
	return r;
}

int sl_registry_create_stream(struct sl_registry *reg, const char *name, uint32_t shards,
			      int64_t retention_ms, char *err_msg, size_t err_msg_len)
{
	struct sl_stream_meta *meta;
	int r = sl_stream_meta_create(name, shards, retention_ms, sl_wall_ms(), &meta);
	if (r < 0) {
		if (r == SLUICE_ERR_INVALID_ARGUMENT)
			snprintf(err_msg, err_msg_len,
				 "shard count must be 1..%d and retention %llds..%llds",
				 SLUICE_SHARDS_MAX, SL_STREAM_RETENTION_MS_MIN / 1000,
				 SL_STREAM_RETENTION_MS_MAX / 1000);
		return r;
	}
	return register_stream(reg, meta, err_msg, err_msg_len);
}

int sl_registry_create_stream_from_meta(struct sl_registry *reg, struct sl_stream_meta *meta,
					char *err_msg, size_t err_msg_len)
{
	meta->status = SL_STREAM_ACTIVE;
	int r = sl_stream_meta_check(meta, err_msg, err_msg_len);
	if (r < 0) {
		sl_stream_meta_destroy(meta);
		return r;
	}
	return register_stream(reg, meta, err_msg, err_msg_len);
}

int sl_registry_delete_stream(struct sl_registry *reg, const char *name, struct sl_stream **ret)
{
	pthread_mutex_lock(&reg->mu);
	ssize_t i = find_index(reg, name);
	if (i < 0) {
		pthread_mutex_unlock(&reg->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_stream *s = reg->streams[i];
	/* Not in the middle of a reshard: its commit would save the metadata again. Holding the
	 * reshard lock through the delete keeps later reshards out too. */
	if (sl_registry_reshard_begin(s) < 0) {
		pthread_mutex_unlock(&reg->mu);
		return SLUICE_ERR_RESOURCE_IN_USE;
	}
	int r = sl_stream_meta_remove(reg->meta_dir, name);
	if (r < 0 && r != SLUICE_ERR_STREAM_NOT_FOUND) {
		sl_registry_reshard_end(s);
		pthread_mutex_unlock(&reg->mu);
		return r;
	}
	if (reg->deleting_count == reg->deleting_cap) {
		size_t cap = reg->deleting_cap ? reg->deleting_cap * 2 : 8;
		void *n = realloc(reg->deleting, cap * sizeof(*reg->deleting));
		if (n) {
			reg->deleting = n;
			reg->deleting_cap = cap;
		}
	}
	if (reg->deleting_count < reg->deleting_cap)
		snprintf(reg->deleting[reg->deleting_count++], sizeof(*reg->deleting), "%s", name);
	memmove(&reg->streams[i], &reg->streams[i + 1],
		(reg->count - (size_t)i - 1) * sizeof(*reg->streams));
	reg->count--;
	atomic_store(&s->deleted, true);
	atomic_fetch_add_explicit(&reg->generation, 1, memory_order_release);
	pthread_mutex_unlock(&reg->mu);
	*ret = s; /* the registry's reference passes to the caller */
	return 0;
}

int sl_registry_list(struct sl_registry *reg, struct sl_stream ***ret, size_t *ret_count,
		     uint64_t *ret_generation)
{
	pthread_mutex_lock(&reg->mu);
	struct sl_stream **list = malloc((reg->count ? reg->count : 1) * sizeof(*list));
	if (!list) {
		pthread_mutex_unlock(&reg->mu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < reg->count; i++) {
		list[i] = reg->streams[i];
		sl_stream_ref(list[i]);
	}
	*ret = list;
	*ret_count = reg->count;
	if (ret_generation)
		*ret_generation = atomic_load(&reg->generation);
	pthread_mutex_unlock(&reg->mu);
	return 0;
}

void sl_registry_release_list(struct sl_stream **list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		sl_stream_unref(list[i]);
	free(list);
}

void sl_stream_ref(struct sl_stream *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/*
 * Remove a deleted stream's files and free it; then its name may be created again. Runs on a
 * reaper thread of its own (sl_stream_unref), or inline when no thread could be started.
 */
static void reap_stream(struct sl_stream *s)
{
	struct sl_registry *reg = s->registry;
	char dir[4096 + 256], name[SLUICE_NAME_LEN_MAX + 1];
	snprintf(dir, sizeof(dir), "%s/streams/%s", reg->data_dir, s->name);
	snprintf(name, sizeof(name), "%s", s->name);
	remove_tree(dir);
	stream_free(s);
	pthread_mutex_lock(&reg->mu);
	for (size_t i = 0; i < reg->deleting_count; i++) {
		if (strcmp(reg->deleting[i], name) == 0) {
			memmove(reg->deleting[i], reg->deleting[i + 1],
				(reg->deleting_count - i - 1) * sizeof(*reg->deleting));
			reg->deleting_count--;
			break;
		}
	}
	pthread_mutex_unlock(&reg->mu);
}

static void *reaper_main(void *arg)
{
	struct sl_stream *s = arg;
	struct sl_registry *reg = s->registry;
	reap_stream(s);
	pthread_mutex_lock(&reg->mu);
	reg->reaping--;
	pthread_cond_broadcast(&reg->reaped);
	pthread_mutex_unlock(&reg->mu);
	return NULL;
}

void sl_stream_unref(struct sl_stream *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	/*
	 * Last reference: only a deleted stream gets here (the registry holds live ones), often
	 * on a loop thread (its last shard closed on its owner). Removing a large stream's
	 * segments takes a while (hundreds of ms per gigabyte on ext4), so a thread of its own
	 * does it: the loop goes on serving the other streams.
	 */
	struct sl_registry *reg = s->registry;
	pthread_mutex_lock(&reg->mu);
	reg->reaping++;
	pthread_mutex_unlock(&reg->mu);
	pthread_attr_t attr;
	pthread_t th;
	bool started = false;
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		started = pthread_create(&th, &attr, reaper_main, s) == 0;
		pthread_attr_destroy(&attr);
	}
	if (!started)
		reaper_main(s);
}

struct sl_shard *sl_view_shard(const struct sl_stream_view *v, uint32_t shard_id, uint32_t *ret_pos)
{
	uint32_t lo = 0, hi = v->nshards;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v->shards[mid]->id == shard_id) {
			if (ret_pos)
				*ret_pos = mid;
			return v->shards[mid];
		}
		if (v->shards[mid]->id < shard_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct sl_shard *sl_stream_shard(struct sl_stream *s, uint32_t shard_id)
{
	return sl_view_shard(sl_stream_view(s), shard_id, NULL);
}

uint32_t sl_view_route(const struct sl_stream_view *v, sl_u128 hash_key)
{
	/* The map names open shards of this view only, and each is in v->shards. (It may be
	 * closed by now: its owner then re-routes, see produce.c.) */
	uint32_t pos = 0;
	struct sl_shard *sh = sl_view_shard(v, sl_shard_map_find(v->map, hash_key), &pos);
	assert(sh);
	(void)sh;
	return pos;
}

void sl_shard_close_log(struct sl_shard *sh)
{
	sl_shard_lock(sh);
	struct sl_shard_log *log = sh->log;
	sh->log = NULL;
	sl_shard_log_close(log); /* its callbacks see the shard closed */
	sl_shard_unlock(sh);
	if (log)
		sl_stream_unref(sh->stream);
}

/* ---- per-loop cache ---- */

void sl_stream_cache_init(struct sl_stream_cache *c)
{
	memset(c, 0, sizeof(*c));
}

static void cache_clear(struct sl_stream_cache *c)
{
	for (size_t i = 0; i < c->count; i++)
		sl_stream_unref(c->all[i]);
	free(c->all);
	free(c->slots);
	c->all = NULL;
	c->slots = NULL;
	c->count = 0;
	c->mask = 0;
}

void sl_stream_cache_finish(struct sl_stream_cache *c)
{
	cache_clear(c);
}

int sl_stream_cache_refresh(struct sl_stream_cache *c, struct sl_registry *reg)
{
	uint64_t gen = sl_registry_generation(reg);
	if (gen == c->generation)
		return 0;
	struct sl_stream **list;
	size_t n;
	int r = sl_registry_list(reg, &list, &n, &gen);
	if (r < 0)
		return r;
	size_t size = 16;
	while (size < n * 2)
		size *= 2;
	struct sl_stream **slots = calloc(size, sizeof(*slots));
	if (!slots) {
		sl_registry_release_list(list, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		size_t h = fnv1a(list[i]->name, list[i]->name_len) & (size - 1);
		while (slots[h])
			h = (h + 1) & (size - 1);
		slots[h] = list[i];
	}
	cache_clear(c);
	c->all = list; /* the list's references become the cache's */
	c->count = n;
	c->slots = slots;
	c->mask = size - 1;
	c->generation = gen;
	return 0;
}

struct sl_stream *sl_stream_cache_find(const struct sl_stream_cache *c, const char *name,
				       size_t len)
{
	if (!c->slots)
		return NULL;
	size_t h = fnv1a(name, len) & c->mask;
	while (c->slots[h]) {
		struct sl_stream *s = c->slots[h];
		if (s->name_len == len && memcmp(s->name, name, len) == 0)
			return s;
		h = (h + 1) & c->mask;
	}
	return NULL;
}

/* ---- stream settings: retention and tags ---- */

/*
 * A settings change publishes a new view with an edited copy of the metadata and the same shards,
 * through the reshard path (sl_registry_reshard_commit): the metadata of a published view never
 * changes, and the stream's reshard lock orders settings changes with splits and merges, so
 * neither undoes the other. During a reshard the change is refused with
 * SLUICE_ERR_RESOURCE_IN_USE, as Kinesis refuses updates of a stream in UPDATING.
 */
static int update_settings(struct sl_registry *reg, const char *name,
			   int (*edit)(struct sl_stream_meta *m, void *ctx, char *msg, size_t len),
			   void *ctx, struct sl_stream **ret_stream, char *err_msg,
			   size_t err_msg_len)
{
	pthread_mutex_lock(&reg->mu);
	ssize_t i = find_index(reg, name);
	if (i < 0) {
		pthread_mutex_unlock(&reg->mu);
		snprintf(err_msg, err_msg_len, "stream %s not found", name);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_stream *s = reg->streams[i];
	sl_stream_ref(s);
	pthread_mutex_unlock(&reg->mu);
	int r = sl_registry_reshard_begin(s);
	if (r < 0) {
		snprintf(err_msg, err_msg_len,
			 r == SLUICE_ERR_RESOURCE_IN_USE
			     ? "stream %s is being resharded; retry when it is over"
			     : "stream %s not found",
			 name);
		sl_stream_unref(s);
		return r;
	}
	struct sl_stream_meta *copy;
	r = sl_stream_meta_clone(sl_stream_view(s)->meta, &copy);
	if (r == 0) {
		r = edit(copy, ctx, err_msg, err_msg_len);
		if (r < 0)
			sl_stream_meta_destroy(copy);
		else
			r = sl_registry_reshard_commit(reg, s, copy, err_msg, err_msg_len);
	}
	sl_registry_reshard_end(s);
	if (r == 0 && ret_stream)
		*ret_stream = s;
	else
		sl_stream_unref(s);
	return r;
}

static int edit_retention(struct sl_stream_meta *m, void *ctx, char *msg, size_t len)
{
	int64_t ms = *(const int64_t *)ctx;
	if (ms < SL_STREAM_RETENTION_MS_MIN || ms > SL_STREAM_RETENTION_MS_MAX) {
		snprintf(msg, len, "retention must be %llds..%llds",
			 SL_STREAM_RETENTION_MS_MIN / 1000, SL_STREAM_RETENTION_MS_MAX / 1000);
		return SLUICE_ERR_INVALID_ARGUMENT;
	}
	m->retention_ms = ms;
	return 0;
}

int sl_registry_set_retention(struct sl_registry *reg, const char *name, int64_t retention_ms,
			      struct sl_stream **ret_stream, char *err_msg, size_t err_msg_len)
{
	return update_settings(reg, name, edit_retention, &retention_ms, ret_stream, err_msg,
			       err_msg_len);
}

struct tag_edit {
	const struct sl_tag *tags;
	size_t count;
	bool remove;
};

static int edit_tags(struct sl_stream_meta *m, void *ctx, char *msg, size_t len)
{
	const struct tag_edit *e = ctx;
	for (size_t i = 0; i < e->count; i++) {
		if (e->remove) {
			sl_stream_meta_remove_tag(m, e->tags[i].key); /* absent keys: ignored */
			continue;
		}
		int r = sl_stream_meta_set_tag(m, e->tags[i].key, e->tags[i].value);
		if (r == SLUICE_ERR_LIMIT_EXCEEDED)
			snprintf(msg, len, "a stream has at most %d tags", SL_STREAM_TAGS_MAX);
		else if (r == SLUICE_ERR_INVALID_ARGUMENT)
			snprintf(msg, len,
				 "tag keys are 1..%d bytes and values 0..%d bytes of UTF-8",
				 SL_STREAM_TAG_KEY_LEN_MAX, SL_STREAM_TAG_VALUE_LEN_MAX);
		if (r < 0)
			return r;
	}
	return 0;
}

int sl_registry_update_tags(struct sl_registry *reg, const char *name, const struct sl_tag *tags,
			    size_t count, bool remove, char *err_msg, size_t err_msg_len)
{
	struct tag_edit e = {.tags = tags, .count = count, .remove = remove};
	return update_settings(reg, name, edit_tags, &e, NULL, err_msg, err_msg_len);
}

int sl_registry_list_tags(struct sl_registry *reg, const char *name, struct sl_tag **ret,
			  size_t *ret_count)
{
	pthread_mutex_lock(&reg->mu);
	ssize_t i = find_index(reg, name);
	if (i < 0) {
		pthread_mutex_unlock(&reg->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	/* the current view stays allocated until this worker's tick is over */
	const struct sl_stream_meta *m = sl_stream_view(reg->streams[i])->meta;
	struct sl_tag *out = calloc(m->tag_count ? m->tag_count : 1, sizeof(*out));
	int r = out ? 0 : -ENOMEM;
	for (size_t k = 0; r == 0 && k < m->tag_count; k++) {
		out[k].key = strdup(m->tags[k].key);
		out[k].value = strdup(m->tags[k].value);
		if (!out[k].key || !out[k].value)
			r = -ENOMEM;
	}
	size_t n = m->tag_count;
	pthread_mutex_unlock(&reg->mu);
	if (r < 0) {
		sl_tags_free(out, n);
		return r;
	}
	*ret = out;
	*ret_count = n;
	return 0;
}

void sl_tags_free(struct sl_tag *tags, size_t count)
{
	for (size_t i = 0; tags && i < count; i++) {
		free(tags[i].key);
		free(tags[i].value);
	}
	free(tags);
}
