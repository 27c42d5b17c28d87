#include "server/registry.h"

#include "common/clock.h"
#include "common/logging.h"

#include <sluice/errors.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

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

static void stream_free(struct sl_stream *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; s->shards && i < s->nshards; i++)
		sl_shard_log_close(s->shards[i].log);
	free(s->shards);
	sl_shard_map_destroy(s->map);
	sl_stream_meta_destroy(s->meta);
	free(s);
}

/* Build the in-memory stream for meta (taking ownership of it) and open its shard logs. */
static int stream_build(struct sl_registry *reg, struct sl_stream_meta *meta,
			struct sl_stream **ret)
{
	struct sl_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		sl_stream_meta_destroy(meta);
		return -ENOMEM;
	}
	s->meta = meta;
	s->registry = reg;
	snprintf(s->name, sizeof(s->name), "%s", meta->name);
	s->name_len = strlen(s->name);
	atomic_init(&s->refs, 1);
	atomic_init(&s->deleted, false);
	int r = sl_stream_meta_shard_map(meta, &s->map);
	if (r < 0)
		goto fail;
	s->nshards = (uint32_t)meta->shard_count;
	s->shards = calloc(s->nshards, sizeof(*s->shards));
	if (!s->shards) {
		r = -ENOMEM;
		goto fail;
	}
	uint32_t spread = fnv1a(s->name, s->name_len);
	for (uint32_t i = 0; i < s->nshards; i++) {
		struct sl_shard *sh = &s->shards[i];
		const struct sl_shard_meta *m = &meta->shards[i];
		sh->stream = s;
		sh->id = m->shard_id;
		sh->owner = (spread + m->shard_id) % reg->loops;
		char dir[4096 + 512];
		r = sl_stream_shard_dir(reg->data_dir, s->name, m->shard_id, dir, sizeof(dir));
		if (r < 0)
			goto fail;
		struct sl_shard_log_config lc = reg->log_template;
		lc.dir = dir;
		lc.first_seq = m->start_seq;
		lc.retention_ms = meta->retention_ms;
		r = sl_shard_log_open(&lc, &sh->log);
		if (r < 0) {
			SL_ERROR("stream %s shard %u: cannot open log in %s: %s", s->name, sh->id,
				 dir, sluice_strerror(r));
			goto fail;
		}
		struct sl_shard_log_stats st;
		sl_shard_log_stats(sh->log, &st);
		atomic_init(&sh->next_seq, st.next_seq);
		atomic_init(&sh->first_seq, st.first_seq);
		atomic_fetch_add(&s->refs, 1); /* the open log's reference */
	}
	*ret = s;
	return 0;
fail:
	stream_free(s);
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

/* Remove stream folders that have no metadata file (a delete interrupted by a crash). */
static void remove_orphans(struct sl_registry *reg)
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
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		SL_WARN("removing %s: its stream was deleted", path);
		remove_tree(path);
	}
	closedir(d);
}

int sl_registry_open(const struct sl_registry_config *cfg, struct sl_registry **ret)
{
	struct sl_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	pthread_mutex_init(&reg->mu, NULL);
	snprintf(reg->data_dir, sizeof(reg->data_dir), "%s", cfg->data_dir);
	snprintf(reg->meta_dir, sizeof(reg->meta_dir), "%s/meta", cfg->data_dir);
	reg->loops = cfg->loops ? cfg->loops : 1;
	reg->log_template = cfg->log;
	atomic_init(&reg->generation, 1);
	if (mkdir(reg->data_dir, 0755) < 0 && errno != EEXIST) {
		int r = -errno;
		SL_ERROR("cannot create data folder %s: %s", reg->data_dir, strerror(errno));
		free(reg);
		return r;
	}
	const struct sl_stream_meta_load_ops ops = {.loaded = load_one, .corrupt = load_corrupt};
	int r = sl_stream_meta_load_all(reg->meta_dir, &ops, reg);
	if (r < 0) {
		sl_registry_close(reg);
		return r;
	}
	remove_orphans(reg);
	*ret = reg;
	return 0;
}

