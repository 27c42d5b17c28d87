/*
 * The stream registry: every live stream, its shards, and which loop owns each shard.
 *
 * Threads. The registry itself (create, delete, list) is guarded by a mutex; it is touched only
 * by admin requests and by each loop when the registry's generation changes. The append path
 * never takes it: each loop keeps its own name -> stream table (struct sl_stream_cache), rebuilt
 * when the generation moves. A shard's log is managed by its owner loop (sync, retention,
 * reads, close); under an fsync policy whose answer does not wait for the disk, another loop may
 * append to it directly (produce.c). log_mu makes the two safe: the owner holds it around every
 * log call, an appending loop only tries it.
 *
 * Resharding (reshard.c). A stream's shard set is a view (struct sl_stream_view): metadata,
 * routing map and shard pointers, immutable once published. A split or merge builds a new view
 * holding the same struct sl_shard objects plus the children, saves the metadata, and publishes
 * the view with one atomic store. Shards are allocated one by one and never move, and live as
 * long as the stream.
 *
 * A replaced view is freed once no thread can still use it (quiescent-state reclamation): view
 * pointers are only used within one loop callback (or one /metrics rendering), never kept. Each
 * worker reports a quiescent state at the end of every tick (sl_registry_quiescent); the metrics
 * thread marks the span in which it reads views (sl_registry_online/_offline). A view retired at
 * epoch e is freed once every reader reported an epoch >= e.
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
	struct sl_shard_log *log; /* under log_mu; NULL once closed */
	/* Recursive: the owner's paths nest (housekeeping around service_shard; a log call's
	 * callbacks may call the log again). */
	pthread_mutex_t log_mu;
	/* Parts sent to the owner and not yet appended or turned back there (produce.c): while
	 * any are, no loop appends directly, so a connection's parts keep their order. */
	_Atomic uint32_t parts_posted;
	/* Until when (monotonic ms) someone on the owner waits for new records: a parked read, a
	 * consumer. A loop appending directly tells the owner (appended_op) only while watched
	 * or when a sync is due; otherwise the owner never hears of the append, and need not. */
	_Atomic int64_t watched_until_ms;
	atomic_bool appended_elsewhere; /* appended_op is on its way */
	struct sl_op appended_op;
	/* group commit state, owner only */
	bool sync_inflight;
	int64_t sync_started_ns; /* sl_mono_ns() when the sync in flight began */
	bool dirty;
	struct sl_shard *next_dirty;
	struct sl_sync_ticket ticket;
	struct sl_op sync_op;
	/* resharding: no append once sealed; parts that arrive meanwhile wait in parked
	 * (produce.c) until the reshard is published (re-routed) or abandoned (appended). sealed is
	 * written by the owner under log_mu; parked is the owner's only. */
	bool sealed;
	void *parked;
	/* set right after the view that closes the shard is published; read by anyone */
	atomic_bool closed;
	_Atomic uint64_t end_seq; /* the last sequence number of a closed shard */
	/* published for admin requests and /metrics; written under log_mu (several loops append) */
	_Atomic uint64_t next_seq;
	_Atomic uint64_t first_seq;
	_Atomic uint64_t records_in;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t records_out;
	_Atomic bool failed;
};

/* The owner's side of log_mu: blocks (briefly: a foreign holder only appends). */
static inline void sl_shard_lock(struct sl_shard *sh)
{
	pthread_mutex_lock(&sh->log_mu);
}

static inline void sl_shard_unlock(struct sl_shard *sh)
{
	pthread_mutex_unlock(&sh->log_mu);
}

/* The owner, under the lock, before it checks for new records: wake me for appends until
 * mono_ms. */
static inline void sl_shard_watch(struct sl_shard *sh, int64_t mono_ms)
{
	if (atomic_load_explicit(&sh->watched_until_ms, memory_order_relaxed) < mono_ms)
		atomic_store_explicit(&sh->watched_until_ms, mono_ms, memory_order_relaxed);
}

struct sl_stream_view {
	struct sl_stream_meta *meta; /* immutable */
	struct sl_shard_map *map;    /* routing of the open shards */
	struct sl_shard **shards;    /* indexed by position in meta->shards (ascending id) */
	uint32_t nshards;
};

struct sl_stream {
	char name[SLUICE_NAME_LEN_MAX + 1];
	size_t name_len;
	_Atomic(struct sl_stream_view *) view; /* the current one; see "Resharding" above */
	atomic_bool resharding;		       /* one reshard per stream at a time */
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
 * Restore: create and persist a stream from a complete metadata document (same shard ids, hash
 * ranges, lineage, start seqs, closed shards), taking ownership of meta in every case. Its
 * status becomes active and created_ms is kept. SLUICE_ERR_STREAM_EXISTS when the name is taken.
 */
int sl_registry_create_stream_from_meta(struct sl_registry *reg, struct sl_stream_meta *meta,
					char *err_msg, size_t err_msg_len);
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

/*
 * View readers: the workers (reader = worker id) and one more, sl_registry_reader_other(reg), for
 * the metrics thread. quiescent: the worker holds no view pointer now (call at the end of each
 * tick; worker 0 also frees what it can). online/offline bracket the other reader's use.
 */
unsigned sl_registry_reader_other(const struct sl_registry *reg);
void sl_registry_quiescent(struct sl_registry *reg, unsigned reader);
void sl_registry_online(struct sl_registry *reg, unsigned reader);
void sl_registry_offline(struct sl_registry *reg, unsigned reader);
/* Replaced views not freed yet (a gauge for /metrics). */
size_t sl_registry_views_retired(struct sl_registry *reg);

/* The current view: valid while the caller holds a reference on the stream and, for a
 * reader thread, until its next quiescent state. */
static inline struct sl_stream_view *sl_stream_view(struct sl_stream *s)
{
	return atomic_load_explicit(&s->view, memory_order_acquire);
}

/* The shard with this id in view v, or NULL; its position in v->shards in *ret_pos if not NULL. */
struct sl_shard *sl_view_shard(const struct sl_stream_view *v, uint32_t shard_id,
			       uint32_t *ret_pos);
/* The same in the current view. */
struct sl_shard *sl_stream_shard(struct sl_stream *s, uint32_t shard_id);
/* The position in v->shards of the open shard a record goes to. */
uint32_t sl_view_route(const struct sl_stream_view *v, sl_u128 hash_key);

/*
 * Resharding support (the cut-over itself is in reshard.c).
 *
 * begin takes the stream's reshard lock: 0, or SLUICE_ERR_RESOURCE_IN_USE (another reshard
 * runs) / SLUICE_ERR_STREAM_NOT_FOUND (deleted). end releases it.
 *
 * commit makes meta (a changed clone of the current view's metadata: parents closed with their
 * end_seq, children added) the stream's shape: it creates the logs of the shards meta adds,
 * saves meta durably, publishes the new view, retires the old one and marks the parents closed,
 * in that order, so every child's log exists before any record routes to it and a crash leaves
 * either the old or the new metadata. Takes ownership
 * of meta in every case. Call with the lock held. Returns 0, or an error with a message (nothing
 * published; the logs it created are removed).
 */
int sl_registry_reshard_begin(struct sl_stream *s);
void sl_registry_reshard_end(struct sl_stream *s);
int sl_registry_reshard_commit(struct sl_registry *reg, struct sl_stream *s,
			       struct sl_stream_meta *meta, char *err_msg, size_t err_msg_len);

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
