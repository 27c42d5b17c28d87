/*
 * The stream registry: every live stream, its shards, and which loop owns each shard.
 *
 * Threads. The registry itself (create, delete, list) is guarded by a mutex; it is touched only
 * by admin requests and by each loop when the registry's generation changes. The append path
 * never takes it: each loop keeps its own name -> stream table (struct sl_stream_cache), rebuilt
 * when the generation moves. A shard's log is used only by its owner loop.
 *
 * Lifetime. A stream is reference counted: the registry holds one reference, each loop cache one,
 * each request in flight one, and each open shard log one (dropped by the owner when it closes
 * the log after a delete). The last reference frees the stream and removes its folder; until
 * then a create of the same name answers SLUICE_ERR_STREAM_EXISTS (Kinesis: still DELETING).
 */
#ifndef SL_SERVER_REGISTRY_H
#define SL_SERVER_REGISTRY_H

#include "log/shard_log.h"
#include "net/loop.h"
#include "stream/hash_key.h"
#include "stream/stream_meta.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_stream;

struct sl_shard {
	struct sl_stream *stream;
	uint32_t id;
	unsigned owner;		  /* index of the owning loop */
	struct sl_shard_log *log; /* owner only; NULL once closed */
	/* group commit state, owner only */
	bool sync_inflight;
	bool dirty;
	struct sl_shard *next_dirty;
	struct sl_sync_ticket ticket;
	struct sl_op sync_op;
	/* published by the owner for admin requests and /metrics */
	_Atomic uint64_t next_seq;
	_Atomic uint64_t first_seq;
	_Atomic uint64_t records_in;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t records_out;
	_Atomic bool failed;
};

struct sl_stream {
	char name[SLUICE_NAME_LEN_MAX + 1];
	size_t name_len;
	struct sl_stream_meta *meta; /* immutable while published */
	struct sl_shard_map *map;    /* routing of the open shards */
	struct sl_shard *shards;     /* indexed by position in meta->shards */
	uint32_t nshards;
	atomic_int refs;
	atomic_bool deleted;
	struct sl_registry *registry;
};

struct sl_registry_config {
	const char *data_dir;
	unsigned loops;
	struct sl_shard_log_config log; /* template: dir, first_seq and retention set per shard */
};

struct sl_registry;

/* Load every stream of DATA/meta and open its shard logs (before the loops start). */
int sl_registry_open(const struct sl_registry_config *cfg, struct sl_registry **ret);
/* Close every log and free (after the loops stopped). */
void sl_registry_close(struct sl_registry *reg);

uint64_t sl_registry_generation(const struct sl_registry *reg);

/* Create and persist a stream; its logs are opened here, before any loop can see it. */
int sl_registry_create_stream(struct sl_registry *reg, const char *name, uint32_t shards,
			      int64_t retention_ms, char *err_msg, size_t err_msg_len);
/*
 * Unpublish and forget a stream (its metadata file is removed at once). Returns it with a
 * reference the caller must drop after asking each owner to close its shard (sl_shard_close_log).
 */
int sl_registry_delete_stream(struct sl_registry *reg, const char *name, struct sl_stream **ret);

/*
 * Stream settings, persisted before they return 0. set_retention (SL_STREAM_RETENTION_MS_MIN..
 * _MAX) returns the stream with a reference in *ret_stream (may be NULL) so that the caller can
 * tell each shard owner (sl_shard_log_set_retention). update_tags adds/replaces (remove false)
 * or removes (remove true; absent keys ignored) all of tags or none. list_tags returns a copy
 * in insertion order, freed with sl_tags_free. Errors: SLUICE_ERR_STREAM_NOT_FOUND,
 * _INVALID_ARGUMENT, _LIMIT_EXCEEDED (more than SL_STREAM_TAGS_MAX tags), -errno, with a
 * message in err_msg.
 */
int sl_registry_set_retention(struct sl_registry *reg, const char *name, int64_t retention_ms,
			      struct sl_stream **ret_stream, char *err_msg, size_t err_msg_len);
int sl_registry_update_tags(struct sl_registry *reg, const char *name, const struct sl_tag *tags,
			    size_t count, bool remove, char *err_msg, size_t err_msg_len);
int sl_registry_list_tags(struct sl_registry *reg, const char *name, struct sl_tag **ret,
			  size_t *ret_count);
void sl_tags_free(struct sl_tag *tags, size_t count);

/* A referenced copy of the list of live streams (sorted by name); free with _release_list. */
int sl_registry_list(struct sl_registry *reg, struct sl_stream ***ret, size_t *ret_count,
		     uint64_t *ret_generation);
void sl_registry_release_list(struct sl_stream **list, size_t count);

void sl_stream_ref(struct sl_stream *s);
void sl_stream_unref(struct sl_stream *s);

/* The shard with this id, or NULL. */
struct sl_shard *sl_stream_shard(struct sl_stream *s, uint32_t shard_id);
/* The shard a record goes to. */
struct sl_shard *sl_stream_route(struct sl_stream *s, sl_u128 hash_key);

/* Owner only: close the shard's log and drop its reference on the stream. */
void sl_shard_close_log(struct sl_shard *sh);

/* A loop's private name -> stream table. */
struct sl_stream_cache {
	uint64_t generation;
	struct sl_stream **slots; /* open addressing, power-of-two size */
	size_t mask;
	struct sl_stream **all;
	size_t count;
};
void sl_stream_cache_init(struct sl_stream_cache *c);
void sl_stream_cache_finish(struct sl_stream_cache *c);
/* Rebuild from the registry if its generation moved. */
int sl_stream_cache_refresh(struct sl_stream_cache *c, struct sl_registry *reg);
/* Borrowed: valid while the cache is not refreshed. Take a ref to keep it longer. */
struct sl_stream *sl_stream_cache_find(const struct sl_stream_cache *c, const char *name,
				       size_t len);

#endif