void sl_registry_close(struct sl_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->count; i++)
		stream_free(reg->streams[i]);
	free(reg->streams);
	free(reg->deleting);
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
	pthread_mutex_lock(&reg->mu);
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
	/* Save before the logs exist: a crash in between leaves a stream with empty shards,
	 * never shard folders without their stream. */
	r = sl_stream_meta_save(reg->meta_dir, meta);
	if (r < 0) {
		snprintf(err_msg, err_msg_len, "cannot save stream metadata: %s",
			 sluice_strerror(r));
		goto out_meta;
	}
	struct sl_stream *s;
	r = stream_build(reg, meta, &s);
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

int sl_registry_delete_stream(struct sl_registry *reg, const char *name, struct sl_stream **ret)
{
	pthread_mutex_lock(&reg->mu);
	ssize_t i = find_index(reg, name);
	if (i < 0) {
		pthread_mutex_unlock(&reg->mu);
		return SLUICE_ERR_STREAM_NOT_FOUND;
	}
	struct sl_stream *s = reg->streams[i];
	int r = sl_stream_meta_remove(reg->meta_dir, name);
	if (r < 0 && r != SLUICE_ERR_STREAM_NOT_FOUND) {
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

void sl_stream_unref(struct sl_stream *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* Last reference: only a deleted stream gets here (the registry holds live ones). */
	struct sl_registry *reg = s->registry;
	char dir[4096 + 256];
	snprintf(dir, sizeof(dir), "%s/streams/%s", reg->data_dir, s->name);
	remove_tree(dir);
	pthread_mutex_lock(&reg->mu);
	for (size_t i = 0; i < reg->deleting_count; i++) {
		if (strcmp(reg->deleting[i], s->name) == 0) {
			memmove(reg->deleting[i], reg->deleting[i + 1],
				(reg->deleting_count - i - 1) * sizeof(*reg->deleting));
			reg->deleting_count--;
			break;
		}
	}
	pthread_mutex_unlock(&reg->mu);
	stream_free(s);
}

struct sl_shard *sl_stream_shard(struct sl_stream *s, uint32_t shard_id)
{
	uint32_t lo = 0, hi = s->nshards;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (s->shards[mid].id == shard_id)
			return &s->shards[mid];
		if (s->shards[mid].id < shard_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct sl_shard *sl_stream_route(struct sl_stream *s, sl_u128 hash_key)
{
	return sl_stream_shard(s, sl_shard_map_find(s->map, hash_key));
}

void sl_shard_close_log(struct sl_shard *sh)
{
	if (!sh->log)
		return;
	sl_shard_log_close(sh->log);
	sh->log = NULL;
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
 * The published meta is immutable except for these two settings, changed under the lock after
 * the new file is durable: tags are read only under the lock (here, and by save), and
 * retention_ms is a naturally atomic 64-bit field that readers load as they go (describe, the
 * consumer engine); a reader sees the old or the new value, both valid.
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
	struct sl_stream_meta *copy;
	int r = sl_stream_meta_clone(s->meta, &copy);
	if (r == 0)
		r = edit(copy, ctx, err_msg, err_msg_len);
	if (r == 0) {
		r = sl_stream_meta_save(reg->meta_dir, copy);
		if (r < 0)
			snprintf(err_msg, err_msg_len, "cannot save stream metadata: %s",
				 sluice_strerror(r));
	}
	if (r == 0) {
		struct sl_tag *tags = s->meta->tags;
		size_t n = s->meta->tag_count;
		s->meta->tags = copy->tags;
		s->meta->tag_count = copy->tag_count;
		copy->tags = tags;
		copy->tag_count = n;
		__atomic_store_n(&s->meta->retention_ms, copy->retention_ms, __ATOMIC_RELAXED);
		if (ret_stream) {
			sl_stream_ref(s);
			*ret_stream = s;
		}
	}
	pthread_mutex_unlock(&reg->mu);
	sl_stream_meta_destroy(copy);
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
	const struct sl_stream_meta *m = reg->streams[i]->meta;
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
