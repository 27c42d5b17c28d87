/*
 * The exec handler's wire format: one JSON line per batch on the handler's stdin, in the shape of
 * the AWS Lambda Kinesis event, and one JSON line back on its stdout.
 *
 * Event (one line, no newline inside):
 *   {"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"...",
 *      "sequenceNumber":"<decimal>","data":"<base64>","approximateArrivalTimestamp":<seconds,
 *      with millisecond fraction>},
 *     "eventSource":"sluice:stream","eventVersion":"1.0","eventID":"shardId-000000000000:<seq>",
 *     "eventName":"sluice:record","invokeIdentityArn":"arn:sluice:iam::local:role/sluice",
 *     "awsRegion":"local","eventSourceARN":"arn:sluice:kinesis:local:000000000000:stream/NAME"},
 *    ...]}
 *
 * Response (one line): `{}` or `{"batchItemFailures":[]}` = success;
 *   `{"batchItemFailures":[{"itemIdentifier":"<seq>"}, ...]}` = partial failure: retry from the
 *   lowest failed sequence number (as Lambda's ReportBatchItemFailures);
 *   `{"error":"message"}` = the whole batch failed. Anything else (not JSON, an unknown
 *   itemIdentifier, an empty identifier, a line over the limit) = the whole batch failed, with a
 *   message saying why.
 */
#ifndef SL_CONSUMER_LAMBDA_EVENT_H
#define SL_CONSUMER_LAMBDA_EVENT_H

#include <sluice/handler.h>

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

/* The longest response line accepted from a handler: a failure list of 10,000 items fits. */
#define SL_LAMBDA_RESPONSE_MAX (1u << 20)

/* Append one event line (with its trailing '\n') for batch to out. 0 or -ENOMEM. */
int sl_lambda_event_encode(const struct sluice_handler_batch *batch, struct sl_buf *out);

/*
 * Parse one response line (without its newline) for a batch of count records whose sequence
 * numbers are seqs[0..count-1] (ascending). Fills *ret (status, failed_from, message). Returns 0
 * when the line was understood (even if it reports a failure), or SLUICE_ERR_PROTOCOL when it is
 * garbage: *ret is then SLUICE_HANDLER_ERROR with a message saying what was wrong.
 */
int sl_lambda_response_parse(const char *line, size_t len, const uint64_t *seqs, size_t count,
			     struct sluice_handler_result *ret);

#endif
