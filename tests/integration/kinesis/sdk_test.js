// Drives sluice's Kinesis API with the real AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis),
// which speaks HTTP/2 (h2c with prior knowledge on an http:// endpoint) to Kinesis.
// Usage: node sdk_test.js ENDPOINT NATIVE_STREAM OUT_JSON
// NATIVE_STREAM holds records written over the native protocol by the Python side (keys n0..n2,
// data "native-<i>"); OUT_JSON receives the records put here, for the native read-back.
'use strict';
const path = require('path');
const fs = require('fs');
const assert = require('assert');
const K = require(path.join(process.env.SLUICE_NODE_MODULES, '@aws-sdk/client-kinesis'));

const [endpoint, nativeStream, outPath] = process.argv.slice(2);
const client = new K.KinesisClient({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
  maxAttempts: 1,
});
const send = (Cmd, input) => client.send(new Cmd(input));
let checks = 0;

async function expectError(p, type, what) {
  try {
    await p;
  } catch (e) {
    assert.strictEqual(e.name, type, `${what}: got ${e.name}: ${e.message}`);
    assert.strictEqual(e.$metadata.httpStatusCode, 400, `${what}: status`);
    assert.ok(e.$metadata.requestId, `${what}: x-amzn-RequestId`);
    checks++;
    return e;
  }
  throw new Error(`${what}: expected ${type}, the call succeeded`);
}

async function readAll(stream, shardId, type, extra = {}) {
  const it = await send(K.GetShardIteratorCommand, { StreamName: stream, ShardId: shardId, ShardIteratorType: type, ...extra });
  let iter = it.ShardIterator;
  const out = [];
  for (let i = 0; i < 100 && iter; i++) {
    const r = await send(K.GetRecordsCommand, { ShardIterator: iter });
    assert.ok(typeof r.MillisBehindLatest === 'number');
    out.push(...r.Records);
    iter = r.NextShardIterator;
    if (r.Records.length === 0) break;
  }
  return { records: out, next: iter };
}

const dec = (b) => Buffer.from(b).toString();

