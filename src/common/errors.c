#include <sluice/errors.h>

#include <errno.h>
#include <string.h>

static const struct {
	int code;
	const char *name;
	const char *text;
} table[] = {
    {SLUICE_ERR_CORRUPT, "corrupt", "stored data failed its checksum"},
    {SLUICE_ERR_STREAM_NOT_FOUND, "stream_not_found", "stream not found"},
    {SLUICE_ERR_STREAM_EXISTS, "stream_exists", "stream already exists"},
    {SLUICE_ERR_INVALID_ARGUMENT, "invalid_argument", "invalid argument"},
    {SLUICE_ERR_RECORD_TOO_LARGE, "record_too_large",
     "record data exceeds the maximum record size"},
    {SLUICE_ERR_THROTTLED, "throttled", "too much in flight, retry later"},
    {SLUICE_ERR_PROTOCOL, "protocol", "malformed request"},
    {SLUICE_ERR_UNSUPPORTED_VERSION, "unsupported_version", "unsupported protocol version"},
    {SLUICE_ERR_BAD_OPCODE, "bad_opcode", "unknown operation"},
    {SLUICE_ERR_SHARD_NOT_FOUND, "shard_not_found", "shard not found"},
    {SLUICE_ERR_UNAVAILABLE, "unavailable", "shard unavailable for writes"},
    {SLUICE_ERR_INTERNAL, "internal", "internal error"},
    {SLUICE_ERR_INVALID_NAME, "invalid_name",
     "invalid name: use 1-128 characters of a-z A-Z 0-9 _ . -"},
    {SLUICE_ERR_INVALID_KEY, "invalid_key", "invalid partition key: use 1-256 bytes of UTF-8"},
    {SLUICE_ERR_UNAUTHORIZED, "unauthorized", "missing or wrong auth token"},
    {SLUICE_ERR_TIMEOUT, "timeout", "timed out"},
    {SLUICE_ERR_DISCONNECTED, "disconnected", "connection closed"},
    {SLUICE_ERR_SHUTTING_DOWN, "shutting_down", "server is shutting down"},
    {SLUICE_ERR_SHARD_CLOSED, "shard_closed", "shard is closed (resharded)"},
    {SLUICE_ERR_LIMIT_EXCEEDED, "limit_exceeded", "limit exceeded"},
    {SLUICE_ERR_RESOURCE_IN_USE, "resource_in_use", "resource in use (a reshard is running)"},
    {SLUICE_ERR_SEQ_ORDER, "seq_order", "sequence numbers must strictly increase"},
    {SLUICE_ERR_ARCHIVE_GAP, "archive_gap", "records are missing from the archive"},
    {SLUICE_ERR_NOT_RESTORABLE, "not_restorable",
     "raw archive objects cannot be restored (no keys, no sequence numbers)"},
    {SLUICE_ERR_LAYOUT_MISMATCH, "layout_mismatch",
     "the stream's shard layout differs from the archive's"},
};

const char *sluice_strerror(int err)
{
	if (err >= 0)
		return "success";
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == err)
			return table[i].text;
	if (err > -4096)
		return strerror(-err);
	return "unknown error";
}

const char *sluice_error_name(int err)
{
	if (err >= 0)
		return "ok";
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == err)
			return table[i].name;
	switch (-err) {
	case ENOSPC:
		return "no_space";
	case EIO:
		return "io_error";
	case ENOMEM:
		return "out_of_memory";
	case ECONNREFUSED:
		return "connection_refused";
	case ETIMEDOUT:
		return "timeout";
	default:
		return "system_error";
	}
}

int sluice_error_is_retryable(int err)
{
	switch (err) {
	case SLUICE_ERR_THROTTLED:
	case SLUICE_ERR_UNAVAILABLE:
	case SLUICE_ERR_TIMEOUT:
	case SLUICE_ERR_DISCONNECTED:
	case SLUICE_ERR_SHUTTING_DOWN:
	case -ENOSPC:
	case -EIO:
	case -ENOMEM:
	case -EAGAIN:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ETIMEDOUT:
	case -EPIPE:
		return 1;
	default:
		return 0;
	}
}
