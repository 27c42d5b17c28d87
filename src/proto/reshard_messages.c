/*
 * Reshard request bodies (layouts in codec.h): STREAM_SPLIT, STREAM_MERGE, STREAM_SCALE. The
 * answers are plain u32s, read by libsluice directly. As in messages.c, structure is checked
 * before meaning.
 */
#include "proto/codec.h"
#include "proto/wire.h"

#include <sluice/errors.h>

int sl_proto_decode_reshard(uint8_t opcode, const uint8_t *body, size_t len,
			    struct sl_req_reshard *ret)
{
	struct sl_reader r;
	sl_reader_init(&r, body, len);
	struct sl_req_reshard req = {0};
	rd_str8(&r, &req.stream);
	switch (opcode) {
	case SL_OP_STREAM_SPLIT:
		rd_u32(&r, &req.shard_id);
		rd_hash(&r, &req.start_hash);
		break;
	case SL_OP_STREAM_MERGE:
		rd_u32(&r, &req.shard_id);
		rd_u32(&r, &req.adjacent_id);
		break;
	case SL_OP_STREAM_SCALE:
		rd_u32(&r, &req.target);
		break;
	default:
		return SLUICE_ERR_BAD_OPCODE;
	}
	if (!rd_done(&r))
		return SLUICE_ERR_PROTOCOL;
	if (!sl_proto_name_valid((const uint8_t *)req.stream.p, req.stream.len))
		return SLUICE_ERR_INVALID_NAME;
	*ret = req;
	return 0;
}