async function main() {
  const S = 'sdk1';
  // ---- streams
  await send(K.CreateStreamCommand, { StreamName: S, ShardCount: 2 });
  await expectError(send(K.CreateStreamCommand, { StreamName: S, ShardCount: 2 }), 'ResourceInUseException', 'create twice');
  await expectError(send(K.CreateStreamCommand, { StreamName: 'bad name!', ShardCount: 1 }), 'ValidationException', 'bad name');
  await expectError(send(K.CreateStreamCommand, { StreamName: 'x', ShardCount: 0 }), 'ValidationException', 'zero shards');
  await expectError(send(K.CreateStreamCommand, { StreamName: 'x', ShardCount: 5000 }), 'LimitExceededException', 'too many shards');
  await send(K.CreateStreamCommand, { StreamName: 'sdk3', ShardCount: 3 });

  const ls = await send(K.ListStreamsCommand, {});
  for (const n of [S, 'sdk3', nativeStream]) assert.ok(ls.StreamNames.includes(n), `ListStreams has ${n}`);
  assert.strictEqual(ls.HasMoreStreams, false);
  assert.strictEqual(ls.StreamSummaries.length, ls.StreamNames.length);
  const page1 = await send(K.ListStreamsCommand, { Limit: 1 });
  assert.strictEqual(page1.StreamNames.length, 1);
  assert.strictEqual(page1.HasMoreStreams, true);
  const page2 = await send(K.ListStreamsCommand, { Limit: 100, NextToken: page1.NextToken });
  assert.deepStrictEqual([...page1.StreamNames, ...page2.StreamNames], ls.StreamNames);

  const d = (await send(K.DescribeStreamCommand, { StreamName: S })).StreamDescription;
  assert.strictEqual(d.StreamStatus, 'ACTIVE');
  assert.strictEqual(d.Shards.length, 2);
  assert.strictEqual(d.RetentionPeriodHours, 24);
  assert.strictEqual(d.EncryptionType, 'NONE');
  assert.strictEqual(d.HasMoreShards, false);
  assert.ok(d.StreamCreationTimestamp instanceof Date);
  assert.strictEqual(d.Shards[0].HashKeyRange.StartingHashKey, '0');
  assert.strictEqual(d.Shards[1].HashKeyRange.EndingHashKey, (2n ** 128n - 1n).toString());
  const d1 = (await send(K.DescribeStreamCommand, { StreamName: S, Limit: 1 })).StreamDescription;
  assert.strictEqual(d1.Shards.length, 1);
  assert.strictEqual(d1.HasMoreShards, true);
  const sum = (await send(K.DescribeStreamSummaryCommand, { StreamName: S })).StreamDescriptionSummary;
  assert.strictEqual(sum.OpenShardCount, 2);
  assert.strictEqual(sum.StreamModeDetails.StreamMode, 'PROVISIONED');
  await expectError(send(K.DescribeStreamCommand, { StreamName: 'nope' }), 'ResourceNotFoundException', 'describe missing');
  await expectError(send(K.DescribeStreamSummaryCommand, { StreamName: 'nope' }), 'ResourceNotFoundException', 'summary missing');

  // ---- shards
  const shards = (await send(K.ListShardsCommand, { StreamName: 'sdk3' })).Shards;
  assert.deepStrictEqual(shards.map((s) => s.ShardId), ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']);
  const p1 = await send(K.ListShardsCommand, { StreamName: 'sdk3', MaxResults: 2 });
  assert.strictEqual(p1.Shards.length, 2);
  assert.ok(p1.NextToken);
  const p2 = await send(K.ListShardsCommand, { NextToken: p1.NextToken });
  assert.deepStrictEqual(p2.Shards.map((s) => s.ShardId), ['shardId-000000000002']);
  assert.strictEqual(p2.NextToken, undefined);
  const after = await send(K.ListShardsCommand, { StreamName: 'sdk3', ShardFilter: { Type: 'AFTER_SHARD_ID', ShardId: 'shardId-000000000000' } });
  assert.strictEqual(after.Shards.length, 2);
  const latest = await send(K.ListShardsCommand, { StreamName: 'sdk3', ShardFilter: { Type: 'AT_LATEST' } });
  assert.strictEqual(latest.Shards.length, 3);
  const excl = await send(K.ListShardsCommand, { StreamName: 'sdk3', ExclusiveStartShardId: 'shardId-000000000001' });
  assert.deepStrictEqual(excl.Shards.map((s) => s.ShardId), ['shardId-000000000002']);
  await expectError(send(K.ListShardsCommand, { StreamName: 'sdk3', NextToken: p1.NextToken }), 'InvalidArgumentException', 'NextToken with StreamName');
  await expectError(send(K.ListShardsCommand, { NextToken: 'garbage' }), 'InvalidArgumentException', 'bad NextToken');
  await expectError(send(K.ListShardsCommand, { StreamName: 'nope' }), 'ResourceNotFoundException', 'list shards missing');

  // ---- put
  const put = [];
  const one = await send(K.PutRecordCommand, { StreamName: S, Data: Buffer.from('first'), PartitionKey: 'pk', ExplicitHashKey: '0' });
  assert.strictEqual(one.ShardId, 'shardId-000000000000');
  assert.match(one.SequenceNumber, /^[0-9]+$/);
  put.push({ key: 'pk', data: 'first', shard: 0, seq: one.SequenceNumber });
  const batch = [];
  for (let i = 0; i < 500; i++) batch.push({ Data: Buffer.from(`rec-${i}-`.padEnd(100, 'x')), PartitionKey: `k${i % 37}` });
  const pr = await send(K.PutRecordsCommand, { StreamName: S, Records: batch });
  assert.strictEqual(pr.FailedRecordCount, 0);
  assert.strictEqual(pr.Records.length, 500);
  pr.Records.forEach((r, i) => put.push({ key: batch[i].PartitionKey, data: dec(batch[i].Data), shard: Number(r.ShardId.slice(8)), seq: r.SequenceNumber }));
  const tooMany = batch.concat([{ Data: Buffer.from('z'), PartitionKey: 'z' }]);
  await expectError(send(K.PutRecordsCommand, { StreamName: S, Records: tooMany }), 'ValidationException', '501 records');
  await expectError(send(K.PutRecordsCommand, { StreamName: S, Records: [] }), 'ValidationException', '0 records');
  await expectError(send(K.PutRecordsCommand, { StreamName: 'nope', Records: batch.slice(0, 2) }), 'ResourceNotFoundException', 'put to missing stream');
  await expectError(send(K.PutRecordCommand, { StreamName: S, Data: Buffer.from('x'), PartitionKey: 'k'.repeat(257) }), 'ValidationException', 'key too long');
  await expectError(send(K.PutRecordCommand, { StreamName: S, Data: Buffer.alloc((1 << 20) + 1), PartitionKey: 'k' }), 'ValidationException', 'record too large');
  await expectError(send(K.PutRecordCommand, { StreamName: S, Data: Buffer.from('x'), PartitionKey: 'k', ExplicitHashKey: (2n ** 128n).toString() }), 'InvalidArgumentException', 'hash key out of range');
  const bigBatch = [];
  for (let i = 0; i < 6; i++) bigBatch.push({ Data: Buffer.alloc(1 << 20, 1), PartitionKey: 'big' });
  await expectError(send(K.PutRecordsCommand, { StreamName: S, Records: bigBatch }), 'InvalidArgumentException', 'over 5 MiB');

  // ---- read, every iterator type
  const byShard = [0, 1].map((s) => put.filter((p) => p.shard === s));
  for (const s of [0, 1]) {
    const got = await readAll(S, `shardId-00000000000${s}`, 'TRIM_HORIZON');
    assert.deepStrictEqual(got.records.map((r) => r.SequenceNumber), byShard[s].map((p) => p.seq), `shard ${s} sequence numbers`);
    assert.deepStrictEqual(got.records.map((r) => dec(r.Data)), byShard[s].map((p) => p.data), `shard ${s} data`);
    assert.deepStrictEqual(got.records.map((r) => r.PartitionKey), byShard[s].map((p) => p.key));
    assert.ok(got.records.every((r) => r.ApproximateArrivalTimestamp instanceof Date));
    assert.ok(got.next, 'an open shard always has a next iterator');
  }
  const sh0 = byShard[0];
  const at = await readAll(S, 'shardId-000000000000', 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: sh0[5].seq });
  assert.strictEqual(at.records[0].SequenceNumber, sh0[5].seq);
  assert.strictEqual(at.records.length, sh0.length - 5);
  const aft = await readAll(S, 'shardId-000000000000', 'AFTER_SEQUENCE_NUMBER', { StartingSequenceNumber: sh0[5].seq });
  assert.strictEqual(aft.records[0].SequenceNumber, sh0[6].seq);
  const ts0 = new Date(Date.now() - 3600 * 1000);
  const atTs = await readAll(S, 'shardId-000000000000', 'AT_TIMESTAMP', { Timestamp: ts0 });
  assert.strictEqual(atTs.records.length, sh0.length);
  const future = await readAll(S, 'shardId-000000000000', 'AT_TIMESTAMP', { Timestamp: new Date(Date.now() + 3600 * 1000) });
  assert.strictEqual(future.records.length, 0);
  // LATEST: pinned when the iterator is made; a record put afterwards is read through it.
  const li = await send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000000', ShardIteratorType: 'LATEST' });
  const empty = await send(K.GetRecordsCommand, { ShardIterator: li.ShardIterator });
  assert.strictEqual(empty.Records.length, 0);
  const late = await send(K.PutRecordCommand, { StreamName: S, Data: Buffer.from('late'), PartitionKey: 'pk', ExplicitHashKey: '1' });
  put.push({ key: 'pk', data: 'late', shard: 0, seq: late.SequenceNumber });
  const afterLate = await send(K.GetRecordsCommand, { ShardIterator: empty.NextShardIterator });
  assert.deepStrictEqual(afterLate.Records.map((r) => dec(r.Data)), ['late']);
  const li2 = await send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000000', ShardIteratorType: 'LATEST' });
  assert.strictEqual((await send(K.GetRecordsCommand, { ShardIterator: li2.ShardIterator })).Records.length, 0);
  // Limit and continuation
  const th = await send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000001', ShardIteratorType: 'TRIM_HORIZON' });
  const ten = await send(K.GetRecordsCommand, { ShardIterator: th.ShardIterator, Limit: 10 });
  assert.strictEqual(ten.Records.length, 10);
  assert.ok(ten.MillisBehindLatest >= 0);
  const next = await send(K.GetRecordsCommand, { ShardIterator: ten.NextShardIterator, Limit: 1 });
  assert.strictEqual(next.Records[0].SequenceNumber, byShard[1][10].seq);
  // iterator errors
  await expectError(send(K.GetRecordsCommand, { ShardIterator: 'AAAA' }), 'InvalidArgumentException', 'garbage iterator');
  const forged = Buffer.from(th.ShardIterator, 'base64');
  forged[3] ^= 1;
  await expectError(send(K.GetRecordsCommand, { ShardIterator: forged.toString('base64') }), 'InvalidArgumentException', 'tampered iterator');
  await expectError(send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000009', ShardIteratorType: 'TRIM_HORIZON' }), 'ResourceNotFoundException', 'missing shard');
  await expectError(send(K.GetShardIteratorCommand, { StreamName: 'nope', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }), 'ResourceNotFoundException', 'missing stream');
  await expectError(send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000000', ShardIteratorType: 'AT_SEQUENCE_NUMBER' }), 'InvalidArgumentException', 'AT_SEQUENCE_NUMBER without a number');
  await expectError(send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000000', ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: '999999999' }), 'InvalidArgumentException', 'sequence number not in the shard');
  await expectError(send(K.GetShardIteratorCommand, { StreamName: S, ShardId: 'shardId-000000000000', ShardIteratorType: 'SIDEWAYS' }), 'ValidationException', 'bad iterator type');

  // ---- records written over the native protocol
  const nat = [];
  for (const s of (await send(K.ListShardsCommand, { StreamName: nativeStream })).Shards) {
    nat.push(...(await readAll(nativeStream, s.ShardId, 'TRIM_HORIZON')).records);
  }
  assert.deepStrictEqual(nat.map((r) => dec(r.Data)).sort(), ['native-0', 'native-1', 'native-2']);
  assert.deepStrictEqual(nat.map((r) => r.PartitionKey).sort(), ['n0', 'n1', 'n2']);

  // ---- retention, tags, limits
  await send(K.IncreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 48 });
  assert.strictEqual((await send(K.DescribeStreamSummaryCommand, { StreamName: S })).StreamDescriptionSummary.RetentionPeriodHours, 48);
  await expectError(send(K.IncreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 30 }), 'InvalidArgumentException', 'increase to less');
  await expectError(send(K.DecreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 72 }), 'InvalidArgumentException', 'decrease to more');
  await expectError(send(K.DecreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 12 }), 'InvalidArgumentException', 'under 24 h');
  await expectError(send(K.IncreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 9000 }), 'InvalidArgumentException', 'over 8760 h');
  await expectError(send(K.IncreaseStreamRetentionPeriodCommand, { StreamName: 'nope', RetentionPeriodHours: 48 }), 'ResourceNotFoundException', 'retention of missing stream');
  await send(K.DecreaseStreamRetentionPeriodCommand, { StreamName: S, RetentionPeriodHours: 24 });
  assert.strictEqual((await send(K.DescribeStreamCommand, { StreamName: S })).StreamDescription.RetentionPeriodHours, 24);

  await send(K.AddTagsToStreamCommand, { StreamName: S, Tags: { team: 'payments', env: 'test', tier: '1' } });
  await send(K.AddTagsToStreamCommand, { StreamName: S, Tags: { env: 'prod' } });
  let tags = await send(K.ListTagsForStreamCommand, { StreamName: S });
  assert.deepStrictEqual(tags.Tags, [{ Key: 'team', Value: 'payments' }, { Key: 'env', Value: 'prod' }, { Key: 'tier', Value: '1' }]);
  assert.strictEqual(tags.HasMoreTags, false);
  tags = await send(K.ListTagsForStreamCommand, { StreamName: S, Limit: 1, ExclusiveStartTagKey: 'team' });
  assert.deepStrictEqual(tags.Tags, [{ Key: 'env', Value: 'prod' }]);
  assert.strictEqual(tags.HasMoreTags, true);
  await send(K.RemoveTagsFromStreamCommand, { StreamName: S, TagKeys: ['env', 'absent'] });
  tags = await send(K.ListTagsForStreamCommand, { StreamName: S });
  assert.deepStrictEqual(tags.Tags.map((t) => t.Key), ['team', 'tier']);
  const many = {};
  for (let i = 0; i < 49; i++) many[`k${i}`] = 'v';
  await expectError(send(K.AddTagsToStreamCommand, { StreamName: S, Tags: many }), 'InvalidArgumentException', 'over 50 tags');
  assert.strictEqual((await send(K.ListTagsForStreamCommand, { StreamName: S })).Tags.length, 2, 'all or nothing');
  await expectError(send(K.ListTagsForStreamCommand, { StreamName: 'nope' }), 'ResourceNotFoundException', 'tags of missing stream');

  const lim = await send(K.DescribeLimitsCommand, {});
  assert.ok(lim.OpenShardCount >= 5, `OpenShardCount ${lim.OpenShardCount}`);
  assert.ok(lim.ShardLimit >= lim.OpenShardCount);

  // ---- resharding: validation here; the work needs the native resharding calls
  await expectError(send(K.SplitShardCommand, { StreamName: S, ShardToSplit: 'shardId-000000000000', NewStartingHashKey: '0' }), 'InvalidArgumentException', 'split at the start key');
  await expectError(send(K.SplitShardCommand, { StreamName: S, ShardToSplit: 'shardId-000000000007', NewStartingHashKey: '5' }), 'ResourceNotFoundException', 'split missing shard');
  await expectError(send(K.MergeShardsCommand, { StreamName: 'sdk3', ShardToMerge: 'shardId-000000000000', AdjacentShardToMerge: 'shardId-000000000002' }), 'InvalidArgumentException', 'merge non-adjacent');
  await expectError(send(K.UpdateShardCountCommand, { StreamName: S, TargetShardCount: 5, ScalingType: 'UNIFORM_SCALING' }), 'InvalidArgumentException', 'more than double');
  // A real split: the closed parent's records stay readable to its end, then no next iterator.
  await send(K.SplitShardCommand, { StreamName: S, ShardToSplit: 'shardId-000000000000', NewStartingHashKey: (2n ** 126n).toString() });
  const reshard = { split: 'done' };
  {
    const all = (await send(K.ListShardsCommand, { StreamName: S })).Shards;
    assert.strictEqual(all.length, 4);
    const parent = all.find((s) => s.ShardId === 'shardId-000000000000');
    assert.ok(parent.SequenceNumberRange.EndingSequenceNumber);
    const kids = all.filter((s) => s.ParentShardId === 'shardId-000000000000');
    assert.deepStrictEqual(kids.map((s) => s.HashKeyRange.StartingHashKey), ['0', (2n ** 126n).toString()]);
    const got = await readAll(S, 'shardId-000000000000', 'TRIM_HORIZON');
    assert.strictEqual(got.records.length, byShard[0].length + 1);
    assert.strictEqual(got.next, undefined);
  }

  // ---- delete
  await send(K.DeleteStreamCommand, { StreamName: 'sdk3' });
  await expectError(send(K.DescribeStreamCommand, { StreamName: 'sdk3' }), 'ResourceNotFoundException', 'deleted stream');
  await expectError(send(K.DeleteStreamCommand, { StreamName: 'sdk3' }), 'ResourceNotFoundException', 'delete twice');

  fs.writeFileSync(outPath, JSON.stringify({ stream: S, records: put, checks, reshard }));
  client.destroy();
}

main().catch((e) => {
  console.error('FAILED:', e);
  client.destroy();
  process.exit(1);
});
